"""Early exit: from a training run, an encoder bundle cut into segments with an exit head after each
but the last (engine `onnxruntime-early-exit`, served by runtime/engines/early_exit.py).

    build_early_exit -> CompressContext.open -> exit_heads (backbone frozen) -> export/segments.py
      -> Guard.run(quantize every segment as the recipe does) -> exit_math.choose_thresholds -> bundle

The segments are quantized with the recipe's quantize modifier (the demo's int8-static by default),
each calibrated on what the quantized segment before it gives, and held to the recipe's floor at full
depth by the same guard and repairs as `compress`. The exit thresholds are then chosen on the run's
validation split, never on evaluation sets: the least encoder compute whose validation accuracy stays
within `max_drop` of the quantized model at full depth.

A run trained on ha-intents also gets the learned slot tagger (train/slot_tagger.py): a linear head on the
quantized first segment's token states, fitted on generated sentences with their slot spans, stored as
slot-tagger.json beside the segments. Every run also gets the n-gram head (train/ngram_head.py): a linear
classifier over the training split's character and word n-grams, ngram-head.json, which the assistant asks
before it runs the encoder (runtime/tiers/router.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.compress.context import CompressContext
from edgeslm.compress.exit_heads import pooled_states, train_head
from edgeslm.compress.exit_math import choose_thresholds
from edgeslm.compress.guard import ENCODER_REPAIRS, FINAL, Bar, Guard, Outcome
from edgeslm.compress.modifiers import QuantizeConfig
from edgeslm.compress.onnx_quant import quantize, reduce_range, weight_error, weight_matmuls
from edgeslm.compress.pipeline import for_target, resolve_source
from edgeslm.compress.recipe import load_recipe
from edgeslm.config import Config
from edgeslm.errors import BundleError, ConfigError
from edgeslm.evaluate.metrics import classification_metrics
from edgeslm.export.onnx import EXPORTER
from edgeslm.export.segments import export_segments
from edgeslm.formats.early_exit import HIDDEN_IN, HIDDEN_OUT, MASK, PLAN_FILE, ExitPlan, Segment
from edgeslm.formats.hashing import sha256_file
from edgeslm.formats.manifest import EARLY_EXIT_ENGINE
from edgeslm.formats.ngram_head import NGRAM_FILE, NgramHead
from edgeslm.formats.slot_tagger import TAGGER_FILE, TaggerHead
from edgeslm.formats.writer import BundleWriter
from edgeslm.runtime.engines.early_exit import EarlyExitClassifier
from edgeslm.runtime.engines.onnx import load_session
from edgeslm.runtime.profiles import THIS_MACHINE, load_profile
from edgeslm.train.ngram_head import fit_ngram_head, with_floor
from edgeslm.train.run import RunFolder
from edgeslm.train.slot_tagger import SlotTaggerConfig, fit_slot_tagger

SEGMENT_EXPORTER = f"{EXPORTER}+segments-v1"  # a change to export/segments.py bumps it: demo caches go stale


@dataclass(frozen=True)
class EarlyExitConfig(Config):
    exits: list[int] = field(default_factory=lambda: [2, 4])  # encoder layers after which an exit head sits
    recipe: str = "int8-static"  # a built-in encoder recipe (or YAML) with one quantize modifier: how segments are quantized
    head_samples: int = 4000  # training sentences the heads are fitted on (the backbone runs over them once)
    head_steps: int = 300  # full-batch AdamW steps per head
    head_learning_rate: float = 0.01
    head_weight_decay: float = 0.01
    max_drop: float = 0.005  # validation accuracy the exits may cost, against the quantized model at full depth
    tagger_sentences: int = 6000  # generated sentences the slot tagger is fitted on; 0: no tagger
    tagger_window: int = 2  # neighbouring word pieces on each side a tag sees (window 2 beat 1 by 4 points of held-out F1)
    # the n-gram head (train/ngram_head.py), fitted on the run's training split: the assistant's look before the encoder
    ngram_head: bool = True

    def validate(self) -> None:
        if not self.exits or self.exits != sorted(set(self.exits)) or self.exits[0] < 1:
            raise ConfigError(f"early exit: exits must be strictly increasing layer counts >= 1, got {self.exits}")
        if self.head_samples < 32 or self.head_steps < 1:
            raise ConfigError("early exit: head_samples >= 32 and head_steps >= 1")
        if not 0 < self.head_learning_rate < 1 or self.head_weight_decay < 0:
            raise ConfigError("early exit: head_learning_rate in (0, 1), head_weight_decay >= 0")
        if not 0 <= self.max_drop < 0.5:
            raise ConfigError("early exit: max_drop is a share of accuracy in [0, 0.5)")
        if self.tagger_sentences:
            SlotTaggerConfig(sentences=self.tagger_sentences, window=self.tagger_window)  # its own checks


@dataclass
class SegmentsState:
    """What the guard's repairs change between attempts (compress/guard.py reads these names)."""

    qcfg: QuantizeConfig
    keep: list[tuple[int, str]] = field(default_factory=list)  # (segment, MatMul) kept in fp32
    sensitive: Callable[[], list[tuple[int, str]]] = list
    stepper: Any = None  # no torch step to retrain: the backbone is the run's
    retrained: bool = False
    student_checked: bool = True


