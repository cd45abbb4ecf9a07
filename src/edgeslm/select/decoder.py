"""`select` for a decoder model (smollm2-135m, a LLaMA folder or .gguf): the gguf-* recipes (GGUF types)
x thread counts, predicted by gguf_costmodel.py from a calibration run per thread count, the over-budget
and the dominated skipped, the rest quantized under the perplexity guard and measured (decoder_measure.py).

    calibrate (cached: the source and its Q8_0 requantization, timed) -> predict -> skip
    -> unquantized F16 (cached) -> quantize under the guard (cached) -> measure (cached) -> frontier, choice

Perplexity is not predicted; `ppl<=1.05*f16` also tightens each recipe's guard ceiling, as an encoder
budget's accuracy floor raises the recipe's floor.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.errors import ConfigError
from edgeslm.select import gguf_costmodel as gc
from edgeslm.select.budget import Budget, parse_budget
from edgeslm.select.cache import Store, code_version, content_key, machine_facts
from edgeslm.select.candidates import profile_threads, recipes_for, thread_options
from edgeslm.select.pareto import choose, frontier, skip_dominated

CALIBRATION_VERSION = 3  # 3: every material type of a candidate timed; the output layer once in prefill
# ggml type -> the file type whose quantization is mostly that type: the calibration files
FTYPE_OF = {"Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q6_K": "Q6_K", "Q4_K": "Q4_K_S",
            "Q5_K": "Q5_K_S", "Q3_K": "Q3_K_S", "Q2_K": "Q2_K"}
OBJECTIVES = (("ppl", False), ("tok_s", True), ("ttft_ms", False), ("size_mb", False), ("joules", False))
COSTS = ("tok_s", "ttft_ms", "ram_mb", "size_mb", "joules")


@dataclass
class DecoderRow:
    recipe: Any
    threads: int
    artefact: str
    predicted: dict[str, float]
    status: str = "pending"  # skipped | refused | measured
    reason: str = ""
    measured: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)  # ppl, ppl_before, ppl_ratio
    reused: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.recipe.name}@{self.threads}t"

    def metrics(self) -> dict[str, float]:
        return {**{k: self.measured[k] for k in COSTS}, "ppl": self.quality["ppl"], "ppl_ratio": self.quality["ppl_ratio"]}

    def to_dict(self) -> dict[str, Any]:
        keep = (*COSTS, "ms_per_token", "prompt_tokens", "new_tokens", "requests")
        return {"name": self.name, "recipe": self.recipe.name, "type": self.recipe.gguf.qtype, "threads": self.threads,
                "status": self.status, "reason": self.reason, "predicted": _round(self.predicted),
                "measured": _round({k: v for k, v in self.measured.items() if k in keep}), "quality": self.quality,
                "reused": self.reused, "artefact": self.artefact[:16]}


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def decoder_source(source: Path | str) -> Any:
    """The ModelSource when SOURCE names a decoder model (not a run or a bundle), else None."""
    from edgeslm.errors import ModelNotFoundError
    from edgeslm.models.registry import resolve
    from edgeslm.train.run import RunFolder

    p = Path(source)
    if RunFolder(p).is_run() or (p / "manifest.json").is_file():
        return None  # a run or a bundle: the encoder path (it says what a decoder bundle needs)
    try:
        src = resolve(str(source))
    except (ModelNotFoundError, ConfigError, OSError):
        return None
    return src if src.family == "decoder" else None


def _llama_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")


def _source_sha(src: Any) -> str:
    from edgeslm.formats.hashing import sha256_file

    if src.path.is_file():
        return sha256_file(src.path)
    return content_key(*[(str(p.relative_to(src.path)), sha256_file(p)) for p in sorted(src.path.rglob("*")) if p.is_file()])


def read_gguf(path: Path) -> tuple[gc.DecoderShape, dict[str, str]]:
    """A GGUF file's tensors (as the cost model's shape) and the ggml type each is stored in."""
    import gguf

    from edgeslm.formats.gguf import read_header

    r = gguf.GGUFReader(str(path))
    tensors = [(t.name, [int(x) for x in t.shape]) for t in r.tensors]
    shape = gc.shape_from_tensors(tensors, read_header(path).metadata, int(r.data_offset))
    return shape, {t.name: t.tensor_type.name for t in r.tensors}


def select_decoder(src: Any, config: Any, out: Path | None = None, plot: Path | None = None,
                   say: Callable[[str], Any] | None = None) -> dict[str, Any]:
    from edgeslm.compress.recipe import with_bar
    from edgeslm.runtime.profiles import load_profile

    say = say or (lambda _: None)
    started = time.perf_counter()
    budget = parse_budget(config.budget)
    budget.check_family("decoder")
    profile = load_profile(config.profile)
    store = Store(config.cache)
    sha = _source_sha(src)
    recipes = []
    for r in recipes_for("decoder", config.recipes):
        if budget.ppl_share is not None and budget.ppl_share < r.ceiling:
            r = with_bar(r, ceiling=budget.ppl_share)  # the guard refuses what the budget would
        recipes.append(r)
    emulable, beyond = profile_threads(profile, config.threads)
    ctx = _Work(store, src, sha, config, say)
    shape, cals = ctx.calibrations(emulable, [r.gguf.qtype for r in recipes])
    rows: list[DecoderRow] = []
    for recipe in recipes:
        key = content_key("gguf-artefact", sha, recipe.to_dict(), code_version(), _llama_version())
        for t in emulable:
            rows.append(DecoderRow(recipe, t, key, gc.predict(shape, recipe.gguf.qtype, cals[t], profile.cores,
                                                              profile.watts_idle, profile.watts_busy)))
        for t in beyond:
            rows.append(DecoderRow(recipe, t, key, {}, "skipped", f"{t} threads: more than this machine's CPUs"))
    say(f"{len(rows)} candidates ({len(recipes)} GGUF recipes x threads {emulable + beyond}) on profile {profile.name}")
    if not config.exhaustive:
        _skip_predicted(rows, budget, profile.memory_budget_mb, config.margin, store)
    compressed = 0
    for key in dict.fromkeys(r.artefact for r in sorted(rows, key=lambda r: r.predicted.get("size_mb", 0))
                             if r.status == "pending"):
        group = [r for r in rows if r.artefact == key and r.status == "pending"]
        rec, fresh = ctx.artefact(key, group[0].recipe)
        compressed += fresh
        for r in group:
            if not fresh:
                r.reused.append("compressed")
            if rec["status"] != "ok":
                r.status, r.reason = "refused", rec.get("reason", "refused by the perplexity guard")
                continue
            ctx.measure(r, rec, profile)
    measured = [r for r in rows if r.status == "measured"]
    metrics = [r.metrics() for r in measured]
    meets = [not _violations(m, budget, profile.memory_budget_mb, f16_ppl=r.quality["ppl_before"])
             for r, m in zip(measured, metrics, strict=True)]
    front = frontier(metrics, OBJECTIVES)
    pick = choose(metrics, meets, OBJECTIVES)
    chosen = measured[pick] if pick is not None else None
    err = {k: _median([gc_error(r.predicted[k], r.measured[k]) for r in measured]) for k in ("ms_per_token", "ttft_ms",
                                                                                             "size_mb", "ram_mb")}
    result: dict[str, Any] = {
        "family": "decoder", "source": src.name, "source_sha256": sha, "profile": profile.to_dict(),
        "budget": budget.to_dict(), "mode": "exhaustive" if config.exhaustive else "select",
        "calibration": {t: {k: v for k, v in c.to_dict().items() if k != "measured"} for t, c in cals.items()},
        "candidates": [r.to_dict() for r in rows], "frontier": [measured[i].name for i in front],
        "meets_budget": [r.name for r, ok in zip(measured, meets, strict=True) if ok],
        "chosen": chosen.to_dict() if chosen else None, "compressed": compressed, "measured": len(measured),
        "per_token_prediction_error_median": err["ms_per_token"], "ttft_prediction_error_median": err["ttft_ms"],
        "size_prediction_error_median": err["size_mb"], "ram_prediction_error_median": err["ram_mb"],
        "machine": {**machine_facts(), "llama_cpp_python": _llama_version()}, "bundle": None, "plot": None,
    }
    if chosen is None:
        result["reason"] = "no measured candidate meets the budget"
    if plot is not None and measured:
        from edgeslm.select.plot import plot_decoder_frontier

        result["plot"] = str(plot_decoder_frontier(result, plot))
    if out is not None and chosen is not None:
        _write_bundle(store, chosen, result, profile, budget, Path(out))
        result["bundle"] = str(out)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def calibration_types(shape: gc.DecoderShape, ftypes: list[str], source_mix: dict[str, str]) -> list[str]:
    """The ggml types to time, each by a requantization to FTYPE_OF[type]: Q8_0, and every type holding a
    material share of a candidate's bytes (a SmolLM2 'Q4_K_M' is Q5_0, Q8_0, Q6_K and Q4_K), with the types
    each timing file brings beside its own (a Q4_K_S file of a 576-wide model is mostly Q5_0), so that
    calibrate_from can solve them one at a time. The source's main type is timed on the source itself."""
    own = gc.by_type(shape, source_mix).material(gc.MATERIAL)
    types: list[str] = []

    def add(ty: str, seen: tuple[str, ...] = ()) -> None:
        if ty in types or ty in seen or ty not in FTYPE_OF or (own and ty == own[0]):
            return
        for other in gc.by_type(shape, gc.type_mix(shape, FTYPE_OF[ty])).material(gc.MATERIAL):
            if other != ty:
                add(other, (*seen, ty))
        types.append(ty)

    add("Q8_0")
    for ftype in ftypes:
        for ty in gc.by_type(shape, gc.type_mix(shape, ftype)).material(gc.MATERIAL):
            add(ty)
    return types


