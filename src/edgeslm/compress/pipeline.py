"""`compress`: run a recipe on a trained run under the accuracy guard, measure the result side by
side with the fp32 model (and ONNX Runtime's plain quantize_dynamic), and write a bundle.

The guard compares validation accuracy with fp32's, measured in the same run. Below the floor it
tries the recipe's repairs in turn (per-channel int8 weight scales; keep the weight matrices that
quantization damages most in fp32; more distillation), and if the floor is still missed it refuses
to write the bundle and says by how much.

    compress -> guarded_variant (torch steps, export, quantize, repairs) -> measure_variant -> write_bundle
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.compress import measure
from edgeslm.compress.modifiers import QuantizeConfig
from edgeslm.compress.onnx_quant import needs_7bit_weights, quantize, quiet_ort_quantizer, sensitivity_order
from edgeslm.compress.recipe import Recipe
from edgeslm.compress.torch_steps import STEPS, Context
from edgeslm.data.records import Example, read_examples
from edgeslm.errors import ConfigError, EdgeslmError
from edgeslm.evaluate.runner import evaluate_classifier
from edgeslm.export.onnx import (
    EXPORTER,
    architecture_export,
    compare_onnx,
    export_onnx,
    model_inputs,
    read_run,
    verify_export,
)
from edgeslm.formats.hashing import sha256_file
from edgeslm.formats.writer import BundleWriter
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.profiles import THIS_MACHINE, load_profile

log = logging.getLogger(__name__)
REPAIR_KEEP = (2, 4, 8, 16)


def quantize_repair(qcfg: QuantizeConfig | None, keep: list[str], sensitive: Callable[[], list[str]]
                    ) -> tuple[QuantizeConfig, list[str], str] | None:
    """The next quantization repair after a missed floor, cheapest first: per-channel int8 weight
    scales (per-tensor ones run ~10% faster in ONNX Runtime's integer kernels, so recipes start
    there), then the 2, 4, 8... MatMuls that quantization damages most kept in fp32, up to the
    recipe's repair_keep_fp32. None when these repairs are spent."""
    if qcfg is None:
        return None
    if qcfg.scheme.startswith("int8") and not qcfg.per_channel:
        return dataclasses.replace(qcfg, per_channel=True), keep, "per-channel weight scales"
    if len(keep) < qcfg.repair_keep_fp32:
        n = next((k for k in REPAIR_KEEP if k > len(keep)), qcfg.repair_keep_fp32)
        keep = sensitive()[: min(n, qcfg.repair_keep_fp32)]
        return qcfg, keep, f"keeping the {len(keep)} most quantization-sensitive MatMuls in fp32"
    return None


def for_target(recipe: Recipe, isa: tuple[str, ...]) -> Recipe:
    """The recipe with `reduce_range: auto` settled for a target CPU with this ISA."""
    q = recipe.quantize
    if q is None or q.reduce_range != "auto" or q.scheme == "int4-weight":
        return recipe
    data = recipe.to_dict()
    for m in data["modifiers"]:
        if m["type"] == "quantize":
            m["reduce_range"] = "on" if needs_7bit_weights(isa) else "off"
    return Recipe.from_dict(data, f"recipe {recipe.name}")


class GuardError(EdgeslmError):
    """The compressed model missed its accuracy floor even after repair; no bundle was written."""


def resolve_source(source: Path) -> Path:
    """A run folder, or a bundle whose provenance names the run it came from."""
    source = Path(source)
    if (source / "run.json").is_file():
        return source
    if (source / "manifest.json").is_file():
        from edgeslm.formats.reader import open_bundle

        m = open_bundle(source).manifest
        if m.family != "encoder":
            raise ConfigError(f"{source}: a {m.family} bundle; these recipes compress encoders (decoders: GGUF types)")
        run = m.provenance.get("run")
        if run and (Path(run) / "run.json").is_file():
            return Path(run)
        raise ConfigError(f"{source}: the bundle does not name a training run on this machine; pass the run folder")
    raise ConfigError(f"{source}: neither a training run (run.json) nor a bundle (manifest.json)")


def raw_fp32_path(run: Path) -> Path:
    """The run's unfused fp32 export: what a plain torch.onnx.export gives a user."""
    return run / "onnx" / "model.fp32.raw.onnx"