def build_early_exit(source: Path, out: Path, config: EarlyExitConfig | None = None,
                     echo: Callable[[str], Any] | None = None, profile: str | Path = THIS_MACHINE,
                     progress: bool = False) -> dict[str, Any]:
    """Write the early-exit bundle of the run (or of a bundle made from one) `source` to `out`."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = config or EarlyExitConfig()
    target = load_profile(profile)
    recipe = for_target(load_recipe(config.recipe), target.isa)
    if recipe.quantize is None or recipe.torch_steps or "encoder" not in recipe.families:
        raise ConfigError(f"recipe {recipe.name}: early exit quantizes the segments with an encoder recipe made of one "
                          "quantize modifier (int8-static, int8-dynamic, int4-weight)")
    run = resolve_source(Path(source))
    with CompressContext.open(run, needs_train=True, progress=progress, say=echo) as ctx:
        n_layers = int(ctx.teacher.config.num_hidden_layers)
        if config.exits[-1] >= n_layers:
            raise ConfigError(f"early exit: exits {config.exits} must stay below the model's {n_layers} layers")
        heads, head_report = _train_heads(ctx, config)
        sample = [ex.text for ex in ctx.val[:64]]
        ctx.say(f"exporting {len(config.exits) + 1} segments (exits after layers {config.exits})")
        fp32_dir = ctx.tmp / "fp32"
        fp32_dir.mkdir()
        fp32_paths, inputs, check = export_segments(ctx.teacher, ctx.tokenizer, config.exits, heads, fp32_dir, sample,
                                                    ctx.max_length)
        if inputs != ctx.inputs:
            raise BundleError(f"the segments take {inputs}, the run's export {ctx.inputs}")
        layers = [*config.exits, n_layers]
        plan = ExitPlan(int(ctx.teacher.config.hidden_size),
                        tuple(Segment(p.name, n, None) for p, n in zip(fp32_paths, layers, strict=True)))
        bar = Bar("validation accuracy", recipe.floor * ctx.fp32_val, True, f"{recipe.floor:.0%} of fp32 {ctx.fp32_val:.4f}")
        ctx.say(f"fp32 validation accuracy {ctx.fp32_val:.4f}; floor {recipe.floor:.0%} of it = {bar.limit:.4f} at full depth")
        paths, val_logits, attempts, quantization = _quantize_guarded(ctx, recipe, fp32_paths, plan, bar)
        costs = [layers[0]] + [b - a for a, b in zip(layers, layers[1:], strict=False)]  # layers each segment runs
        truth = np.asarray([ctx.labels.index(ex.label) for ex in ctx.val])
        chosen = choose_thresholds(val_logits[:-1], val_logits[-1].argmax(-1), truth, costs, config.max_drop)
        ctx.say(f"thresholds {chosen.thresholds}: validation accuracy {chosen.accuracy:.4f}, "
                f"exit shares {[round(s, 3) for s in chosen.shares]}, encoder compute {chosen.cost:.2f} of full depth")
        plan = ExitPlan(plan.hidden_size, tuple(Segment(p.name, s.layers, t) for p, s, t in
                                                zip(paths, plan.segments, [*chosen.thresholds, None], strict=True)))
        engine = EarlyExitClassifier(plan, paths, run.tokenizer_file, ctx.labels, ctx.max_length, ctx.inputs, spin=False)
        predicted = {name: _predict(engine, rows) for name, rows in (("val", ctx.val), ("test", ctx.test))}
        evaluation = {name: _evaluate(engine, rows, predicted[name]) for name, rows in (("val", ctx.val), ("test", ctx.test))}
        tagger, tagger_report = None, None
        if config.tagger_sentences and ctx.record["config"].get("data") == "ha-intents":  # slots of the home's names
            tagger, tagger_report = fit_slot_tagger(
                paths[0], run.tokenizer_file, ctx.inputs, ctx.max_length, plan.segments[0].layers, plan.hidden_size,
                SlotTaggerConfig(sentences=config.tagger_sentences, window=config.tagger_window), say=ctx.say)
        ngram, ngram_report = None, None
        if config.ngram_head and ctx.val:
            val = [(ex.text, ex.label) for ex in ctx.val]
            ngram, ngram_report = fit_ngram_head([ex.text for ex in ctx.train], [ex.label for ex in ctx.train], ctx.labels,
                                                 val=val, say=ctx.say)
            encoder_right = [r["label"] == label for r, (_, label) in zip(predicted["val"], val, strict=True)]
            ngram, ngram_report["floor"] = with_floor(ngram, val, encoder_right)
            ctx.say(f"n-gram head: answers from confidence {ngram.floor} ({ngram_report['floor']['answers']:.0%} of the "
                    f"validation split, {ngram_report['floor']['lost']} lost of what the encoder had right)")
        report = {
            "weights_sha256": sha256_file(run.weights),  # the run's weights: a retrained run is a new model
            "exits": config.exits, "layers": n_layers, "heads": head_report, "export_check": check,
            "floor": recipe.floor, "fp32_val_accuracy": ctx.fp32_val, "attempts": attempts, "quantization": quantization,
            "full_depth_val_accuracy": float((val_logits[-1].argmax(-1) == truth).mean()),
            "head_val_accuracy": [round(float((x.argmax(-1) == truth).mean()), 4) for x in val_logits[:-1]],
            "calibration": {"split": "val", "max_drop": config.max_drop, "costs": costs,
                            "thresholds": list(chosen.thresholds), "val_accuracy": chosen.accuracy,
                            "exit_shares": list(chosen.shares), "compute": round(chosen.cost, 4)},
            "target": {"profile": target.name, "isa": list(target.isa)},
            "slot_tagger": tagger_report,
            "ngram_head": ngram_report,
        }
        manifest = _write_bundle(ctx, recipe, config, plan, paths, report, evaluation, Path(out), tagger, ngram)
    return {"bundle": str(out), "manifest": manifest.to_dict(), "report": report}


def _train_heads(ctx: CompressContext, config: EarlyExitConfig) -> tuple[list[Any], list[dict[str, Any]]]:
    """One head per exit on the training sentences the run saw (its shuffle and limit), backbone frozen."""
    rows = list(ctx.train)
    random.Random(ctx.seed).shuffle(rows)  # the trainer's order (train/trainer.py), so limit_train picks the same rows
    limit = ctx.record["config"].get("limit_train")
    rows = rows[:limit] if limit else rows
    rows = [ex for ex in rows if ex.label in ctx.labels][: config.head_samples]
    ctx.say(f"fitting {len(config.exits)} exit heads on {len(rows)} training sentences (backbone frozen)")
    features = pooled_states(ctx.teacher, ctx.tokenizer, [ex.text for ex in rows], config.exits, ctx.max_length)
    y = np.asarray([ctx.labels.index(ex.label) for ex in rows])
    heads, report = [], []
    for n in config.exits:
        head, stats = train_head(features[n], y, len(ctx.labels), config.head_steps, config.head_learning_rate,
                                 config.head_weight_decay, ctx.seed)
        heads.append(head)
        report.append({"after_layer": n, "samples": len(rows), **stats})
    return heads, report


def _quantize_guarded(ctx: CompressContext, recipe: Any, fp32_paths: list[Path], plan: ExitPlan,
                      bar: Bar) -> tuple[list[Path], list[np.ndarray], list[dict[str, Any]], list[dict[str, Any]]]:
    """Quantize every segment, repairing under the guard until full-depth validation accuracy meets the
    bar; the segment files, every exit's validation logits and the attempts."""
    assert recipe.quantize is not None
    sample = random.Random(ctx.seed).sample(ctx.train, min(recipe.quantize.calibration_samples, len(ctx.train)))
    feeds = [ctx.fp32.encode([ex.text]) for ex in sample]  # batch-1 feeds, as compress calibrates
    texts = [ex.text for ex in ctx.val]
    truth = np.asarray([ctx.labels.index(ex.label) for ex in ctx.val])
    state = SegmentsState(recipe.quantize)

    def ranked() -> list[tuple[int, str]]:  # the MatMuls quantization damages most, over all segments
        bits = 7 if reduce_range(state.qcfg) else 8
        errors = {(i, name): weight_error(w, bits, None) for i, p in enumerate(fp32_paths)
                  for name, w in weight_matmuls(p).items()}
        return sorted(errors, key=lambda k: -errors[k])

    def attempt(s: SegmentsState) -> Outcome:
        folder = ctx.tmp / f"attempt-{len(attempts_seen)}"
        folder.mkdir()
        paths, infos = quantize_segments(fp32_paths, folder, s.qcfg, feeds, s.keep)
        engine = EarlyExitClassifier(plan, paths, ctx.run.tokenizer_file, ctx.labels, ctx.max_length, ctx.inputs, spin=False)
        chunks = [engine.all_exits(texts[i:i + 64]) for i in range(0, len(texts), 64)]
        logits = [np.concatenate([c[e] for c in chunks]) for e in range(len(paths))]
        acc = float((logits[-1].argmax(-1) == truth).mean())
        s.sensitive = ranked
        attempts_seen.append(1)
        record = {"keep_fp32": [f"segment-{i + 1}:{n}" for i, n in s.keep], "per_channel": s.qcfg.per_channel,
                  "val_accuracy": acc}
        return Outcome(FINAL, acc, record, (paths, logits, infos))

    attempts_seen: list[int] = []
    guard = Guard(bar, ENCODER_REPAIRS, f"recipe {recipe.name} on the segments", ctx.say)
    result, attempts = guard.run(state, attempt)
    paths, logits, infos = result.result
    return paths, logits, attempts, infos


