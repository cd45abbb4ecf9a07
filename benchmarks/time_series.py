"""Time series side by side on this machine: our ts-transformer bundles (fp32 and int8, ONNX Runtime) vs
MiniRocket (aeon) on UCR FordA and ECG5000, official TRAIN/TEST splits: test accuracy, size on disk, batch-1
latency p50/p90 on one core, and estimated µJ per inference (runtime/energy.py's model over the measured
CPU time, profile this-machine).

    make demo-sensors                 # runs/demo/{forda,ecg5000}-{fp32,int8}/
    make ts-baseline-env              # .venv-ts: aeon==1.6.0 (its numba wants numpy < 2.4, so apart from .venv)
    flock /tmp/edgeslm-cpu.lock .venv-ts/bin/python benchmarks/time_series.py [--sets forda ecg5000] [--calls 500] [--json] \
        [--out runs/bench/time_series.json]
    .venv/bin/python benchmarks/time_series_plot.py runs/bench/time_series.json --out docs/time-series.png

One core for everyone: ONNX Runtime with intra_op_num_threads=1; MiniRocket with numba and BLAS held to one
thread. MiniRocket is fitted on the whole TRAIN split (its published protocol); ours trained on 90% of it and
chose its epoch on the other 10%. Its latency is aeon's `predict` on one series, what a user would call
(input checks included); its size is the pickled fitted classifier. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import time
from pathlib import Path
from typing import Any

# one core for MiniRocket too: numba and BLAS read these when they load
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from edgeslm.data.series import load_ucr  # noqa: E402
from edgeslm.formats.reader import open_bundle  # noqa: E402
from edgeslm.runtime.energy import CpuMeter  # noqa: E402
from edgeslm.runtime.engines.series import SeriesClassifier  # noqa: E402
from edgeslm.runtime.profiles import THIS_MACHINE, load_profile  # noqa: E402

INSTALL = "make ts-baseline-env (or: pip install 'aeon==1.6.0'; sktime==1.2.0 also works) and run with .venv-ts/bin/python"
PUBLISHED = {"forda": 0.949, "ecg5000": 0.945}  # MiniRocket's published accuracies


def cpu_model() -> dict[str, Any]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or "unknown"}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {"model": model, "cores": os.cpu_count(), "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "avx512_vnni": "avx512_vnni" in flags, "avx_vnni": "avx_vnni" in flags}


def minirocket() -> tuple[str, Any]:
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier

        return "aeon", MiniRocketClassifier
    except ImportError:
        pass
    try:
        from sktime.classification.kernel_based import RocketClassifier

        return "sktime", lambda random_state: RocketClassifier(rocket_transform="minirocket", random_state=random_state)
    except ImportError:
        raise SystemExit(f"MiniRocket is not installed here: {INSTALL}") from None


def timed(predict: Any, xs: np.ndarray, calls: int, profile: Any) -> dict[str, float]:
    """Batch-1 calls on the first `calls` test series (cycled), after 20 warm ones: p50/p90 ms and µJ a call."""
    for i in range(20):
        predict(xs[i % len(xs)][None])
    seconds = []
    meter = CpuMeter()
    with meter:
        for i in range(calls):
            t = time.perf_counter()
            predict(xs[i % len(xs)][None])
            seconds.append(time.perf_counter() - t)
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p90_ms": round(float(np.percentile(ms, 90)), 4),
            "uJ": round(meter.joules(profile) / calls * 1e6, 1)}


def ours(bundle: Path, x_test: np.ndarray, y_test: np.ndarray, calls: int, profile: Any) -> dict[str, Any]:
    b = open_bundle(bundle)
    clf = SeriesClassifier.from_bundle(b, threads=1, spin=False)
    predicted = np.concatenate([clf.probabilities(x_test[i:i + 256]).argmax(-1) for i in range(0, len(x_test), 256)])
    size = b.model_path.stat().st_size
    return {"accuracy": round(float((predicted == y_test).mean()), 4), "bytes": size,
            **timed(clf.probabilities, x_test, calls, profile)}


def baseline(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, calls: int,
             profile: Any) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    library, make = minirocket()
    with threadpool_limits(1):
        clf = make(random_state=0)
        # aeon takes [n, channels, length]
        t = time.perf_counter()
        clf.fit(x_train.transpose(0, 2, 1), y_train)
        fit_s = time.perf_counter() - t
        result = {"accuracy": minirocket_accuracy(clf, x_test, y_test), "bytes": len(pickle.dumps(clf)),
                  **timed(clf.predict, x_test.transpose(0, 2, 1), calls, profile), "fit_s": round(fit_s, 1),
                  "library": library}
    return result


def minirocket_accuracy(clf: Any, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """A fitted MiniRocket's accuracy on our [n, length, channels] series (aeon takes [n, channels, length]),
    predicted 256 at a time."""
    xt = x_test.transpose(0, 2, 1)
    predicted = np.concatenate([clf.predict(xt[i:i + 256]) for i in range(0, len(xt), 256)])
    return round(float((predicted == y_test).mean()), 4)


def run(sets: list[str], demo: Path, calls: int) -> dict[str, Any]:
    profile = load_profile(THIS_MACHINE)
    out: dict[str, Any] = {"cpu": cpu_model(), "profile": {"name": profile.name, "watts_idle": profile.watts_idle,
                                                            "watts_busy": profile.watts_busy, "cores": profile.cores},
                           "calls": calls, "threads": 1, "sets": {}}
    minirocket()  # say how to install before any work
    for name in sets:
        data = load_ucr(name)
        x_train = np.concatenate([data.x_train, data.x_val])
        y_train = np.concatenate([data.y_train, data.y_val])
        rows: dict[str, Any] = {}
        for variant in ("fp32", "int8"):
            bundle = demo / f"{name}-{variant}"
            if not (bundle / "manifest.json").is_file():
                print(f"{bundle}: missing; `make demo-sensors` builds it", file=sys.stderr)
                continue
            rows[f"ts-transformer {variant}"] = ours(bundle, data.x_test, data.y_test, calls, profile)
        rows["MiniRocket"] = baseline(x_train, y_train, data.x_test, data.y_test, calls, profile)
        out["sets"][name] = {"test_n": len(data.y_test), "published_minirocket": PUBLISHED.get(name), "rows": rows}
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| set | model | test accuracy | size | batch-1 p50 ms | p90 ms | est. µJ / inference |",
             "|---|---|---|---|---|---|---|"]
    for name, s in result["sets"].items():
        for model, r in s["rows"].items():
            size = f"{r['bytes'] / 1e3:.0f} kB" if r["bytes"] < 1e6 else f"{r['bytes'] / 1e6:.2f} MB"
            lines.append(f"| {name} (n={s['test_n']}) | {model} | {r['accuracy']:.4f} | {size} | {r['p50_ms']:.3f} | "
                         f"{r['p90_ms']:.3f} | {r['uJ']:.0f} |")
    cpu = result["cpu"]
    lines.append(f"\nCPU: {cpu.get('model')}, {cpu.get('cores')} cores; avx2 {cpu.get('avx2')}, avx512f {cpu.get('avx512f')}, "
                 f"avx512_vnni {cpu.get('avx512_vnni')}, avx_vnni {cpu.get('avx_vnni')}; 1 thread; energy model: "
                 f"{result['profile']['watts_idle']} W idle, {result['profile']['watts_busy']} W busy over "
                 f"{result['profile']['cores']} cores")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["forda", "ecg5000"], choices=["forda", "ecg5000"])
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"), help="where make demo-sensors wrote the bundles")
    parser.add_argument("--calls", type=int, default=500, help="timed batch-1 calls a model")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the JSON here (benchmarks/time_series_plot.py draws it)")
    args = parser.parse_args()
    result = run(args.sets, args.demo, args.calls)
    result["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
