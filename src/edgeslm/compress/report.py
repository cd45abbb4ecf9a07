"""The compression report (accuracy, size, parameters and latency, each against fp32 and ONNX
Runtime's plain quantize_dynamic, measured in the same run) and the bundle that carries it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.compress import measure
from edgeslm.compress.context import CompressContext
from edgeslm.compress.onnx_quant import quiet_ort_quantizer
from edgeslm.compress.recipe import Recipe
from edgeslm.evaluate.runner import evaluate_classifier
from edgeslm.export.onnx import EXPORTER
from edgeslm.formats.writer import BundleWriter


@dataclass
class Variant:
    """The model that met the floor, and how it got there."""

    path: Path
    student: Any
    val: dict[str, Any]
    attempts: list[dict[str, Any]]
    quantization: dict[str, Any] | None
    export_check: dict[str, Any] | None


def measure_variant(ctx: CompressContext, recipe: Recipe, variant: Variant, latency_rounds: int) -> dict[str, Any]:
    """The report: accuracy, size, parameters and latency, each against fp32 (and ONNX Runtime's plain
    quantize_dynamic) measured in this same run, in alternating blocks."""
    from onnxruntime.quantization import quantize_dynamic

    ctx.say("measuring against fp32 and ONNX Runtime's plain quantize_dynamic, in alternating blocks")
    ort_default, raw_fp32 = ctx.run.ort_dynamic_int8, ctx.run.fp32_raw_onnx
    if not ort_default.is_file() or ort_default.stat().st_mtime < raw_fp32.stat().st_mtime:
        # what a user gets from torch.onnx.export + quantize_dynamic with its defaults
        with quiet_ort_quantizer():
            quantize_dynamic(str(raw_fp32), str(ort_default))
    ours = ctx.classifier(variant.path)
    contenders = {"fp32": ctx.fp32, "ort-dynamic-int8": ctx.classifier(ort_default), recipe.name: ours}
    texts = [ex.text for ex in ctx.test]
    b1 = measure.interleaved_latency(contenders, texts, batch=1, rounds=latency_rounds)
    b32 = measure.interleaved_latency(contenders, texts, batch=32, rounds=max(10, latency_rounds // 10), block=5)
    val_m = {k: variant.val[k] for k in ("accuracy", "macro_f1", "n")}
    test_full = evaluate_classifier(ours, ctx.test, timed=False)
    test_m = {k: test_full[k] for k in ("accuracy", "macro_f1", "n")}
    fp32_test = evaluate_classifier(ctx.fp32, ctx.test, timed=False)
    fp32_bytes = measure.file_bytes(ctx.fp32_path)
    size = measure.file_bytes(variant.path)

    def ratio(table: dict[str, Any], base: str) -> float:
        return round(table[recipe.name]["p50_ms"] / table[base]["p50_ms"], 3)

    return {
        "recipe": recipe.name,
        "val": val_m, "test": test_m,
        "fp32": {"val_accuracy": ctx.fp32_val, "test_accuracy": fp32_test["accuracy"],
                 "test_macro_f1": fp32_test["macro_f1"], "bytes": fp32_bytes, **measure.parameters(ctx.teacher)},
        "accuracy_kept": round(test_m["accuracy"] / max(fp32_test["accuracy"], 1e-9), 4),
        "val_accuracy_kept": round(val_m["accuracy"] / max(ctx.fp32_val, 1e-9), 4),
        "floor": recipe.floor, "attempts": variant.attempts,
        "bytes": size, "size_ratio": round(size / fp32_bytes, 4),
        **measure.parameters(variant.student),
        "latency": {"batch1": b1, "batch32": b32},
        "latency_ratio": {"batch1_vs_fp32": ratio(b1, "fp32"),
                          "batch1_vs_ort_dynamic_int8": ratio(b1, "ort-dynamic-int8"),
                          "batch32_vs_fp32": ratio(b32, "fp32")},
        "ort_dynamic_int8_bytes": measure.file_bytes(ort_default),
        "quantization": variant.quantization, "export_check": variant.export_check,
    }


def write_bundle(ctx: CompressContext, recipe: Recipe, variant: Variant, report: dict[str, Any], out: Path,
                 selection: dict[str, Any] | None = None) -> Any:
    """`ctx` needs only record, run, labels, max_length and inputs (select passes its own RunInfo);
    `selection` is what `edgeslm select` predicted and measured for the bundle (manifest version 3)."""
    record = ctx.record
    with BundleWriter(out) as writer:
        model_name = "model.onnx.xz" if str(variant.path).endswith(".xz") else "model.onnx"
        writer.add(variant.path, model_name)
        writer.add(ctx.run.tokenizer_file, "tokenizer.json")
        writer.path("recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
        return writer.finish(
            name=out.name, family="encoder", architecture=record["base_model"]["architecture"],
            task="text-classification", engine="onnxruntime", model_file=model_name, labels=ctx.labels,
            tokenizer={"file": "tokenizer.json", "max_length": ctx.max_length, "inputs": ctx.inputs},
            provenance={"base_model": record["base_model"]["name"], "run": str(ctx.run.path.resolve()),
                        "dataset": record["dataset"], "train_config": record["config"],
                        "recipe": recipe.to_dict(), "compression": report,
                        "export": {"exporter": EXPORTER}},
            evaluation={"val": report["val"], "test": report["test"]},
            profile=report["target"]["profile"],
            **({"selection": selection} if selection else {}),
        )
