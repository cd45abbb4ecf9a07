"""`edgeslm calibrate`: the router's policy from labelled validation data, written as a hashed file."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.command("calibrate")
@click.option("--home", "homes", type=click.Path(path_type=Path), multiple=True,
              help="A home description (YAML); repeat for several. Default: every home under homes/.")
@click.option("--stream", type=click.Path(path_type=Path),
              help="A labelled JSONL stream of your own (one --home). Default: validation household weeks.")
@click.option("--tiers", default="templates,encoder", show_default=True, help="The answering tiers to order.")
@click.option("--bundle", type=click.Path(path_type=Path), default=Path("runs/demo/intent-early-exit"),
              show_default=True, help="The encoder tier's intent bundle.")
@click.option("--target", type=float, default=0.97, show_default=True, help="The accuracy to reach at the least CPU.")
@click.option("--tolerance", type=float, default=0.002, show_default=True,
              help="When no cascade reaches --target: accuracy given up for the cheapest one.")
@click.option("--profile", default="this-machine", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Default: assist-policy.json beside the bundle.")
@json_option
@handle_errors
def calibrate(homes: tuple[Path, ...], stream: Path | None, tiers: str, bundle: Path, target: float, tolerance: float,
              profile: str, out: Path | None, as_json: bool) -> None:
    """Choose the tiers' order and thresholds on validation data, never on an evaluation set."""
    from edgeslm.evaluate.calibrate import CalibrateConfig
    from edgeslm.evaluate.calibrate import calibrate as run
    from edgeslm.runtime.tiers.policy import POLICY_FILE, write_policy

    config = CalibrateConfig(homes=[str(h) for h in homes] or sorted(str(p) for p in Path("homes").glob("*.yaml")),
                             bundle=bundle, tiers=[t.strip() for t in tiers.split(",") if t.strip()],
                             target_accuracy=target, tolerance=tolerance, stream=stream,
                             profile=profile)
    policy = run(config, progress=not as_json)
    path = out or Path(bundle).parent / POLICY_FILE
    digest = write_policy(policy, path)
    emit({"policy": str(path), "sha256": digest, **policy.to_dict()}, as_json, _text)


def _text(r: dict) -> str:
    c = r["calibration"]
    order = " -> ".join(f"{t} (stop at {r['thresholds'].get(t, 0.0):.3f})" for t in r["order"])
    return (f"{r['policy']} (sha256 {r['sha256'][:12]})\n{order}; cache from {r['cache_from']:.3f}\n"
            f"validation: {c['commands']} commands, accuracy {c['accuracy']:.4f} (target {r['target_accuracy']}), "
            f"{c['cpu_ms_per_answer']:.2f} ms CPU per answer"
            + (f"\nn-gram head first from {r['ngrams_from']:.4f}: {c['ngrams']['answers']} of {c['ngrams']['commands']} "
               f"commands, {c['ngrams']['lost']} lost of what the cascade had right" if "ngrams" in c else "")
            + "".join(f"\n{tier} not tried after an unsure {', '.join(intents)} (never made one right on validation)"
                      for tier, intents in r.get("skip_after", {}).items()))