def gc_error(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured if measured else float("inf")


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def _violations(metrics: dict[str, Any], budget: Budget, memory_budget_mb: int, margin: float = 0.0,
                f16_ppl: float | None = None) -> list[str]:
    # a file's size is llama.cpp's type mix times its block sizes: predicted to the byte, so no margin
    out = budget.violations(metrics, None, margin, f16_ppl=f16_ppl, exact=("size_mb",))
    ram = metrics.get("ram_mb")
    if ram is not None and ram > memory_budget_mb * (1 + margin):
        out.append(f"ram_mb {ram:.3g} > the profile's memory budget {memory_budget_mb}")
    return out


def _skip_predicted(rows: list[DecoderRow], budget: Budget, memory_budget_mb: int, margin: float, store: Store) -> None:
    """Before quantizing: skip what the cost model puts over budget (even with `margin`), what the guard
    refused before (cached), and what another thread count of the same file beats by the margin on
    every cost (or, both files' perplexity known, another file at least as good)."""
    known: dict[str, float | None] = {}
    for r in rows:
        if r.status != "pending":
            continue
        rec = store.artefact(r.artefact)
        if rec is not None and rec["status"] == "refused":
            r.status, r.reason = "skipped", "refused by the perplexity guard before (cached)"
            continue
        known[r.artefact] = rec["report"]["perplexity_after"] if rec else None
        over = _violations({**r.predicted, "ppl": known[r.artefact]}, budget, memory_budget_mb, margin,
                           f16_ppl=rec["report"]["perplexity_before"] if rec else None)
        if over:
            r.status, r.reason = "skipped", "predicted over budget: " + "; ".join(over)
    skip_dominated(rows, known, False, ("ms_per_token", "ttft_ms", "joules"), margin, lambda a: a.name)


class _Work:
    """The cached steps: calibration, the unquantized file and its perplexity, quantizing, measuring."""

    def __init__(self, store: Store, src: Any, sha: str, config: Any, say: Callable[[str], Any]):
        self.store, self.src, self.sha, self.config, self.say = store, src, sha, config, say

    def _facts(self) -> dict[str, Any]:
        return {**machine_facts(), "llama_cpp_python": _llama_version()}

    def unquantized(self, outtype: str = "f16") -> Any:
        from edgeslm.compress.gguf import Unquantized, convert_unquantized

        key = content_key("unquantized", self.sha, outtype, code_version())
        rec = self.store.artefact(key)
        if rec is None:
            self.say(f"converting {self.src.name} to an unquantized {outtype.upper()} GGUF (once; cached)")
            with tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
                u = convert_unquantized(str(self.src.path), outtype, Path(tmp))
                self.store.put_artefact(key, {"status": "ok", "conversion": u.conversion, "note": u.note}, u.path)
            rec = self.store.artefact(key)
            assert rec is not None
        return Unquantized(self.store.artefact_dir(key) / rec["file"], rec["conversion"], rec["note"])

    def _scratch(self) -> Path:
        d = self.store.root / "scratch"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def calibrations(self, threads: list[int], ftypes: list[str]) -> tuple[gc.DecoderShape, dict[int, gc.DecoderCalibration]]:
        """The calibration file (the source GGUF, or the unquantized conversion of a folder) requantized to
        Q8_0 and to each candidate's main ggml type, timed with it at every thread count: per-type rates."""
        from edgeslm.select.decoder_measure import MEASURE_VERSION, N_CTX, measure_gguf

        base = self.src.path if self.src.path.is_file() else self.unquantized().path
        shape, mix = read_gguf(base)
        types = calibration_types(shape, ftypes, mix)
        cals = {}
        for t in threads:
            key = content_key("decoder-calibration", CALIBRATION_VERSION, MEASURE_VERSION, self._facts(), t, self.sha,
                              types, self.config.requests, self.config.new_tokens, N_CTX)
            hit = self.store.get("calibration", key)
            if hit:
                cals[t] = gc.DecoderCalibration.from_dict(hit)
                continue
            t0 = time.perf_counter()
            runs = []
            for ty in types:
                path = self._requantized(base, FTYPE_OF[ty], max(threads))
                runs.append((read_gguf(path)[1], measure_gguf(path, t, self.config.requests, self.config.new_tokens)))
            runs.append((mix, measure_gguf(base, t, self.config.requests, self.config.new_tokens)))
            cals[t] = gc.calibrate_from(shape, runs, t, N_CTX)
            self.store.put("calibration", key, cals[t].to_dict())
            self.say(f"calibrated {t} thread(s) on {base.name} and its {', '.join(types)} in {time.perf_counter() - t0:.1f} s")
        return shape, cals

    def _requantized(self, base: Path, ftype: str, threads: int) -> Path:
        """`base` requantized to `ftype` by llama.cpp (a second or two): timed only, never shipped."""
        from edgeslm.compress.gguf import quantize_file

        path = self.store.root / "reference" / content_key(ftype, self.sha, _llama_version()) / f"calibration.{ftype}.gguf"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            quantize_file(base, tmp, ftype, threads=threads, allow_requantize=True)
            tmp.replace(path)
        return path

    def artefact(self, key: str, recipe: Any) -> tuple[dict[str, Any], bool]:
        """The quantized bundle's record (cached), and whether it was made now."""
        from edgeslm.compress.gguf import compress_decoder
        from edgeslm.compress.guard import GuardError
        from edgeslm.evaluate.perplexity import default_eval_text, perplexity

        rec = self.store.artefact(key)
        if rec is not None:
            return rec, False
        unq = self.unquantized(recipe.gguf.outtype)
        cfg = recipe.gguf
        threads = len(thread_options(64)[0])
        pkey = content_key("perplexity", self.sha, unq.path.name, cfg.eval_tokens, cfg.n_ctx, cfg.stride, code_version(),
                           _llama_version())
        before = self.store.get("perplexity", pkey)
        if before is None:
            before = perplexity(unq.path, default_eval_text()[1], max_tokens=cfg.eval_tokens, n_ctx=cfg.n_ctx,
                                stride=cfg.stride, threads=threads)
            self.store.put("perplexity", pkey, before)
        self.say(f"quantizing {recipe.name} under its guard (perplexity at most {recipe.ceiling}x "
                 f"{cfg.outtype.upper()} {before['perplexity']:.3f})")
        t0 = time.perf_counter()
        stage = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=self._scratch()))
        try:
            got = compress_decoder(str(self.src.path), recipe, stage / "bundle", threads=threads, echo=self.say,
                                   name=recipe.name, unquantized=type(unq)(unq.path, unq.conversion, unq.note, before))
            rec = {"status": "ok", "report": got["report"], "file": f"bundle/{got['manifest']['model_file']}",
                   "compress_s": round(time.perf_counter() - t0, 2)}
        except GuardError as exc:
            rec = {"status": "refused", "reason": str(exc), "compress_s": round(time.perf_counter() - t0, 2)}
        (stage / "record.json").write_text(json.dumps(rec, indent=1, default=str), encoding="utf-8")
        final = self.store.artefact_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        stage.rename(final)
        return rec, True

    def measure(self, r: DecoderRow, rec: dict[str, Any], profile: Any) -> None:
        from edgeslm.select.decoder_measure import MEASURE_VERSION, N_CTX, measure_gguf

        model = self.store.artefact_dir(r.artefact) / rec["file"]
        mkey = content_key("decoder-measure", r.artefact, r.threads, self._facts(), MEASURE_VERSION,
                           self.config.requests, self.config.new_tokens, N_CTX)
        got = self.store.get("measured", mkey)
        if got is None:
            got = measure_gguf(model, r.threads, self.config.requests, self.config.new_tokens)
            self.store.put("measured", mkey, got)
        else:
            r.reused.append("measured")
        # joules depend on the profile's watts and cores, not on the measurement: computed per profile
        j = gc.request_joules(got["ttft_ms"], got["tok_s"], got["new_tokens"], got["cpu_s"] / got["wall_s"], profile.cores,
                              profile.watts_idle, profile.watts_busy)
        r.measured = {**got, "ms_per_token": 1e3 / got["tok_s"], "ram_mb": got["peak_bytes"] / 2**20,
                      "size_mb": got["file_bytes"] / 1e6, "joules": j, "requests": self.config.requests}
        rep = rec["report"]
        r.quality = {"ppl": rep["perplexity_after"], "ppl_before": rep["perplexity_before"], "ppl_ratio": rep["ppl_ratio"]}
        r.status = "measured"
        self.say(f"  {r.name}: ppl {rep['perplexity_after']:.3f} ({rep['ppl_ratio']:.3f}x), {got['tok_s']:.1f} tok/s "
                 f"(predicted {r.predicted['tok_s']:.1f}), TTFT {got['ttft_ms']:.0f} ms (predicted "
                 f"{r.predicted['ttft_ms']:.0f}), {r.measured['ram_mb']:.0f} MiB, {r.measured['size_mb']:.1f} MB")


