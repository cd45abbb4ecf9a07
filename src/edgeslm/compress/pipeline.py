"""`compress`: run a recipe on a trained run under the quality guard, measure the result side by
side with the fp32 model (and ONNX Runtime's plain quantize_dynamic), and write a bundle. Decoder
recipes (GGUF types) go to compress/gguf.py through the same recipe and guard.

    compress -> CompressContext.open -> Guard.run(attempt) -> report.measure_variant -> report.write_bundle

An attempt runs the recipe's torch steps once, exports the student (cached until a repair
retrains it), quantizes, and measures validation accuracy; the guard (guard.py) decides what to
repair next.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.compress.context import CompressContext
from edgeslm.compress.guard import ENCODER_REPAIRS, FINAL, STUDENT, Bar, Guard, GuardError, Outcome
from edgeslm.compress.modifiers import QuantizeConfig
from edgeslm.compress.onnx_quant import needs_7bit_weights, quantize, sensitivity_order
from edgeslm.compress.recipe import Recipe
from edgeslm.compress.report import Variant, measure_variant, write_bundle
from edgeslm.compress.torch_steps import STEPS
from edgeslm.data.records import read_examples
from edgeslm.errors import ConfigError
from edgeslm.export.onnx import architecture_export, compare_onnx, export_onnx, verify_export
from edgeslm.runtime.profiles import THIS_MACHINE, load_profile
from edgeslm.train.run import RunFolder

__all__ = ["GuardError", "compress", "compress_encoder", "for_target", "resolve_source"]


def compress(source: Path | str, recipe: Recipe, out: Path, calibration: Path | None = None, progress: bool = True,
             echo: Callable[[str], Any] | None = None, latency_rounds: int = 300,
             profile: str | Path = THIS_MACHINE, eval_text: Path | None = None, threads: int = 2) -> dict[str, Any]:
    """SOURCE is a training run or a bundle made from one (encoder recipes), or a decoder model name or
    path (GGUF recipes). `profile` is the device the bundle is for."""
    if recipe.families == ("decoder",):
        from edgeslm.compress.gguf import compress_decoder

        return compress_decoder(str(source), recipe, Path(out), eval_text=eval_text, threads=threads, echo=echo)
    return compress_encoder(Path(source), recipe, Path(out), calibration, progress, echo, latency_rounds, profile)


def compress_encoder(source: Path, recipe: Recipe, out: Path, calibration: Path | None = None, progress: bool = True,
                     echo: Callable[[str], Any] | None = None, latency_rounds: int = 300,
                     profile: str | Path = THIS_MACHINE) -> dict[str, Any]:
    """`profile`'s ISA decides `reduce_range: auto` (7-bit int8 weights on x86 without VNNI), and its
    name goes into the report."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    target = load_profile(profile)
    run = resolve_source(source)
    if "encoder" not in recipe.families:
        raise ConfigError(f"recipe {recipe.name} supports {', '.join(recipe.families)}, not encoder models")
    labels = run.read()["labels"]
    calib_rows = read_examples(calibration, labels=labels) if calibration else None
    needs_train = bool(recipe.torch_steps) or (recipe.quantize is not None and recipe.quantize.scheme == "int8-static"
                                               and not calib_rows)
    with CompressContext.open(run, needs_train, progress, echo) as ctx:
        bar = Bar("validation accuracy", recipe.floor * ctx.fp32_val, True, f"{recipe.floor:.0%} of fp32 {ctx.fp32_val:.4f}")
        ctx.say(f"fp32 validation accuracy {ctx.fp32_val:.4f}; floor {recipe.floor:.0%} of it = {bar.limit:.4f}")
        # the bundle keeps the recipe as written; the report says what `auto` became for the target
        variant = guarded_variant(ctx, for_target(recipe, target.isa), calib_rows or ctx.train, bar)
        report = measure_variant(ctx, recipe, variant, latency_rounds)
        report["target"] = {"profile": target.name, "isa": list(target.isa)}
        manifest = write_bundle(ctx, recipe, variant, report, Path(out))
    return {"bundle": str(out), "manifest": manifest.to_dict(), "report": report}


@dataclass
class EncoderState:
    """What the guard's repairs change between attempts."""

    ctx: CompressContext
    student: Any
    stepper: Any | None  # the recipe's torch step, which can retrain (MoreDistillation)
    qcfg: QuantizeConfig | None
    keep: list[str]
    exported: tuple[Path, Path, dict[str, Any] | None] | None = None  # fused, unfused, check
    retrained: bool = False
    student_checked: bool = False
    sensitive: Callable[[], list[str]] = list  # the MatMuls by quantization damage, most first


