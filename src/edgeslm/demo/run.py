"""The demo job, as a library function the CLI calls."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import BundleError

ASSIST_BUNDLE = "intent-early-exit"  # what replay, calibrate and serve --home use by default


@dataclass(frozen=True)
class DemoConfig(Config):
    out: Path = Path("runs/demo")
    evalset: Path | None = None
    max_steps: int | None = None
    fresh: bool = False
    # ONNX-level recipes take about a minute each; the torch ones (sparse90-int8, structured50-int8,
    # distill-l3) retrain for several minutes each and are opt-in (`make demo-full`)
    recipes: list[str] = field(default_factory=lambda: ["int8-dynamic", "int8-static", "int4-weight"])
    homes: Path = Path("homes")  # the example homes the assistant's policy is calibrated on
    # the assistant's encoder tier: the int8 encoder cut after layers 2 and 4 with exit heads (about a
    # minute to build from the run); its segments are quantized with this recipe
    assist_recipe: str = "int8-static"
    early_exit: bool = True  # False: the tier uses the recipe's full-depth bundle instead


def run_demo(config: DemoConfig, progress: bool = True, echo: Callable[[str], Any] | None = None) -> dict[str, Any]:
    from edgeslm.data.noise import add_noise
    from edgeslm.data.records import Example, read_examples, write_jsonl
    from edgeslm.evaluate.runner import evaluate_bundle
    from edgeslm.formats.reader import open_bundle
    from edgeslm.report.demo import write_report
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.run import RunFolder

    say = echo or (lambda _: None)
    out = Path(config.out)
    run_dir, bundle_dir = out / "train-run", out / "intent-fp32"
    train_config = TrainConfig(max_steps=config.max_steps)

    fresh = config.fresh or not _same_run(run_dir, train_config)
    if fresh:  # and then everything made from the old run is made again
        from edgeslm.train.trainer import train

        say(f"[1/5] training {train_config.model} on {train_config.data} -> {run_dir}")
        train(train_config, run_dir, progress=progress)
    else:
        say(f"[1/5] reusing the finished run in {run_dir}")

    if fresh or not _bundle_of(bundle_dir, run_dir):
        from edgeslm.export.onnx import export_classifier

        say(f"[2/5] exporting ONNX bundle -> {bundle_dir}")
        export_classifier(run_dir, bundle_dir, name="intent-fp32")
    else:
        say(f"[2/5] reusing the verified bundle {bundle_dir}")
    manifest = open_bundle(bundle_dir).manifest.to_dict()

    say("[3/5] evaluating with the device runtime (no torch)")
    sets: dict[str, Path] = {"test": RunFolder(run_dir).split("test")}
    if config.evalset is not None:
        sets["home-commands"] = Path(config.evalset)
    eval_dir = out / "eval"
    for name in list(sets):
        rng = random.Random(7)
        noisy = [Example(add_noise(ex.text, rng), ex.label) for ex in read_examples(sets[name])]
        sets[f"{name}-noisy"] = write_jsonl(eval_dir / f"{name}-noisy.jsonl", noisy)
    results = {name: evaluate_bundle(bundle_dir, path) for name, path in sets.items()}
    for name, r in results.items():
        say(f"      {name:20s} n={r['n']:5d}  accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
            f"p50 {r['latency']['p50_ms']:.2f} ms")

    compressed = []
    for i, name in enumerate(config.recipes, 1):
        target = out / f"intent-{name}"
        if not fresh and _compressed_of(target, run_dir, name):
            say(f"[4/5] ({i}/{len(config.recipes)}) reusing {target}")
        else:
            from edgeslm.compress.pipeline import compress
            from edgeslm.compress.recipe import load_recipe

            say(f"[4/5] ({i}/{len(config.recipes)}) compressing with {name} -> {target}")
            compress(run_dir, load_recipe(name), target, progress=progress)
        compressed.append((name, open_bundle(target).manifest.provenance["compression"]))

    policy = _calibrate_policy(config, out, say)

    say("[5/5] writing the report")
    report = write_report(out, manifest, results, command="make demo", compressed=compressed)
    summary = {"bundle": str(bundle_dir), "results": {k: {m: v[m] for m in ("n", "accuracy", "macro_f1", "latency")}
                                                       for k, v in results.items()},
               "report": {k: str(v) for k, v in report.items()}, "assist_policy": policy}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _calibrate_policy(config: DemoConfig, out: Path, say: Callable[[str], Any]) -> str | None:
    """The tiered assistant's router policy, calibrated on validation household weeks of the example
    homes (never an evaluation set), written beside the bundles where `replay` and `serve` find it."""
    from edgeslm.evaluate.calibrate import CalibrateConfig, calibrate
    from edgeslm.runtime.tiers.policy import POLICY_FILE, write_policy

    homes = sorted(Path(config.homes).glob("*.yaml"))
    if not homes or config.assist_recipe not in config.recipes:
        say(f"[4/5] no assistant policy: needs homes under {config.homes} and the {config.assist_recipe} recipe")
        return None
    bundle = out / f"intent-{config.assist_recipe}"
    if config.early_exit:
        from edgeslm.compress.early_exit import EarlyExitConfig, ensure_early_exit

        bundle = out / ASSIST_BUNDLE
        built = ensure_early_exit(out / "train-run", bundle, EarlyExitConfig(recipe=config.assist_recipe), echo=say)
        say(f"[4/5] {'built' if built else 'reusing'} the early-exit encoder {bundle}")
    path = out / POLICY_FILE
    say(f"[4/5] calibrating the assistant's policy on {len(homes)} homes -> {path}")
    policy = calibrate(CalibrateConfig(homes=[str(h) for h in homes], bundle=bundle))
    write_policy(policy, path)
    c = policy.calibration
    say(f"      order {' -> '.join(policy.order)}, thresholds {policy.thresholds}, cache from {policy.cache_from:.3f}; "
        f"validation accuracy {c['accuracy']:.4f} at {c['cpu_ms_per_answer']:.2f} ms CPU per answer")
    return str(path)


def _same_run(run_dir: Path, config: Any) -> bool:
    """A finished run with this config, trained on data made by today's data code."""
    from edgeslm.data.catalog import code_fingerprint
    from edgeslm.train.run import RunFolder

    folder = RunFolder(run_dir)
    if not folder.is_finished():
        return False
    try:
        record = folder.read()
        return record["config"] == config.to_dict() and record["dataset"].get("code") == code_fingerprint()
    except (BundleError, KeyError, AttributeError):
        return False


def _provenance_of(bundle_dir: Path, run_dir: Path) -> dict[str, Any] | None:
    """The provenance of a bundle that still verifies and was made from this run with today's exporter."""
    from edgeslm.export.onnx import EXPORTER
    from edgeslm.formats.reader import open_bundle
    from edgeslm.train.run import RunFolder

    try:
        prov = open_bundle(bundle_dir).manifest.provenance
        record = RunFolder(run_dir).read()
    except (BundleError, OSError):
        return None
    same = prov.get("train_config") == record["config"] and prov.get("export", {}).get("exporter") == EXPORTER
    return prov if same else None


def _bundle_of(bundle_dir: Path, run_dir: Path) -> bool:
    return _provenance_of(bundle_dir, run_dir) is not None


def _compressed_of(bundle_dir: Path, run_dir: Path, recipe: str) -> bool:
    """Made from this run by today's version of the recipe (a changed built-in recipe recompresses)."""
    from edgeslm.compress.recipe import load_recipe

    prov = _provenance_of(bundle_dir, run_dir)
    return (prov is not None and prov.get("recipe") == load_recipe(recipe).to_dict()
            and prov.get("run") == str(run_dir.resolve()))