def _write_bundle(store: Store, row: DecoderRow, result: dict[str, Any], profile: Any, budget: Budget, out: Path) -> None:
    """The chosen quantized bundle again, with the profile and `selection` (prediction, measurement) in its manifest."""
    from edgeslm.formats.reader import open_bundle
    from edgeslm.formats.writer import BundleWriter

    cached = open_bundle(store.artefact_dir(row.artefact) / "bundle")
    m = cached.manifest.to_dict()
    metrics = row.metrics()
    selection = {
        "budget": budget.text, "profile": profile.name, "candidate": row.name, "threads": row.threads,
        "predicted": {k: round(float(row.predicted[k]), 6) for k in COSTS},
        "measured": {k: round(float(metrics[k]), 6) for k in (*COSTS, "ppl", "ppl_ratio")},
        "search": {k: result[k] for k in ("mode", "measured", "compressed", "frontier", "machine",
                                         "per_token_prediction_error_median", "ttft_prediction_error_median")}
        | {"candidates": len(result["candidates"])},
    }
    keep = {k: v for k, v in m.items() if k not in ("format", "format_version", "files", "created", "edgeslm_version",
                                                    "profile", "selection", "name")}
    with BundleWriter(out) as writer:
        for name in cached.manifest.files:
            writer.add(cached.file(name), name)
        writer.finish(**keep, name=out.name, profile=profile.name, selection=selection)
