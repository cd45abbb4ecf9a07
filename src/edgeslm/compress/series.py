"""`compress` for a time-series run: the fp32 graph (export/series.py, checked against PyTorch) quantized
to int8 by ONNX Runtime under the same guard as text encoders (guard.py): validation accuracy must keep
the recipe's floor x fp32's; below it the repairs run (per-channel scales, then the most damaged MatMuls
kept in fp32), and when they run out nothing is written.

A graph with random-convolution features (`rocket`) keeps that part in fp32: int8 covers the transformers.

Only int8-dynamic applies here: the models are a few hundred kB, so int4's saving is small, and static
scales need per-tensor calibration of the conv stem that the recipe format does not describe.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.compress import measure
from edgeslm.compress.guard import ENCODER_REPAIRS, FINAL, Bar, Guard, Outcome
from edgeslm.compress.modifiers import QuantizeConfig
from edgeslm.compress.onnx_quant import quantize, sensitivity_order
from edgeslm.compress.pipeline import for_target
from edgeslm.compress.recipe import Recipe
from edgeslm.errors import ConfigError
from edgeslm.evaluate.series import evaluate_series_classifier
from edgeslm.export.series import (
    EXPORTER,
    compare_series,
    export_series_onnx,
    provenance,
    run_splits,
    verify_series_export,
)
from edgeslm.formats.manifest import SERIES_ENGINE, SERIES_TASK
from edgeslm.formats.writer import BundleWriter
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.runtime.profiles import THIS_MACHINE, load_profile
from edgeslm.train.series import load_series_model


@dataclass
class SeriesState:
    """What the guard's repairs change between attempts (the fields guard.py's encoder repairs read)."""

    qcfg: QuantizeConfig
    keep: list[str] = field(default_factory=list)
    stepper: Any = None  # no torch step: the distillation repair never applies
    retrained: bool = False
    sensitive: Callable[[], list[str]] = list


def compress_series(run: Path, recipe: Recipe, out: Path, profile: str | Path = THIS_MACHINE,
                    echo: Callable[[str], Any] | None = None, latency_rounds: int = 300) -> dict[str, Any]:
    say = echo or (lambda _: None)
    target = load_profile(profile)
    recipe_now = for_target(recipe, target.isa)
    q = recipe_now.quantize
    if recipe_now.torch_steps or q is None or q.scheme != "int8-dynamic":
        raise ConfigError(f"recipe {recipe.name}: a time-series run takes int8-dynamic (one quantize step, scheme "
                          "int8-dynamic) and no torch steps")
    if "encoder" not in recipe.families:
        raise ConfigError(f"recipe {recipe.name} supports {', '.join(recipe.families)}, not encoder models")
    model, record = load_series_model(run)
    labels = record["labels"]
    splits = run_splits(run, labels)
    (x_val, y_val), (x_test, y_test) = splits["val"], splits["test"]
    with tempfile.TemporaryDirectory(prefix="edgeslm-series-") as tmp_name:
        tmp = Path(tmp_name)
        fp32_path = tmp / "model.fp32.onnx"
        export_series_onnx(model, fp32_path)
        check = verify_series_export(compare_series(model, fp32_path, x_val[:256], labels))
        fp32 = SeriesClassifier(fp32_path, labels, threads=1, spin=False)
        fp32_val = evaluate_series_classifier(fp32, x_val, y_val, timed=False)["accuracy"]
        exact = _rocket_nodes(fp32_path)
        bar = Bar("validation accuracy", recipe.floor * fp32_val, True, f"{recipe.floor:.0%} of fp32 {fp32_val:.4f}")
        say(f"fp32 validation accuracy {fp32_val:.4f}; floor {recipe.floor:.0%} of it = {bar.limit:.4f}")

        def attempt(s: SeriesState) -> Outcome:
            qcfg_now = s.qcfg
            info = quantize(fp32_path, tmp / "model.onnx", qcfg_now, None, [*s.keep, *exact])
            s.sensitive = lambda: sensitivity_order(fp32_path, qcfg_now)
            clf = SeriesClassifier(tmp / info["file"], labels, threads=1, spin=False)
            got = evaluate_series_classifier(clf, x_val, y_val, timed=False)
            record_ = {"keep_fp32": list(s.keep), "fp32_by_design": exact, "per_channel": s.qcfg.per_channel,
                       "val_accuracy": got["accuracy"]}
            return Outcome(FINAL, got["accuracy"], record_, (tmp / info["file"], got, info))

        outcome, attempts = Guard(bar, ENCODER_REPAIRS, f"recipe {recipe.name}", say).run(SeriesState(q), attempt)
        path, val_m, info = outcome.result
        ours = SeriesClassifier(path, labels, threads=1, spin=False)
        test_m = evaluate_series_classifier(ours, x_test, y_test, timed=False)
        fp32_test = evaluate_series_classifier(fp32, x_test, y_test, timed=False)
        agree = float((ours.probabilities(x_test).argmax(-1) == fp32.probabilities(x_test).argmax(-1)).mean())
        series = list(x_test[: min(len(x_test), 256)])
        latency = measure.interleaved_latency({"fp32": fp32, recipe.name: ours}, series, batch=1, rounds=latency_rounds)
        size, fp32_bytes = measure.file_bytes(path), measure.file_bytes(fp32_path)
        report = {
            "recipe": recipe.name, "target": {"profile": target.name, "isa": list(target.isa)},
            "val": {k: val_m[k] for k in ("accuracy", "macro_f1", "n")},
            "test": {k: test_m[k] for k in ("accuracy", "macro_f1", "n")},
            "fp32": {"val_accuracy": fp32_val, "test_accuracy": fp32_test["accuracy"],
                     "test_macro_f1": fp32_test["macro_f1"], "bytes": fp32_bytes, "params": record["params"]},
            "accuracy_kept": round(test_m["accuracy"] / max(fp32_test["accuracy"], 1e-9), 4),
            "val_accuracy_kept": round(val_m["accuracy"] / max(fp32_val, 1e-9), 4),
            "test_argmax_agreement_with_fp32": round(agree, 4),
            "floor": recipe.floor, "attempts": attempts, "bytes": size, "size_ratio": round(size / fp32_bytes, 4),
            "latency": {"batch1_1thread": latency},
            "latency_ratio": {"batch1_vs_fp32": round(latency[recipe.name]["p50_ms"] / latency["fp32"]["p50_ms"], 3)},
            "quantization": info,
        }
        with BundleWriter(out) as writer:
            writer.add(path, "model.onnx")
            writer.path("recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
            manifest = writer.finish(
                name=Path(out).name, family="encoder", architecture="ts-transformer", task=SERIES_TASK,
                engine=SERIES_ENGINE, model_file="model.onnx", labels=labels, profile=target.name,
                provenance={**provenance(record, {"exporter": EXPORTER, **check}), "run": str(Path(run).resolve()),
                            "recipe": recipe.to_dict(), "compression": report},
                evaluation={"val": report["val"], "test": report["test"]})
    return {"bundle": str(out), "manifest": manifest.to_dict(), "report": report}


def _rocket_nodes(path: Path) -> list[str]:
    """The random-convolution classifier's nodes (its ridge head among them): kept fp32. Its features are
    exact comparisons, and its head, a few thousand weights fitted in closed form, costs microseconds."""
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.name.startswith("/rocket/")]
