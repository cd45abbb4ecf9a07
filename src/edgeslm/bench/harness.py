"""One benchmark, any family: warm every side up (which also gives LoadGen its hints), run LoadGen's
accuracy mode once a side, then its performance mode `repeats` times a side with the order of the
sides alternating, every side under the same TestSettings. Logs go to OUT/<side>/<mode>/."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.bench.config import QUICK, BenchConfig
from edgeslm.bench.loadgen import MODE_NAMES, SCENARIO_NAMES, Sut, run_test
from edgeslm.bench.logs import ACCURACY, SUMMARY, latency_ms, parse_accuracy, read_run, throughput
from edgeslm.errors import EdgeslmError
from edgeslm.runtime.energy import CpuMeter

SETTINGS_NOTE = ("over mlperf_loadgen.TestSettings() as constructed (this build: min_duration 10 s, "
                 "min_query_count 100); mlperf.conf's submission values (600 s) are not loaded: "
                 "pass --min-duration 600 for those")


@dataclass
class Hints:
    """What LoadGen needs to be told: measured while warming up, the best side's figure."""

    latency_s: float  # one sample
    query_latency_s: float  # one multi-stream query (samples_per_query samples as one batch)
    batch_qps: float  # samples per second at the max batch


@dataclass
class SideRuns:
    sut: Sut
    meter: CpuMeter = field(default_factory=CpuMeter)
    runs: list[dict[str, Any]] = field(default_factory=list)
    accuracy_log: list[tuple[int, bytes]] | None = None
    folders: dict[str, Any] = field(default_factory=dict)
    samples: int = 0
    tokens: int = 0


def warm_up(suts: Sequence[Sut], items: Sequence[Any], config: BenchConfig, batched: bool) -> Hints:
    """`warmup` single calls a side (decoders: at most 2 generations) (first calls pay for allocation and thread start), timed; encoders
    also time a multi-stream query and a full batch. Figures are the fastest side's, so LoadGen
    generates enough queries for either."""
    lat, query, qps = [], [], []
    for sut in suts:
        times = []
        for i in range(config.warmup if batched else min(config.warmup, 2)):
            t = time.perf_counter()
            sut.call([items[i % len(items)]])
            times.append(time.perf_counter() - t)
        lat.append(statistics.median(times))
        if batched:
            group = [items[i % len(items)] for i in range(config.samples_per_query)]
            full = [items[i % len(items)] for i in range(config.batch)]
            query.append(min(_timed(sut.call, group) for _ in range(3)))
            qps.append(len(full) / min(_timed(sut.call, full) for _ in range(3)))
    best = min(lat)
    return Hints(latency_s=best, query_latency_s=min(query) if query else best * config.samples_per_query,
                 batch_qps=max(qps) if qps else 1 / best)


def _timed(fn: Callable[[Any], None], arg: Any) -> float:
    t = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t


