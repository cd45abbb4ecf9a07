"""`select`: for one run, device profile and budget, find the candidate (recipe x thread count) whose
bundle meets the budget with the best validation accuracy, compressing as little as possible.

    calibrate (cached) -> predict every candidate -> skip the over-budget and the dominated
    -> compress (cached, cheapest first) and measure (cached) until no candidate left can beat the
       best one that meets the budget by more than `slack` -> frontier, choice, bundle

A compressed model is profile-independent given the recipe as resolved for the target (7-bit weights
or not), so a second profile reuses it; a measurement is reused on the same CPU and thread count.
Nothing can predict accuracy before compressing; the bound used to stop is that a compressed model
does not beat its fp32 teacher (or, once compressed, its measured accuracy).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.select import costmodel
from edgeslm.select.budget import Budget, parse_budget
from edgeslm.select.cache import Store, code_version, content_key, machine_facts
from edgeslm.select.candidates import Candidate, compress_cost, encoder_recipes, profile_threads, spec_for
from edgeslm.select.pareto import choose, frontier, skip_dominated


@dataclass(frozen=True)
class SelectConfig(Config):
    budget: str
    profile: str = "this-machine"
    recipes: list[str] = field(default_factory=list)  # names or YAML paths; empty: every built-in encoder recipe
    threads: list[int] = field(default_factory=list)  # empty: every count the profile allows
    margin: float = 0.25  # a prediction may miss a cost limit by this share and still be measured
    slack: float = 0.003  # stop once no candidate left can beat the best one that meets the budget by more
    exhaustive: bool = False  # compress and measure every candidate (the benchmark's reference)
    latency_calls: int = 300
    cache: Path | None = None
    requests: int = 3  # a decoder's measurement: cold requests on the fixed prompt (medians)
    new_tokens: int = 32  # tokens each of them generates

    def validate(self) -> None:
        parse_budget(self.budget)
        if not 0 <= self.margin <= 2:
            raise ConfigError("select: margin is a share in [0, 2]")
        if not 0 <= self.slack <= 0.1:
            raise ConfigError("select: slack is accuracy in [0, 0.1] (0.003 is 0.3 points)")
        if self.latency_calls < 20:
            raise ConfigError("select: latency_calls must be >= 20 (a p90 needs them)")
        if any(t < 1 for t in self.threads):
            raise ConfigError("select: threads must be >= 1")
        if not 1 <= self.requests <= 50 or not 2 <= self.new_tokens <= 512:
            raise ConfigError("select: requests must be in [1, 50] and new_tokens in [2, 512]")


@dataclass
class Row:
    """One candidate through the search."""

    candidate: Candidate
    artefact: str  # content key of the compressed model
    predicted: dict[str, float]
    status: str = "pending"  # skipped | refused | measured
    reason: str = ""
    measured: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)  # val, test
    reused: list[str] = field(default_factory=list)  # which results came from the cache

    def metrics(self) -> dict[str, float]:
        return {"accuracy": self.accuracy["val"], "p50_ms": self.measured["p50_ms"], "p90_ms": self.measured["p90_ms"],
                "ram_mb": self.measured["ram_mb"], "size_mb": self.measured["size_mb"], "joules": self.measured["joules"]}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.candidate.name, "recipe": self.candidate.recipe.name, "threads": self.candidate.threads,
                "status": self.status, "reason": self.reason, "predicted": _round(self.predicted),
                "measured": _round({k: v for k, v in self.measured.items() if k in (*costmodel_metrics, "calls", "measure_s")}),
                "accuracy": self.accuracy, "reused": self.reused, "artefact": self.artefact[:16]}


costmodel_metrics = ("p50_ms", "p90_ms", "ram_mb", "size_mb", "joules")


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class RunInfo:
    """What measuring and bundling need from a run, without loading torch (the fields
    compress.report.write_bundle reads)."""

    run: Any
    record: dict[str, Any]
    inputs: list[str]
    weights_sha: str
    val_sha: str

    @property
    def labels(self) -> list[str]:
        return list(self.record["labels"])

    @property
    def max_length(self) -> int:
        return int(self.record["max_length"])

    @classmethod
    def load(cls, run: Any) -> RunInfo:
        from edgeslm.formats.hashing import sha256_file

        if not (run.fp32_stamp.is_file() and run.fp32_onnx.is_file() and run.fp32_raw_onnx.is_file()):
            from edgeslm.compress.context import CompressContext

            with CompressContext.open(run, needs_train=False):
                pass  # opening exports the fp32 model into the run's cache
        stamp = json.loads(run.fp32_stamp.read_text(encoding="utf-8"))
        return cls(run, run.read(), list(stamp["inputs"]), sha256_file(run.weights), sha256_file(run.split("val")))

    def classifier(self, model: Path, threads: int) -> Any:
        from edgeslm.runtime.engines.onnx import OnnxClassifier

        return OnnxClassifier(model, self.run.tokenizer_file, self.labels, self.max_length, self.inputs, threads=threads,
                              spin=False)


def select(source: Path | str, config: SelectConfig, out: Path | None = None, plot: Path | None = None,
           say: Callable[[str], Any] | None = None) -> dict[str, Any]:
    from edgeslm.compress.pipeline import for_target, resolve_source
    from edgeslm.compress.recipe import with_bar
    from edgeslm.data.records import read_examples
    from edgeslm.export.onnx import EXPORTER
    from edgeslm.runtime.profiles import load_profile
    from edgeslm.select.decoder import decoder_source, select_decoder

    decoder = decoder_source(source)
    if decoder is not None:
        return select_decoder(decoder, config, out, plot, say)
    say = say or (lambda _: None)
    started = time.perf_counter()
    budget = parse_budget(config.budget)
    budget.check_family("encoder")
    profile = load_profile(config.profile)
    store = Store(config.cache)
    run = resolve_source(Path(source))
    info = RunInfo.load(run)
    if info.record["base_model"].get("family", "encoder") != "encoder":
        raise ConfigError("this run fine-tuned a decoder; select takes the decoder model itself (smollm2-135m, "
                          "a LLaMA folder or .gguf) and compares the gguf-* recipes")
    shape = costmodel.EncoderShape.from_config(json.loads((run.model / "config.json").read_text(encoding="utf-8")))
    val = read_examples(run.split("val"), labels=info.labels)
    test = read_examples(run.split("test"), labels=info.labels)
    texts = [e.text for e in test]
    fp32 = _fp32_accuracy(store, info, val, test)
    floor = budget.accuracy_floor(fp32["val"])
    say(f"fp32 validation accuracy {fp32['val']:.4f}" + (f"; budget floor {floor:.4f}" if floor is not None else ""))

    emulable, beyond = profile_threads(profile, config.threads)
    recipes = []
    for r in encoder_recipes(config.recipes):
        share = max(r.floor, floor / fp32["val"]) if floor is not None else r.floor
        recipes.append(for_target(with_bar(r, floor=min(1.0, share)), profile.isa))

    from edgeslm.compress.onnx_quant import needs_7bit_weights

    seven_bit = needs_7bit_weights(profile.isa)
    cals = {t: _calibration(store, info, shape, t, seven_bit, [e.text for e in val]) for t in emulable}
    rows: list[Row] = []
    for recipe in recipes:
        akey = content_key("artefact", info.weights_sha, info.val_sha, info.record["config"], recipe.to_dict(),
                           code_version(), EXPORTER)
        spec = spec_for(recipe, shape)
        for t in emulable:
            pred = costmodel.predict(shape, spec, cals[t], profile.cores, profile.watts_idle, profile.watts_busy)
            rows.append(Row(Candidate(recipe, t), akey, pred))
        for t in beyond:
            rows.append(Row(Candidate(recipe, t), akey, {}, "skipped", f"{t} threads: more than this machine's CPUs"))
    say(f"{len(rows)} candidates ({len(recipes)} recipes x threads {emulable + beyond}) on profile {profile.name}")

    if not config.exhaustive:
        _skip_predicted(rows, budget, fp32["val"], profile.memory_budget_mb, config.margin, store)
    compressed = _search(rows, store, info, budget, fp32, profile, config, texts, say)

    measured = [r for r in rows if r.status == "measured"]
    metrics = [r.metrics() for r in measured]
    meets = [not _violations(m, budget, fp32["val"], profile.memory_budget_mb) for m in metrics]
    front = frontier(metrics)
    pick = choose(metrics, meets)
    chosen = measured[pick] if pick is not None else None
    errors = [costmodel.relative_error(r.predicted["p90_ms"], r.measured["p90_ms"]) for r in measured]
    result: dict[str, Any] = {
        "family": "encoder", "run": str(run.path), "profile": profile.to_dict(), "budget": budget.to_dict(), "fp32": fp32,
        "accuracy_floor": floor, "mode": "exhaustive" if config.exhaustive else "select",
        "candidates": [r.to_dict() for r in rows],
        "frontier": [measured[i].candidate.name for i in front],
        "meets_budget": [r.candidate.name for r, ok in zip(measured, meets, strict=True) if ok],
        "chosen": chosen.to_dict() if chosen else None,
        "compressed": compressed, "measured": len(measured),
        "p90_prediction_error_median": _median(errors),
        "machine": machine_facts(), "wall_s": round(time.perf_counter() - started, 2), "bundle": None, "plot": None,
    }
    if chosen is None:
        result["reason"] = "no measured candidate meets the budget"
    if plot is not None and measured:
        from edgeslm.select.plot import plot_frontier

        result["plot"] = str(plot_frontier(result, plot))
    if out is not None and chosen is not None:
        _write_bundle(store, info, chosen, result, profile, fp32, budget, Path(out))
        result["bundle"] = str(out)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def _median(xs: list[float]) -> float | None:
    import statistics

    return round(statistics.median(xs), 4) if xs else None


def _violations(metrics: dict[str, Any], budget: Budget, fp32_val: float, memory_budget_mb: int,
                margin: float = 0.0) -> list[str]:
    out = budget.violations(metrics, fp32_val, margin)
    ram = metrics.get("ram_mb")
    if ram is not None and ram > memory_budget_mb * (1 + margin):
        out.append(f"ram_mb {ram:.3g} > the profile's memory budget {memory_budget_mb}")
    return out


def _fp32_accuracy(store: Store, info: RunInfo, val: list[Any], test: list[Any]) -> dict[str, float]:
    """The fp32 export's validation (what the floor is a share of) and test accuracy; cached."""
    from edgeslm.evaluate.runner import evaluate_classifier

    key = content_key("fp32", info.weights_sha, info.val_sha, info.inputs)
    hit = store.get("fp32", key)
    if hit:
        return hit
    clf = info.classifier(info.run.fp32_onnx, threads=0)
    got = {"val": evaluate_classifier(clf, val, timed=False)["accuracy"],
           "test": evaluate_classifier(clf, test, timed=False)["accuracy"],
           "bytes": info.run.fp32_onnx.stat().st_size}
    store.put("fp32", key, got)
    return got


