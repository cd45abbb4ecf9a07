"""Encoder scenarios. edgeslm runs through the server's own batcher and engine (HTTP aside), the
baseline through its plain API, alternating in blocks in one process so both see the same machine.
Clients call the batcher as an in-process caller does (`Batcher.classify`: inline when idle, queued
when busy); offline issues every query at once with `submit`, as LoadGen's Offline does.

single-stream  one query at a time; latency percentiles (LoadGen's SingleStream)
offline        every query issued at once; throughput (LoadGen's Offline)
server         N closed-loop clients for a fixed time; throughput and latency under batching,
               against the offline batch throughput measured in the same run
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edgeslm.bench.baselines import baseline
from edgeslm.bench.config import BenchConfig, peak_rss_mb, sample_queries
from edgeslm.data.records import read_examples
from edgeslm.errors import ConfigError
from edgeslm.evaluate.metrics import latency_summary
from edgeslm.formats.reader import Bundle
from edgeslm.runtime.energy import CpuMeter
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.profiles import isa_summary, load_profile
from edgeslm.runtime.server.batcher import Batcher

Predict = Callable[[list[str]], list[str]]


def run_encoder_bench(config: BenchConfig, bundle: Bundle, progress: bool = False) -> dict[str, Any]:
    if config.data is None:
        raise ConfigError("encoder benchmarks need --data: a labelled JSONL/CSV whose texts are the queries "
                          "and whose labels check accuracy in the same run")
    rows = read_examples(Path(config.data), labels=bundle.manifest.labels)
    profile = load_profile(config.profile)
    threads = config.threads or profile.threads
    engine = OnnxClassifier.from_bundle(bundle, threads=threads)
    batcher = Batcher(bundle.manifest.name, lambda texts: (engine.predict(texts), bundle.manifest.name), config.batch)
    sides: dict[str, Predict] = {"edgeslm": lambda texts: [r["label"] for r in batcher.classify(texts)[0]]}
    if config.vs:
        base = baseline(config.vs, bundle, threads)
        if list(base.labels) != list(bundle.manifest.labels):
            raise ConfigError(f"--vs {config.vs}: the baseline's labels differ from the bundle's")
        sides[config.vs] = base.predict
    queries = sample_queries(rows, config.queries, config.seed)
    for predict in sides.values():  # warm both: first calls pay for allocation and thread start
        for q in queries[:config.warmup]:
            predict([q.text])
    try:
        if config.scenario == "single-stream":
            result = _single_stream(sides, queries, config.block, progress)
        elif config.scenario == "offline":
            result = _offline(sides, batcher, queries, config.batch, progress)
        else:
            result = _offline(sides, batcher, queries, config.batch, progress)
            result["offline"] = {k: v.pop("throughput_qps") for k, v in result["sides"].items()}
            result["server"] = _server(batcher, queries, config, progress)
            result["server"]["ratio_vs_offline"] = round(result["server"]["throughput_qps"] /
                                                         result["offline"]["edgeslm"], 3)
    finally:
        batcher.close()
    for side in result["sides"].values():
        span = side.pop("span")
        side["cpu_s"], side["wall_s"] = round(span.cpu_seconds, 3), round(span.wall_seconds, 3)
        side["joules_per_query"] = round(span.joules(profile) / side["n"], 6)
    result.update({
        "scenario": config.scenario, "bundle": str(config.bundle), "model": bundle.manifest.name,
        "data": str(config.data), "queries": len(queries), "threads": threads, "profile": profile.name,
        "machine": isa_summary(), "peak_rss_mb": peak_rss_mb(), "seed": config.seed,
        "energy_model": f"{profile.watts_idle} W idle, {profile.watts_busy} W busy, linear in CPU utilisation",
    })
    if config.vs:
        result["ratio"] = _ratio(result, config)
    return result


def _single_stream(sides: dict[str, Predict], queries: list[Any], block: int, progress: bool) -> dict[str, Any]:
    stats = {name: {"lat": [], "correct": 0, "span": CpuMeter()} for name in sides}
    order = list(sides)
    bar = tqdm(total=len(queries) * len(sides), desc="single-stream", disable=not progress, unit="q")
    for i, start in enumerate(range(0, len(queries), block)):
        for name in order if i % 2 == 0 else order[::-1]:  # alternate who goes first: no order bias
            s, predict = stats[name], sides[name]
            with s["span"]:
                for q in queries[start:start + block]:
                    t = time.perf_counter()
                    label = predict([q.text])[0]
                    s["lat"].append(time.perf_counter() - t)
                    s["correct"] += label == q.label
            bar.update(len(queries[start:start + block]))
    bar.close()
    return {"sides": {name: {"n": len(s["lat"]), "latency": latency_summary(s["lat"]),
                             "accuracy": round(s["correct"] / len(s["lat"]), 4),
                             "throughput_qps": round(len(s["lat"]) / s["span"].wall_seconds, 1), "span": s["span"]}
                      for name, s in stats.items()}}


def _offline(sides: dict[str, Predict], batcher: Batcher, queries: list[Any], batch: int, progress: bool,
             rounds: int = 3) -> dict[str, Any]:
    stats = {name: {"qps": [], "correct": 0, "n": 0, "span": CpuMeter()} for name in sides}
    texts = [q.text for q in queries]
    bar = tqdm(total=rounds * len(sides), desc="offline", disable=not progress, unit="pass")
    for r in range(rounds):
        for name in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            s = stats[name]
            with s["span"]:
                t = time.perf_counter()
                if name == "edgeslm":
                    labels = _issue_all(batcher, texts)
                else:
                    labels = [x for i in range(0, len(texts), batch) for x in sides[name](texts[i:i + batch])]
                s["qps"].append(len(texts) / (time.perf_counter() - t))
            s["correct"] += sum(a == q.label for a, q in zip(labels, queries, strict=True))
            s["n"] += len(texts)
            bar.update(1)
    bar.close()
    return {"sides": {name: {"n": s["n"], "throughput_qps": round(sorted(s["qps"])[len(s["qps"]) // 2], 1),
                             "accuracy": round(s["correct"] / s["n"], 4), "span": s["span"]}
                      for name, s in stats.items()}}


def _issue_all(batcher: Batcher, texts: list[str]) -> list[str]:
    """LoadGen's Offline issues every sample at once; the batcher groups them as they queue."""
    futures = [batcher.submit([t]) for t in texts]
    return [f.result()[0][0]["label"] for f in futures]