def fp32_onnx(run: Path, teacher: Any, tokenizer: Any, max_length: int) -> tuple[Path, list[str]]:
    """The run's fp32 ONNX export, cached next to the weights it came from. A cache whose inputs
    differ from what the model takes is stale (before per-architecture inputs, a DistilBERT run
    cached BERT's token_type_ids)."""
    folder = run / "onnx"
    folder.mkdir(exist_ok=True)
    stamp = folder / "fp32.json"
    weights_sha = sha256_file(run / "model" / "model.safetensors")
    path = folder / "model.fp32.onnx"
    if stamp.is_file() and path.is_file() and raw_fp32_path(run).is_file():
        meta = json.loads(stamp.read_text(encoding="utf-8"))
        fresh = meta.get("weights_sha256") == weights_sha and meta.get("exporter") == EXPORTER
        if fresh and meta.get("inputs") == model_inputs(teacher, tokenizer(["turn on the lights"])):
            return path, meta["inputs"]
    names = export_onnx(teacher, tokenizer, path, max_length, keep_raw=raw_fp32_path(run))
    stamp.write_text(json.dumps({"weights_sha256": weights_sha, "exporter": EXPORTER, "inputs": names}),
                     encoding="utf-8")
    return path, names


@dataclass
class Job:
    """What every stage of one compression needs: the run, its data, the fp32 teacher and its export."""

    run: Path
    record: dict[str, Any]
    labels: list[str]
    max_length: int
    seed: int
    teacher: Any
    tokenizer: Any
    fp32_path: Path
    inputs: list[str]
    val: list[Example]
    test: list[Example]
    tmp: Path
    say: Callable[[str], Any]
    fp32: OnnxClassifier = field(init=False)
    fp32_val: float = field(init=False)

    def __post_init__(self) -> None:
        self.fp32 = self.classifier(self.fp32_path)
        self.fp32_val = evaluate_classifier(self.fp32, self.val, timed=False)["accuracy"]

    @property
    def tok_file(self) -> Path:
        return self.run / "model" / "tokenizer.json"

    def classifier(self, path: Path) -> OnnxClassifier:
        return OnnxClassifier(path, self.tok_file, self.labels, self.max_length, self.inputs, spin=False)


@dataclass
class Variant:
    """The model that met the floor, and how it got there."""

    path: Path
    student: Any
    val: dict[str, Any]
    attempts: list[dict[str, Any]]
    quantization: dict[str, Any] | None
    export_check: dict[str, Any] | None