def guarded_variant(ctx: CompressContext, recipe: Recipe, calib_rows: list[Any], bar: Bar) -> Variant:
    """Run the recipe's torch steps, then quantize and repair under the guard; GuardError when the
    repairs run out first. The student is exported again only after it was retrained."""
    student, stepper = ctx.teacher, None
    for kind, cfg in recipe.torch_steps:
        stepper = STEPS[kind](cfg)
        ctx.say(f"{kind}: {json.dumps({k: v for k, v in cfg.to_dict().items() if k != 'version'})}")
        student = stepper.build(student, ctx)
    feeds = None  # int8-static calibration: the same sentences for every attempt
    qcfg = recipe.quantize
    if qcfg is not None and qcfg.scheme == "int8-static":
        sample = random.Random(ctx.seed).sample(calib_rows, min(qcfg.calibration_samples, len(calib_rows)))
        feeds = [ctx.fp32.encode([ex.text]) for ex in sample]
    state = EncoderState(ctx, student, stepper, qcfg, [])

    def attempt(s: EncoderState) -> Outcome:
        if s.exported is None:
            s.exported = _export(ctx, s.student if s.stepper is not None else None)
            s.student_checked = s.stepper is None
        src, raw, check = s.exported
        if not s.student_checked:
            acc = ctx.val_accuracy(src)["accuracy"]
            ctx.say(f"student before quantization: validation accuracy {acc:.4f}")
            s.student_checked = bar.met(acc)
            if not s.student_checked:
                return Outcome(STUDENT, acc, {"stage": "student", "torch_repair": s.retrained, "val_accuracy": acc})
        quantization, path = None, src
        if s.qcfg is not None:
            # int8 quantizes the fused graph's Attention op whole; 4-bit blocks need the plain
            # MatMuls of the unfused graph
            qsrc, qcfg_now = (raw if s.qcfg.scheme == "int4-weight" else src), s.qcfg
            quantization = quantize(qsrc, ctx.tmp / "model.onnx", s.qcfg, feeds, s.keep)
            path = ctx.tmp / quantization["file"]
            s.sensitive = lambda: sensitivity_order(qsrc, qcfg_now)
        got = ctx.val_accuracy(path)
        record = {"keep_fp32": list(s.keep), "per_channel": bool(s.qcfg and s.qcfg.per_channel),
                  "torch_repair": s.retrained, "val_accuracy": got["accuracy"]}
        return Outcome(FINAL, got["accuracy"], record, (path, got, quantization, check))

    guard = Guard(bar, ENCODER_REPAIRS, f"recipe {recipe.name}", ctx.say)
    outcome, attempts = guard.run(state, attempt)
    path, got, quantization, check = outcome.result
    return Variant(path, state.student, got, attempts, quantization, check)


def _export(ctx: CompressContext, student: Any | None) -> tuple[Path, Path, dict[str, Any] | None]:
    """The fused and unfused ONNX files of the student (None: the teacher's cached export), with the
    check that the student's export agrees with PyTorch (a BundleError when it does not)."""
    if student is None:
        return ctx.fp32_path, ctx.run.fp32_raw_onnx, None
    src, raw = ctx.tmp / "student.onnx", ctx.tmp / "student.raw.onnx"
    export_onnx(student, ctx.tokenizer, src, ctx.max_length, keep_raw=raw)
    check = compare_onnx(student, ctx.tokenizer, src, [e.text for e in ctx.val[:64]], ctx.max_length, ctx.inputs)
    return src, raw, verify_export(check, architecture_export(student.config.model_type).tolerance)


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


def resolve_source(source: Path) -> RunFolder:
    """A run folder, or a bundle whose provenance names the run it came from."""
    source = Path(source)
    if RunFolder(source).is_run():
        return RunFolder(source)
    if (source / "manifest.json").is_file():
        from edgeslm.formats.reader import open_bundle

        m = open_bundle(source).manifest
        if m.family != "encoder":
            raise ConfigError(f"{source}: a {m.family} bundle; these recipes compress encoders (decoders: the gguf-* recipes "
                              "on the model itself)")
        run = m.provenance.get("run")
        if run and RunFolder(Path(run)).is_run():
            return RunFolder(Path(run))
        raise ConfigError(f"{source}: the bundle does not name a training run on this machine; pass the run folder")
    raise ConfigError(f"{source}: neither a training run (run.json) nor a bundle (manifest.json), which encoder "
                      "recipes take; a decoder (smollm2-135m, a LLaMA folder or .gguf) takes a gguf-* recipe")