def _calibration(store: Store, info: RunInfo, shape: costmodel.EncoderShape, threads: int, seven_bit: bool,
                 texts: list[str]) -> costmodel.Calibration:
    from edgeslm.select.calibrate import CALIBRATION_VERSION, calibrate

    key = content_key("calibration", CALIBRATION_VERSION, machine_facts(), threads, seven_bit, info.weights_sha,
                      info.val_sha)
    hit = store.get("calibration", key)
    if hit:
        return costmodel.Calibration.from_dict(hit)
    from edgeslm.select.calibrate import int8_reference

    int8 = int8_reference(info.run.fp32_onnx, store.root / "reference" / content_key(info.weights_sha, seven_bit) / "int8.onnx",
                          seven_bit)
    paths = {"fused": info.run.fp32_onnx, "unfused": info.run.fp32_raw_onnx, "int8": int8}
    clf = info.classifier(info.run.fp32_onnx, threads)
    cal = calibrate(shape, threads, seven_bit, texts, lambda graph, t: info.classifier(paths[graph], t), clf.tokenizer)
    store.put("calibration", key, cal.to_dict())
    return cal


def _skip_predicted(rows: list[Row], budget: Budget, fp32_val: float, memory_budget_mb: int, margin: float,
                    store: Store) -> None:
    """Before compressing: skip what the cost model puts over budget (even with `margin`), what an
    earlier compression of the same artefact was refused for, and what another candidate beats by
    the margin on every cost with at least its accuracy (known: the same artefact, or both cached)."""
    known: dict[str, float | None] = {}
    for r in rows:
        if r.status != "pending":
            continue
        rec = store.artefact(r.artefact)
        if rec is not None and rec["status"] == "refused":
            r.status, r.reason = "skipped", "refused by the accuracy guard before (cached)"
            continue
        known[r.artefact] = rec["val"]["accuracy"] if rec else None
        # a compressed model's accuracy is known, not predicted: judged without margin
        over = _violations({**r.predicted, "accuracy": known[r.artefact]}, budget, fp32_val, memory_budget_mb, margin)
        if over:
            r.status, r.reason = "skipped", "predicted over budget: " + "; ".join(over)
    skip_dominated(rows, known, True, ("p90_ms", "joules"), margin, lambda a: a.candidate.name)


