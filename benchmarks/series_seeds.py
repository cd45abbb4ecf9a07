"""Several training runs of one time-series config (other seeds), scored on the official TEST split one by one
and as an ensemble (the mean of their probabilities): how far a single run moves, and what averaging buys.

    .venv/bin/python benchmarks/series_seeds.py runs/demo/ecg5000-run runs/ecg-seed14 runs/ecg-seed15 --json

Each run's own data/test.jsonl is read (the same TEST split for every seed of a built-in set); fp32 torch,
no bundle: this asks a modelling question, not a serving one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgeslm.data.series import read_series_rows
from edgeslm.train.run import RunFolder
from edgeslm.train.series import load_series_model, predict_logits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="series run folders (edgeslm train --model ts-transformer)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    probs, rows, y_ref = [], [], None
    for run in args.runs:
        model, record = load_series_model(run)
        x, names = read_series_rows(RunFolder(run).split("test"), record["labels"])
        y = np.asarray([record["labels"].index(n) for n in names])
        if y_ref is not None and not np.array_equal(y, y_ref):
            print(f"{run}: its test split differs from the first run's; not the same set", file=sys.stderr)
            return 2
        y_ref = y
        logits = predict_logits(model, x)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs.append(p / p.sum(axis=1, keepdims=True))
        accuracy = round(float((probs[-1].argmax(1) == y).mean()), 4)
        rows.append({"run": str(run), "seed": record["config"]["seed"], "test_accuracy": accuracy})
    ensembles = [{"members": k, "test_accuracy": round(float((np.mean(probs[:k], axis=0).argmax(1) == y_ref).mean()), 4)}
                 for k in range(2, len(probs) + 1)]
    out = {"runs": rows, "ensembles": ensembles, "test_n": int(len(y_ref))}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in rows:
            print(f"seed {r['seed']:>4}  {r['test_accuracy']:.4f}  {r['run']}")
        for e in ensembles:
            print(f"mean of {e['members']}  {e['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