def loadgen_values(config: BenchConfig, hints: Hints, decoder: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The TestSettings fields we set (both sides get these), and where each value came from."""
    values: dict[str, Any] = {"scenario": SCENARIO_NAMES[config.scenario]}
    source: dict[str, str] = {}
    if config.scenario == "single-stream":
        values["single_stream_expected_latency_ns"] = int(hints.latency_s * 1e9)
        source["single_stream_expected_latency_ns"] = "median single-query latency while warming up"
    elif config.scenario == "multi-stream":
        values["multi_stream_samples_per_query"] = config.samples_per_query
        values["multi_stream_expected_latency_ns"] = int(hints.query_latency_s * 1e9)
        source["multi_stream_expected_latency_ns"] = "fastest of 3 timed queries while warming up"
    elif config.scenario == "offline":
        values["offline_expected_qps"] = round(hints.batch_qps, 1)
        source["offline_expected_qps"] = f"fastest of 3 timed batches of {config.batch} while warming up"
    else:
        if config.target_qps is not None:
            values["server_target_qps"] = config.target_qps
            source["server_target_qps"] = "--target-qps"
        else:
            values["server_target_qps"] = round(0.5 / hints.latency_s, 2)
            source["server_target_qps"] = ("half the single-query rate while warming up: a load either side "
                                           "carries without batching (set --target-qps to push it)")
    if decoder:
        values["use_token_latencies"] = True
        source["use_token_latencies"] = "decoders: time to first token and time per output token, as MLPerf's LLMs"
    min_duration = config.min_duration_s or (QUICK.min_duration_s if config.quick else None)
    if min_duration is not None:
        values["min_duration_ms"] = int(min_duration * 1000)
        source["min_duration_ms"] = "--min-duration" if config.min_duration_s else "--quick"
    min_queries = config.min_queries or (
        (QUICK.min_queries_decoder if decoder else QUICK.min_queries_encoder) if config.quick else None)
    if min_queries is not None:
        values["min_query_count"] = min_queries
        source["min_query_count"] = "--min-queries" if config.min_queries else "--quick"
    if config.seed is not None:
        for key in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed"):
            values[key] = config.seed
            source[key] = "--seed"
    return values, source


def run_sides(suts: Sequence[Sut], qsl: Sequence[Any], accuracy_qsl: Sequence[Any] | None, values: dict[str, Any],
              config: BenchConfig, out: Path, progress: bool) -> dict[str, SideRuns]:
    sides = {sut.name: SideRuns(sut) for sut in suts}
    if accuracy_qsl is not None:
        for side in sides.values():
            folder = out / side.sut.name / "accuracy"
            run_test(side.sut, accuracy_qsl, values | {"mode": MODE_NAMES["accuracy"]}, folder, progress)
            side.accuracy_log = parse_accuracy((folder / ACCURACY).read_text())
            side.folders["accuracy"] = str(folder)
    names = list(sides)
    for r in range(config.repeats):
        for name in names if r % 2 == 0 else names[::-1]:  # alternate who goes first: no order bias
            side = sides[name]
            folder = out / name / "performance"
            if config.repeats > 1:
                folder = folder / f"run-{r + 1}"
            before = side.sut.computed
            with side.meter:
                stats = run_test(side.sut, qsl, values | {"mode": MODE_NAMES["performance"]}, folder, progress)
            computed = side.sut.computed - before
            if config.division == "closed" and computed < stats["samples"]:
                raise EdgeslmError(f"closed division: {name} answered {stats['samples']} samples but computed only "
                                   f"{computed}; MLPerf's closed division allows no caching between queries")
            run = read_run(folder)
            run.update(order=names.index(name) if r % 2 == 0 else names[::-1].index(name), samples=stats["samples"],
                       tokens=stats["tokens"], computed=computed, folder=str(folder))
            side.runs.append(run)
            side.samples += stats["samples"]
            side.tokens += stats["tokens"]
            side.folders.setdefault("performance", []).append(str(folder))
    return sides


def side_report(side: SideRuns, scenario: str, tokens: bool) -> dict[str, Any]:
    """A side's figures from LoadGen's logs: the median over repeats, each repeat kept under `runs`."""
    per_run = [run_metrics(run, scenario, tokens) for run in side.runs]
    verdicts = [run["verdict"] for run in side.runs]
    report: dict[str, Any] = {
        "loadgen_result": "VALID" if all(v["valid"] for v in verdicts) else "INVALID",
        "valid": all(v["valid"] for v in verdicts),
        "invalid_reasons": sorted({reason for v in verdicts for reason in v["reasons"]}),
        "verdict": verdicts[0] if len(verdicts) == 1 else verdicts,
    }
    for key in per_run[0]:
        if isinstance(per_run[0][key], dict):
            report[key] = {k: round(statistics.median(m[key][k] for m in per_run), 4) for k in per_run[0][key]}
    report.update(samples=side.samples, computed=sum(run["computed"] for run in side.runs),
                  logs=side.folders, summary_file=str(Path(side.runs[0]["folder"]) / SUMMARY))
    if len(per_run) > 1:
        report["runs"] = per_run
    return report


def run_metrics(run: dict[str, Any], scenario: str, tokens: bool) -> dict[str, Any]:
    detail = run["detail"]
    metrics: dict[str, Any] = {"latency": latency_ms(detail), "throughput": throughput(detail)}
    if scenario == "multi-stream":
        metrics["query_latency"] = latency_ms(detail, "per_query")
    if tokens:
        metrics["ttft"] = latency_ms(detail, "first_token")
        metrics["tpot"] = latency_ms(detail, "time_per_output_token")
    metrics["result"] = run["verdict"]["result"]
    return metrics


def median_ratio(sides: dict[str, SideRuns], ours: str, theirs: str,
                 metric: Callable[[dict[str, Any]], float], invert: bool = False) -> dict[str, Any]:
    """metric(ours) / metric(theirs) a repeat (theirs / ours with invert), and their median."""
    values = []
    for a, b in zip(sides[ours].runs, sides[theirs].runs, strict=True):
        x, y = metric(a), metric(b)
        values.append(round((y / x) if invert else (x / y), 4))
    return {"value": round(statistics.median(values), 3), "per_repeat": values}


def effective_settings(run: dict[str, Any]) -> dict[str, Any]:
    """What LoadGen says it used (its `effective_*` log records), for the JSON."""
    return {k[len("effective_"):]: v for k, v in run["detail"].items() if k.startswith("effective_")}