def _server(batcher: Batcher, queries: list[Any], config: BenchConfig, progress: bool) -> dict[str, Any]:
    """Closed loop: each client sends, waits for its answer, sends the next, until the time is up."""
    latencies: list[list[float]] = [[] for _ in range(config.concurrency)]
    correct = [0] * config.concurrency
    sizes: Tally = Tally()
    observe, batcher.observe = batcher.observe, lambda _m, n, _s: sizes.update([n])
    stop = threading.Event()

    def client(c: int) -> None:
        i = c
        while not stop.is_set():
            q = queries[i % len(queries)]
            t = time.perf_counter()
            label = batcher.classify([q.text])[0][0]["label"]
            latencies[c].append(time.perf_counter() - t)
            correct[c] += label == q.label
            i += config.concurrency

    span = CpuMeter()
    clients = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(config.concurrency)]
    with span:
        for t in clients:
            t.start()
        for _ in tqdm(range(int(config.min_duration_s * 10)), desc=f"server x{config.concurrency}",
                      disable=not progress, unit="0.1s"):
            time.sleep(0.1)
        stop.set()
        for t in clients:
            t.join()
    batcher.observe = observe
    flat = [x for lat in latencies for x in lat]
    return {"clients": config.concurrency, "duration_s": round(span.wall_seconds, 2), "n": len(flat),
            "throughput_qps": round(len(flat) / span.wall_seconds, 1), "latency": latency_summary(flat),
            "accuracy": round(sum(correct) / max(1, len(flat)), 4),
            "mean_batch": round(sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values())), 2),
            "cpu_s": round(span.cpu_seconds, 3)}


def _ratio(result: dict[str, Any], config: BenchConfig) -> dict[str, Any]:
    ours, theirs = result["sides"]["edgeslm"], result["sides"][config.vs]
    if config.scenario == "single-stream":
        return {"value": round(ours["latency"]["p50_ms"] / theirs["latency"]["p50_ms"], 3),
                "definition": f"edgeslm p50 latency / {config.vs} p50 latency (below 1: edgeslm is faster)"}
    theirs_qps = result["offline"][config.vs] if config.scenario == "server" else theirs["throughput_qps"]
    ours_qps = result["offline"]["edgeslm"] if config.scenario == "server" else ours["throughput_qps"]
    return {"value": round(theirs_qps / ours_qps, 3),
            "definition": f"edgeslm time per query / {config.vs} time per query, offline batch {config.batch} "
                          "(below 1: edgeslm is faster)"}
