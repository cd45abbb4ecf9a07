"""Encoder benchmarks under MLPerf LoadGen. The QSL is the labelled file (--data); edgeslm answers
through the server's own Batcher over OnnxClassifier (HTTP aside), a baseline through its plain API.
Accuracy comes from LoadGen's accuracy mode: each answer is the predicted label's index, checked
against the QSL's labels from mlperf_log_accuracy.json after the run.

single-stream  one sample a query, the next when it is answered; latency percentiles
multi-stream   samples_per_query samples a query, answered as one batch; per-query latency
offline        every sample in one query; samples per second
server         Poisson arrivals at a target QPS; latency under that load (LoadGen's p99 bound)
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from edgeslm.bench import harness
from edgeslm.bench.baselines import baseline
from edgeslm.bench.config import QUICK, BenchConfig, peak_rss_mb
from edgeslm.bench.suts import EDGESLM_SUTS, PlainSut
from edgeslm.data.records import read_examples
from edgeslm.data.series import read_series_rows
from edgeslm.errors import ConfigError
from edgeslm.formats.manifest import SERIES_TASK
from edgeslm.formats.reader import Bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.runtime.profiles import isa_summary, load_profile

RATIOS = {  # scenario -> (what is compared, how to read it off a run, baseline over ours?)
    "single-stream": ("p50 latency", lambda run: run["detail"]["result_50.00_percentile_latency_ns"], False),
    "multi-stream": ("p50 per-query latency",
                     lambda run: run["detail"]["result_50.00_percentile_per_query_latency_ns"], False),
    "offline": ("samples per second", lambda run: run["detail"]["result_samples_per_second"], True),
    "server": ("p99 latency at the same target QPS",
               lambda run: run["detail"]["result_99.00_percentile_latency_ns"], False),
}


def run_encoder_bench(config: BenchConfig, bundle: Bundle, out: Path, progress: bool = False) -> dict[str, Any]:
    if config.data is None:
        raise ConfigError("encoder benchmarks need --data: a labelled JSONL/CSV whose texts are LoadGen's "
                          "samples and whose labels check accuracy in the same run")
    labels = list(bundle.manifest.labels)
    profile = load_profile(config.profile)
    threads = config.threads or profile.threads
    engine: Any
    if bundle.manifest.task == SERIES_TASK:  # the QSL's samples are series arrays; the same batcher serves them
        if config.vs:
            raise ConfigError("--vs compares text encoders with their baselines; for a series bundle, "
                              "benchmarks/time_series.py compares it with MiniRocket")
        x, names = read_series_rows(Path(config.data), labels=labels)
        texts: list[Any] = list(x)
        truth = [labels.index(n) for n in names]
        engine = SeriesClassifier.from_bundle(bundle, threads=threads)
    else:
        rows = read_examples(Path(config.data), labels=labels)
        texts = [r.text for r in rows]
        truth = [labels.index(r.label) for r in rows]
        engine = OnnxClassifier.from_bundle(bundle, threads=threads)
    accuracy_n = min(len(texts), config.accuracy_samples or (QUICK.accuracy_samples_encoder if config.quick else len(texts)))
    picked = _spread(len(texts), accuracy_n)

    suts: list[Any] = [EDGESLM_SUTS[("encoder", config.division)](engine, bundle.manifest.name, labels,
                                                                 config.scenario, config.batch)]
    if config.vs:
        base = baseline(config.vs, bundle, threads)
        if list(base.labels) != labels:
            raise ConfigError(f"--vs {config.vs}: the baseline's labels differ from the bundle's")
        suts.append(PlainSut(config.vs, base.predict, labels, config.scenario, config.batch))
    try:
        hints = harness.warm_up(suts, texts, config, batched=True)
        values, source = harness.loadgen_values(config, hints, decoder=False)
        sides = harness.run_sides(suts, texts, [texts[i] for i in picked], values, config, out, progress)
    finally:
        for sut in suts:
            sut.close()

    result: dict[str, Any] = {
        "scenario": config.scenario, "division": config.division, "bundle": str(config.bundle),
        "model": bundle.manifest.name, "data": str(config.data), "qsl_samples": len(texts),
        "threads": threads, "profile": profile.name, "machine": isa_summary(), "out": str(out),
        "repeats": config.repeats, "sides": {},
    }
    for name, side in sides.items():
        report = harness.side_report(side, config.scenario, tokens=False)
        assert side.accuracy_log is not None
        answers: dict[int, bytes] = {}
        for i, data in side.accuracy_log:  # multi-stream pads its last query with repeated samples
            answers.setdefault(i, data)
        correct = [struct.unpack("<i", data)[0] == truth[picked[i]] for i, data in answers.items()]
        report["accuracy"] = round(sum(correct) / len(correct), 4)
        report["accuracy_samples"] = len(correct)
        report["cpu_s"], report["wall_s"] = round(side.meter.cpu_seconds, 3), round(side.meter.wall_seconds, 3)
        report["joules_per_query"] = round(side.meter.joules(profile) / side.samples, 6)
        result["sides"][name] = report
    first = next(iter(sides.values())).runs[0]
    result.update({
        "accuracy_definition": "share of LoadGen's accuracy-mode responses (label index) equal to the QSL's label",
        "loadgen_version": first["detail"].get("loadgen_version"),
        "loadgen_settings": {"set": values, "why": source, "defaults": harness.SETTINGS_NOTE,
                             "effective": harness.effective_settings(first)},
        "division_check": _division_note(config),
        "peak_rss_mb": peak_rss_mb(),
        "energy_model": f"{profile.watts_idle} W idle, {profile.watts_busy} W busy, linear in CPU utilisation, "
                        "over the performance runs",
    })
    if config.vs:
        what, metric, invert = RATIOS[config.scenario]
        ratio = harness.median_ratio(sides, "edgeslm", config.vs, lambda run: float(metric(run)), invert)
        compared = (f"{config.vs} {what} / edgeslm's (edgeslm time per sample / {config.vs}'s)" if invert
                    else f"edgeslm {what} / {config.vs}'s")
        ratio["definition"] = (f"{compared}, from LoadGen's detail logs; median over {config.repeats} repeat(s), "
                               "the order of the sides alternating (below 1: edgeslm is faster)")
        result["ratio"] = ratio
    return result


def _spread(n: int, k: int) -> list[int]:
    """k row indices spread evenly over n rows (a file sorted by label still gives every label)."""
    return sorted({(i * n) // k for i in range(k)})


def _division_note(config: BenchConfig) -> str:
    if config.division == "closed":
        return ("closed: every answered sample was computed by the model in every performance run "
                "(checked: samples the engine ran >= samples LoadGen counted)")
    return "open: adaptive tiers may answer; today the open division runs the closed SUT"
