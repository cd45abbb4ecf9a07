"""A sensor network on one core: FordA's official TEST series replayed as N sensors (default 1,000) into
runtime/streams.py's per-sensor windows, each full window classified by the int8 bundle (ONNX Runtime,
intra_op_num_threads=1), the windows that fill in one tick batched into one engine call (max 64).

The rate: each sensor sends 1 reading every 10 ms (100 Hz), delivered by its gateway 10 at a time every
100 ms (one push a sensor a tick): 1,000 sensors are 100,000 readings/s. Windows are 500 readings (the
bundle's length) with hop 500, so sensor i replays test series i, i+N, ... back to back and every window is
exactly one labelled test series (accuracy = windows whose label is the series' label). Sensors start
staggered over one window (sensor i at tick i mod 50), so windows fill evenly: about 200 a second.

Two runs: `paced` keeps the real rate (sleeping to each 100 ms tick) and measures each window's latency, from
the push that filled it to its probabilities; `flat-out` replays the same pushes without sleeping, for the
capacity in windows/s on one core. Memory: the store's window buffers per 1,000 sensors (`nbytes`), and
what tracemalloc counts for 1,000 sensors' buffers and bookkeeping.

    flock /tmp/edgeslm-cpu.lock .venv/bin/python benchmarks/sensor_stream.py [--bundle runs/demo/forda-int8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

from edgeslm.data.series import load_ucr
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.runtime.streams import StreamStore

TICK_S, PER_TICK, MAX_BATCH = 0.1, 10, 64


def replay(engine: SeriesClassifier, streams: list[np.ndarray], truth: list[np.ndarray], paced: bool) -> dict:
    n = engine.length
    store = StreamStore(n, engine.channels, max_sensors=len(streams))
    per_window = n // PER_TICK
    ids = [f"forda-{i:05d}" for i in range(len(streams))]
    ticks = max((i % per_window) + len(s) // PER_TICK for i, s in enumerate(streams))
    latencies, right, windows = [], 0, 0
    start = time.perf_counter()
    for tick in range(ticks):
        began = time.perf_counter()
        ready = []
        for i, stream in enumerate(streams):
            at = (tick - i % per_window) * PER_TICK
            if 0 <= at < len(stream):
                for w in store.push(ids[i], stream[at:at + PER_TICK]):
                    ready.append((i, w, time.perf_counter()))
        for b in range(0, len(ready), MAX_BATCH):
            batch = ready[b:b + MAX_BATCH]
            probs = engine.probabilities(np.stack([w.values for _, w, _ in batch]))
            done = time.perf_counter()
            for (i, w, pushed), p in zip(batch, probs, strict=True):
                latencies.append(done - pushed)
                right += int(p.argmax() == truth[i][w.end // n - 1])
                windows += 1
        if paced:
            time.sleep(max(0.0, began + TICK_S - time.perf_counter()))
    wall = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return {"windows": windows, "wall_s": round(wall, 2), "windows_per_s": round(windows / wall, 1),
            "readings_per_s": round(sum(map(len, streams)) / wall), "accuracy": round(right / windows, 4),
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
            "latency_ms_p90": round(float(np.percentile(lat, 90)), 2),
            "latency_ms_max": round(float(lat.max()), 2), "store_nbytes": store.nbytes()}


def memory_per_1000(length: int, channels: int) -> dict:
    store = StreamStore(length, channels, max_sensors=1000)
    tracemalloc.start()
    for i in range(1000):
        store.push(f"forda-{i:05d}", np.zeros((1, channels), np.float32))
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"buffers_bytes": store.nbytes(), "traced_bytes": traced}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default="runs/demo/forda-int8")
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    engine = SeriesClassifier.from_bundle(open_bundle(Path(args.bundle)), threads=1)
    splits = load_ucr("forda")
    order = [engine.labels.index(name) for name in splits.labels]  # the data's label index -> the bundle's
    y = np.asarray(order)[splits.y_test]
    streams = [np.concatenate(list(splits.x_test[i::args.sensors])) for i in range(min(args.sensors, len(y)))]
    truth = [y[i::args.sensors] for i in range(len(streams))]
    engine.probabilities(np.stack([engine.example()] * 8))  # warm the session
    result = {"bundle": args.bundle, "sensors": len(streams), "test_series": len(y),
              "rate": f"1 reading / 10 ms a sensor, pushed {PER_TICK} at a time every {TICK_S * 1000:.0f} ms",
              "cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(),
              "paced": replay(engine, streams, truth, paced=True),
              "flat_out": replay(engine, streams, truth, paced=False),
              "memory_per_1000_sensors": memory_per_1000(engine.length, engine.channels)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k in ("paced", "flat_out"):
        print(k, json.dumps(result[k]))
    print("memory per 1,000 sensors", json.dumps(result["memory_per_1000_sensors"]))


if __name__ == "__main__":
    main()