def _search(rows: list[Row], store: Store, info: RunInfo, budget: Budget, fp32: dict[str, float], profile: Any,
            config: SelectConfig, texts: list[str], say: Callable[[str], Any]) -> int:
    """Compress and measure the pending rows, artefact by artefact, cheapest and known-best first; stop
    (unless exhaustive) when what is left cannot beat the best budget-meeting row by more than slack.
    Returns how many artefacts were compressed now (not taken from the cache)."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.status == "pending":
            groups.setdefault(r.artefact, []).append(r)

    def bound(key: str) -> float:
        rec = store.artefact(key)
        return rec["val"]["accuracy"] if rec and rec["status"] == "ok" else fp32["val"]

    order = sorted(groups, key=lambda k: (store.artefact(k) is None, -bound(k), compress_cost(groups[k][0].candidate.recipe)))
    ctx_holder: dict[str, Any] = {}
    compressed = 0
    try:
        for i, key in enumerate(order):
            best = max((r.accuracy["val"] for r in rows if r.status == "measured"
                        and not _violations(r.metrics(), budget, fp32["val"], profile.memory_budget_mb)), default=None)
            if not config.exhaustive and best is not None and bound(key) <= best + config.slack:
                for r in groups[key]:
                    r.status = "skipped"
                    r.reason = (f"cannot beat the best measured candidate that meets the budget ({best:.4f}) "
                                f"by more than {config.slack:.3f}")
                continue
            recipe = groups[key][0].candidate.recipe
            rec = store.artefact(key)
            if rec is None:
                say(f"[{i + 1}/{len(order)}] compressing {recipe.name} under its guard (floor {recipe.floor:.2%} of fp32)")
                ctx = _context(ctx_holder, info, [g[0].candidate.recipe for g in groups.values()], say)
                rec, model = compress_artefact_cached(store, key, ctx, recipe)
                compressed += 1
            else:
                for r in groups[key]:
                    r.reused.append("compressed")
            if rec["status"] != "ok":
                for r in groups[key]:
                    r.status, r.reason = "refused", rec.get("reason", "refused by the accuracy guard")
                continue
            model = store.artefact_dir(key) / rec["file"]
            for r in groups[key]:
                _measure_row(r, store, key, rec, model, info, profile, config, texts, say)
    finally:
        if "cm" in ctx_holder:
            ctx_holder["cm"].__exit__(None, None, None)
    return compressed


def _context(holder: dict[str, Any], info: RunInfo, recipes: list[Any], say: Callable[[str], Any]) -> Any:
    """One CompressContext (teacher, splits, scratch folder) for every compression of this search."""
    if "ctx" not in holder:
        from edgeslm.compress.context import CompressContext

        needs_train = any(r.torch_steps or (r.quantize is not None and r.quantize.scheme == "int8-static") for r in recipes)
        holder["cm"] = CompressContext.open(info.run, needs_train, progress=False, say=say)
        holder["ctx"] = holder["cm"].__enter__()
    return holder["ctx"]


def compress_artefact_cached(store: Store, key: str, ctx: Any, recipe: Any) -> tuple[dict[str, Any], Path | None]:
    from edgeslm.select.measure import compress_artefact

    record, model = compress_artefact(ctx, recipe)
    store.put_artefact(key, record, model)
    return store.artefact(key) or record, model


def _measure_row(r: Row, store: Store, akey: str, rec: dict[str, Any], model: Path, info: RunInfo, profile: Any,
                 config: SelectConfig, texts: list[str], say: Callable[[str], Any]) -> None:
    from edgeslm.select.measure import MEASURE_VERSION, measure_model

    t = r.candidate.threads
    mkey = content_key("measure", akey, t, machine_facts(), MEASURE_VERSION, config.latency_calls)
    got = store.get("measured", mkey)
    if got is None:
        got = measure_model(model, info.run.tokenizer_file, info.labels, info.max_length, info.inputs, t, texts,
                            config.latency_calls)
        store.put("measured", mkey, got)
    else:
        r.reused.append("measured")
    # joules depend on the profile's watts and cores, not on the measurement: computed per profile
    j = costmodel.joules(got["wall_s_per_call"], got["cpu_s_per_call"], profile.cores, profile.watts_idle, profile.watts_busy)
    r.measured = {**got, "size_mb": rec["bytes"] / 1e6, "joules": j}
    r.accuracy = {"val": rec["val"]["accuracy"], "test": rec["test"]["accuracy"]}
    r.status = "measured"
    say(f"  {r.candidate.name}: val acc {r.accuracy['val']:.4f}, p90 {got['p90_ms']:.2f} ms "
        f"(predicted {r.predicted['p90_ms']:.2f}), {got['ram_mb']:.0f} MiB, {j * 1e3:.2f} mJ")


def _write_bundle(store: Store, info: RunInfo, row: Row, result: dict[str, Any], profile: Any, fp32: dict[str, float],
                  budget: Budget, out: Path) -> None:
    from edgeslm.compress.recipe import Recipe
    from edgeslm.compress.report import Variant, write_bundle

    rec = store.artefact(row.artefact)
    assert rec is not None and rec["status"] == "ok"
    recipe = Recipe.from_dict(rec["recipe"], "cached recipe")
    model = store.artefact_dir(row.artefact) / rec["file"]
    variant = Variant(model, None, rec["val"], rec["attempts"], rec["quantization"], rec["export_check"])
    report = {
        "recipe": recipe.name, "val": rec["val"], "test": rec["test"],
        "fp32": {"val_accuracy": fp32["val"], "test_accuracy": fp32["test"], "bytes": fp32["bytes"]},
        "accuracy_kept": round(rec["test"]["accuracy"] / max(fp32["test"], 1e-9), 4),
        "val_accuracy_kept": round(rec["val"]["accuracy"] / max(fp32["val"], 1e-9), 4),
        "floor": recipe.floor, "attempts": rec["attempts"], "bytes": rec["bytes"],
        "size_ratio": round(rec["bytes"] / fp32["bytes"], 4),
        **{k: rec[k] for k in ("params", "nonzero_params", "sparsity") if k in rec},
        "latency": {"batch1": {recipe.name: {k: row.measured[k] for k in ("p50_ms", "p90_ms")}
                               | {"threads": row.candidate.threads, "calls": row.measured["calls"]}}},
        "quantization": rec["quantization"], "export_check": rec["export_check"],
        "target": {"profile": profile.name, "isa": list(profile.isa)},
    }
    metrics = row.metrics()
    selection = {
        "budget": budget.text, "profile": profile.name, "candidate": row.candidate.name, "threads": row.candidate.threads,
        "predicted": {k: round(row.predicted[k], 6) for k in costmodel_metrics},
        "measured": {k: round(float(metrics[k]), 6) for k in (*costmodel_metrics, "accuracy")},
        "search": {"mode": result["mode"], "candidates": len(result["candidates"]), "measured": result["measured"],
                   "compressed": result["compressed"], "frontier": result["frontier"], "machine": result["machine"],
                   "p90_prediction_error_median": result["p90_prediction_error_median"]},
    }
    write_bundle(info, recipe, variant, report, out, selection=selection)

