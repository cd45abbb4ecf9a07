"""MiniRocket (aeon) fitted with several random states on the same official TRAIN split and scored on TEST:
how far the baseline's own accuracy moves from one seed to the next, which says how much a gap of a few
series to its seed-0 figure (the one benchmarks/time_series.py reports) means.

    make ts-baseline-env
    .venv-ts/bin/python benchmarks/minirocket_seeds.py [--sets forda ecg5000] [--seeds 10] [--json] [--out FILE]

MiniRocket's randomness is in its biases (quantiles of the kernels' outputs on randomly drawn training
series) and in nothing else, so each seed is another draw of the same method on the same data. Fitted on the
whole TRAIN split as time_series.py does (its published protocol), one thread. Accuracy only: no timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_series import minirocket, minirocket_accuracy  # noqa: E402

from edgeslm.data.series import load_ucr  # noqa: E402


def scores(name: str, seeds: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    library, make = minirocket()
    data = load_ucr(name)
    x_train = np.concatenate([data.x_train, data.x_val]).transpose(0, 2, 1)  # aeon takes [n, channels, length]
    y_train = np.concatenate([data.y_train, data.y_val])
    accuracies = []
    with threadpool_limits(1):
        for seed in range(seeds):
            clf = make(random_state=seed)
            clf.fit(x_train, y_train)
            accuracies.append(minirocket_accuracy(clf, data.x_test, data.y_test))
            print(f"{name} seed {seed}: {accuracies[-1]:.4f}", file=sys.stderr)
    return {"library": library, "test_n": len(data.y_test), "accuracy_by_seed": accuracies,
            "mean": round(statistics.mean(accuracies), 4), "sd": round(statistics.stdev(accuracies), 4) if seeds > 1 else 0.0,
            "min": min(accuracies), "max": max(accuracies), "median": round(statistics.median(accuracies), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["forda", "ecg5000"])
    ap.add_argument("--seeds", type=int, default=10, help="random states 0..N-1 (default 10)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    result = {"seeds": args.seeds, "sets": {name: scores(name, args.seeds) for name in args.sets},
              "command": "python benchmarks/minirocket_seeds.py " + " ".join(sys.argv[1:])}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, r in result["sets"].items():
            print(f"{name} (n={r['test_n']}): MiniRocket over {args.seeds} seeds mean {r['mean']:.4f} ± {r['sd']:.4f}, "
                  f"median {r['median']:.4f}, range {r['min']:.4f}-{r['max']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