def quantize_segments(fp32_paths: list[Path], folder: Path, qcfg: QuantizeConfig, feeds: list[dict[str, np.ndarray]],
                      keep: list[tuple[int, str]]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Quantize each segment into `folder`; a static recipe calibrates each on what the quantized
    segments before it give, so each segment's activation ranges are the ones it will see."""
    paths, infos = [], []
    for i, src in enumerate(fp32_paths):
        info = quantize(src, folder / src.name, qcfg, feeds, [name for seg, name in keep if seg == i])
        path = folder / info["file"]
        paths.append(path)
        infos.append(info)
        if i < len(fp32_paths) - 1:
            session, _ = load_session(path, spin=False)
            feeds = [{HIDDEN_IN: session.run([HIDDEN_OUT], f)[0], MASK: f[MASK]} for f in feeds]
    return paths, infos


def _predict(engine: EarlyExitClassifier, rows: list[Any]) -> list[dict[str, Any]]:
    """The engine's answers with the exits taken, in batches of 64."""
    return [r for i in range(0, len(rows), 64) for r in engine.predict([ex.text for ex in rows[i:i + 64]])]


def _evaluate(engine: EarlyExitClassifier, rows: list[Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy and macro-F1 of `results` (_predict's), and the share answered at each exit."""
    metrics = classification_metrics([ex.label for ex in rows], [r["label"] for r in results], engine.labels)
    exits = [r["exit_layer"] for r in results]
    shares = {str(n): round(exits.count(n) / max(1, len(exits)), 4) for n in engine.layers}
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "n": metrics["n"], "exit_share": shares}


def _write_bundle(ctx: CompressContext, recipe: Any, config: EarlyExitConfig, plan: ExitPlan, paths: list[Path],
                  report: dict[str, Any], evaluation: dict[str, Any], out: Path, tagger: TaggerHead | None = None,
                  ngram: NgramHead | None = None) -> Any:
    record = ctx.record
    with BundleWriter(out) as writer:
        for path in paths:
            writer.add(path, path.name)
        if tagger is not None:
            writer.path(TAGGER_FILE).write_text(tagger.to_json(), encoding="utf-8")
        if ngram is not None:
            writer.path(NGRAM_FILE).write_text(ngram.to_json(), encoding="utf-8")
        writer.add(ctx.run.tokenizer_file, "tokenizer.json")
        writer.path("recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
        writer.path(PLAN_FILE).write_text(plan.to_json(), encoding="utf-8")
        return writer.finish(
            name=out.name, family="encoder", architecture=record["base_model"]["architecture"],
            task="text-classification", engine=EARLY_EXIT_ENGINE, model_file=PLAN_FILE, labels=ctx.labels,
            tokenizer={"file": "tokenizer.json", "max_length": ctx.max_length, "inputs": ctx.inputs},
            provenance={"base_model": record["base_model"]["name"], "run": str(ctx.run.path.resolve()),
                        "dataset": record["dataset"], "train_config": record["config"], "recipe": recipe.to_dict(),
                        "early_exit": {"config": config.to_dict(), **report},
                        "export": {"exporter": SEGMENT_EXPORTER}},
            evaluation=evaluation, profile=report["target"]["profile"],
        )


def early_exit_of(bundle_dir: Path, run_dir: Path, config: EarlyExitConfig | None = None) -> bool:
    """An early-exit bundle that still verifies, made from this run with this config by today's exporter."""
    from edgeslm.formats.reader import open_bundle

    config = config or EarlyExitConfig()
    try:
        m = open_bundle(bundle_dir).manifest
        record = RunFolder(run_dir).read()
        weights = sha256_file(RunFolder(run_dir).weights)
    except (BundleError, OSError):
        return False
    prov = m.provenance
    recipe = for_target(load_recipe(config.recipe), load_profile(THIS_MACHINE).isa)
    return (m.engine == EARLY_EXIT_ENGINE and prov.get("run") == str(Path(run_dir).resolve())
            and prov.get("train_config") == record["config"] and prov.get("export", {}).get("exporter") == SEGMENT_EXPORTER
            and prov.get("early_exit", {}).get("config") == config.to_dict() and prov.get("recipe") == recipe.to_dict()
            and prov["early_exit"].get("weights_sha256") == weights)


def ensure_early_exit(run_dir: Path, out: Path, config: EarlyExitConfig | None = None,
                      echo: Callable[[str], Any] | None = None) -> bool:
    """Build the early-exit bundle unless `out` already holds one made from this run with this config
    (what the demo calls); True when it was built."""
    if early_exit_of(out, run_dir, config):
        return False
    build_early_exit(run_dir, out, config, echo=echo)
    return True