def compress(source: Path, recipe: Recipe, out: Path, calibration: Path | None = None, progress: bool = True,
             echo: Callable[[str], Any] | None = None, latency_rounds: int = 300,
             profile: str | Path = THIS_MACHINE) -> dict[str, Any]:
    """`profile` is the device the bundle is for: its ISA decides `reduce_range: auto` (7-bit int8
    weights on x86 without VNNI), and its name goes into the report."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    say = echo or (lambda _: None)
    hf_logging.set_verbosity_error()
    target = load_profile(profile)
    run = resolve_source(source)
    record = read_run(run)
    family = "encoder"
    if family not in recipe.families:
        raise ConfigError(f"recipe {recipe.name} supports {', '.join(recipe.families)}, not {family} models")
    labels, max_length, seed = record["labels"], record["max_length"], int(record["config"]["seed"])
    val = read_examples(run / "data" / "val.jsonl", labels=labels)
    test = read_examples(run / "data" / "test.jsonl", labels=labels)
    calib_rows = read_examples(calibration, labels=labels) if calibration else None
    torch.manual_seed(seed)

    teacher = AutoModelForSequenceClassification.from_pretrained(str(run / "model")).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(run / "model"))
    fp32_path, inputs = fp32_onnx(run, teacher, tokenizer, max_length)

    train_rows: list[Example] = []
    if recipe.torch_steps or (recipe.quantize and recipe.quantize.scheme == "int8-static" and not calib_rows):
        from edgeslm.data.catalog import load_dataset

        train_rows = load_dataset(record["config"]["data"], seed=seed).train

    with tempfile.TemporaryDirectory(prefix="edgeslm-compress-") as tmp_name:
        job = Job(run, record, labels, max_length, seed, teacher, tokenizer, fp32_path, inputs, val, test,
                  Path(tmp_name), say)
        floor = recipe.floor * job.fp32_val
        say(f"fp32 validation accuracy {job.fp32_val:.4f}; floor {recipe.floor:.0%} of it = {floor:.4f}")
        ctx = Context(teacher, tokenizer, train_rows, labels, max_length, seed, progress)
        # the bundle keeps the recipe as written; the report says what `auto` became for the target
        variant = guarded_variant(job, for_target(recipe, target.isa), ctx, calib_rows or train_rows, floor)
        report = measure_variant(job, recipe, variant, latency_rounds)
        report["target"] = {"profile": target.name, "isa": list(target.isa)}
        manifest = write_bundle(job, recipe, variant, report, Path(out))
    return {"bundle": str(out), "manifest": manifest.to_dict(), "report": report}


def guarded_variant(job: Job, recipe: Recipe, ctx: Context, calib_rows: list[Example], floor: float) -> Variant:
    """Run the recipe, then its repairs until the validation accuracy meets `floor`; GuardError if
    the repairs run out first. The student is exported again only after it was retrained."""
    say = job.say
    student, stepper = job.teacher, None
    for kind, cfg in recipe.torch_steps:
        stepper = STEPS[kind](cfg)
        say(f"{kind}: {json.dumps({k: v for k, v in cfg.to_dict().items() if k != 'version'})}")
        student = stepper.build(student, ctx)
    attempts: list[dict[str, Any]] = []
    keep: list[str] = []
    qcfg = recipe.quantize
    retrained = False
    exported: tuple[Path, Path, dict[str, Any] | None] | None = None  # fused, unfused, check

    def can_retrain() -> bool:  # the recipe's one torch repair: more distillation steps
        return stepper is not None and not retrained and stepper.config.repair_steps > 0

    def retrain(model: Any) -> Any:
        nonlocal retrained
        assert stepper is not None
        retrained = True
        say(f"repair: {stepper.config.repair_steps} more distillation steps")
        return stepper.repair(model, ctx)

    feeds = None  # int8-static calibration: the same sentences for every attempt
    if qcfg is not None and qcfg.scheme == "int8-static":
        sample = random.Random(job.seed).sample(calib_rows, min(qcfg.calibration_samples, len(calib_rows)))
        feeds = [job.fp32.encode([ex.text]) for ex in sample]

    while True:
        if exported is None:
            exported = _export(job, student if stepper is not None else None)
            if stepper is not None:
                student_acc = evaluate_classifier(job.classifier(exported[0]), job.val, timed=False)["accuracy"]
                say(f"student before quantization: validation accuracy {student_acc:.4f}")
                if student_acc < floor and can_retrain():
                    # quantization cannot give back what pruning or distillation lost: retrain first
                    attempts.append({"stage": "student", "torch_repair": False, "val_accuracy": student_acc})
                    student, exported = retrain(student), None
                    continue
        src, raw, check = exported
        qinfo, model_path = None, src
        if qcfg is not None:
            # int8 quantizes the fused graph's Attention op whole; 4-bit blocks need the plain
            # MatMuls of the unfused graph
            qsrc = raw if qcfg.scheme == "int4-weight" else src
            qinfo = quantize(qsrc, job.tmp / "model.onnx", qcfg, feeds, keep)
            model_path = job.tmp / qinfo["file"]
        got = evaluate_classifier(job.classifier(model_path), job.val, timed=False)
        attempts.append({"keep_fp32": list(keep), "per_channel": bool(qcfg and qcfg.per_channel),
                         "torch_repair": retrained, "val_accuracy": got["accuracy"]})
        say(f"attempt {len(attempts)}: validation accuracy {got['accuracy']:.4f} (floor {floor:.4f})")
        if got["accuracy"] >= floor:
            return Variant(model_path, student, got, attempts, qinfo, check)
        repair = quantize_repair(qcfg, keep, lambda: sensitivity_order(qsrc, qcfg))  # noqa: B023 (called at once)
        if repair is not None:
            qcfg, keep, what = repair
            say(f"repair: {what}")
            continue
        if can_retrain():
            student, exported, keep = retrain(student), None, []
            continue
        raise GuardError(
            f"recipe {recipe.name} missed its floor: validation accuracy {got['accuracy']:.4f} < {floor:.4f} "
            f"({recipe.floor:.0%} of fp32 {job.fp32_val:.4f}), short by {floor - got['accuracy']:.4f} "
            f"after {len(attempts)} attempt(s); no bundle written"
        )


def _export(job: Job, student: Any | None) -> tuple[Path, Path, dict[str, Any] | None]:
    """The fused and unfused ONNX files of the student (None: the teacher's cached export), with the
    check that the student's export agrees with PyTorch (a BundleError when it does not)."""
    if student is None:
        return job.fp32_path, raw_fp32_path(job.run), None
    src, raw = job.tmp / "student.onnx", job.tmp / "student.raw.onnx"
    export_onnx(student, job.tokenizer, src, job.max_length, keep_raw=raw)
    check = compare_onnx(student, job.tokenizer, src, [e.text for e in job.val[:64]], job.max_length, job.inputs)
    return src, raw, verify_export(check, architecture_export(student.config.model_type).tolerance)


def measure_variant(job: Job, recipe: Recipe, variant: Variant, latency_rounds: int) -> dict[str, Any]:
    """The report: accuracy, size, parameters and latency, each against fp32 (and ONNX Runtime's plain
    quantize_dynamic) measured in this same run, in alternating blocks."""
    from onnxruntime.quantization import quantize_dynamic

    job.say("measuring against fp32 and ONNX Runtime's plain quantize_dynamic, in alternating blocks")
    ort_default = job.run / "onnx" / "model.ort-dynamic-int8.onnx"
    raw_fp32 = raw_fp32_path(job.run)
    if not ort_default.is_file() or ort_default.stat().st_mtime < raw_fp32.stat().st_mtime:
        # what a user gets from torch.onnx.export + quantize_dynamic with its defaults
        with quiet_ort_quantizer():
            quantize_dynamic(str(raw_fp32), str(ort_default))
    ours = job.classifier(variant.path)
    contenders = {"fp32": job.fp32, "ort-dynamic-int8": job.classifier(ort_default), recipe.name: ours}
    texts = [ex.text for ex in job.test]
    b1 = measure.interleaved_latency(contenders, texts, batch=1, rounds=latency_rounds)
    b32 = measure.interleaved_latency(contenders, texts, batch=32, rounds=max(10, latency_rounds // 10), block=5)
    val_m = {k: variant.val[k] for k in ("accuracy", "macro_f1", "n")}
    test_full = evaluate_classifier(ours, job.test, timed=False)
    test_m = {k: test_full[k] for k in ("accuracy", "macro_f1", "n")}
    fp32_test = evaluate_classifier(job.fp32, job.test, timed=False)
    fp32_bytes = measure.file_bytes(job.fp32_path)
    size = measure.file_bytes(variant.path)

    def ratio(table: dict[str, Any], base: str) -> float:
        return round(table[recipe.name]["p50_ms"] / table[base]["p50_ms"], 3)

    return {
        "recipe": recipe.name,
        "val": val_m, "test": test_m,
        "fp32": {"val_accuracy": job.fp32_val, "test_accuracy": fp32_test["accuracy"],
                 "test_macro_f1": fp32_test["macro_f1"], "bytes": fp32_bytes, **measure.parameters(job.teacher)},
        "accuracy_kept": round(test_m["accuracy"] / max(fp32_test["accuracy"], 1e-9), 4),
        "val_accuracy_kept": round(val_m["accuracy"] / max(job.fp32_val, 1e-9), 4),
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


def write_bundle(job: Job, recipe: Recipe, variant: Variant, report: dict[str, Any], out: Path) -> Any:
    record = job.record
    with BundleWriter(out) as writer:
        model_name = "model.onnx.xz" if str(variant.path).endswith(".xz") else "model.onnx"
        writer.add(variant.path, model_name)
        writer.add(job.tok_file, "tokenizer.json")
        writer.path("recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
        return writer.finish(
            name=out.name, family="encoder", architecture=record["base_model"]["architecture"],
            task="text-classification", engine="onnxruntime", model_file=model_name, labels=job.labels,
            tokenizer={"file": "tokenizer.json", "max_length": job.max_length, "inputs": job.inputs},
            provenance={"base_model": record["base_model"]["name"], "run": str(job.run.resolve()),
                        "dataset": record["dataset"], "train_config": record["config"],
                        "recipe": recipe.to_dict(), "compression": report,
                        "export": {"exporter": EXPORTER}},
            evaluation={"val": report["val"], "test": report["test"]},
            profile=report["target"]["profile"],
        )
