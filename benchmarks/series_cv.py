"""Choose between time-series training configs on TRAIN alone: stratified k-fold cross-validation over the
official TRAIN split (TEST is never read). Each fold runs the whole training procedure on the other folds
(its own 10% validation carve chooses the epoch, as `edgeslm train` does) and is scored on the held-out fold.
What a 51-beat validation split (ECG5000) cannot tell apart, 500 held-out beats might.

    .venv/bin/python benchmarks/series_cv.py configs/series/ecg5000.yaml --variant ema=ema:0.99 --json

A variant is NAME=KEY:VALUE[,KEY:VALUE...] over the base config (values parsed as YAML). Every variant sees
the same folds and the same seed. Prints each variant's mean and standard deviation of fold accuracy. A
variant with `members:K` is also scored with its first 1..K-1 members (`NAME@k`; `@1` is the single model
of its config), from the same trained members, so an ensemble's size is chosen without training twice; a
variant with `rocket:N` is also scored by each kind of classifier alone (`NAME:transformers`, `NAME:rocket`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from edgeslm.cli.train import _read_config
from edgeslm.data.series import SeriesSplits, load_series, stratified_holdout
from edgeslm.train.series import SeriesTrainConfig, load_series_model, train_series


def folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k disjoint sorted index sets, each label spread evenly over them."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(k)]
    for label in np.unique(y):
        for i, row in enumerate(rng.permutation(np.flatnonzero(y == label))):
            parts[i % k].append(int(row))
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def fold_rows(y: np.ndarray, held: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows a fold trains on and the 10% carve that chooses its epoch, from the rows not held out."""
    rest = np.setdiff1d(np.arange(len(y)), held)
    val = rest[stratified_holdout(y[rest], 0.1, seed)]
    return np.setdiff1d(rest, val), val


def variant(spec: str) -> tuple[str, dict]:
    name, _, body = spec.partition("=")
    changes = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        changes[key.strip()] = yaml.safe_load(value)
    return name, changes


def prefix_accuracy(run: Path, x: np.ndarray, y: np.ndarray) -> dict[int, float]:
    """Accuracy on (x, y) of the mean probability of an ensemble run's first k members, k = 1 .. members-1."""
    import torch

    model, _ = load_series_model(run)
    if not hasattr(model, "members"):
        return {}
    with torch.no_grad():
        probs = [torch.softmax(m(torch.from_numpy(x)), -1).numpy() for m in model.members]
    return {k: round(float((np.mean(probs[:k], axis=0).argmax(-1) == y).mean()), 4) for k in range(1, len(probs))}


def save_probs(run: Path, x: np.ndarray, index: np.ndarray, path: Path) -> None:
    import torch

    model, _ = load_series_model(run)
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, index=index, probs=probs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path, help="the base training config (YAML or JSON, as `edgeslm train --config`)")
    ap.add_argument("--variant", action="append", default=[], help="NAME=KEY:VALUE[,KEY:VALUE...]; 'base' runs too unless --skip-base")
    ap.add_argument("--skip-base", action="store_true",
                    help="do not run the base config on its own (a members:K variant's @1 is the same model)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=13, help="the folds' and every run's seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--probs", type=Path, help="a folder for each variant's held-out class probabilities per fold "
                    "(NAME-foldI.npz: index, probs), to score a combination later without training again")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = _read_config(args.config)  # edgeslm train's own reader: its errors, YAML or JSON
    base.update(threads=args.threads, seed=args.seed)
    data = load_series(base["data"], args.seed)
    x = np.concatenate([data.x_train, data.x_val])  # all of TRAIN; TEST is not used here
    y = np.concatenate([data.y_train, data.y_val])
    parts = folds(y, args.folds, args.seed)
    result = {"config": str(args.config), "folds": args.folds, "seed": args.seed, "train_series": len(y),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "variants": {}}
    for name, changes in [*([] if args.skip_base else [("base", {})]), *map(variant, args.variant)]:
        config = SeriesTrainConfig.from_dict({**base, **changes})
        scores, prefixes, started = [], {k: [] for k in range(1, config.members)}, time.perf_counter()
        kinds: dict[str, list[float]] = {}
        for i, held in enumerate(parts):
            train, val = fold_rows(y, held, args.seed)
            split = SeriesSplits(x[train], y[train], x[val], y[val], x[held], y[held], data.labels, data.meta)
            with tempfile.TemporaryDirectory() as tmp:
                record = train_series(config, Path(tmp), data=split)
                for k, accuracy in prefix_accuracy(Path(tmp), x[held], y[held]).items():
                    prefixes[k].append(accuracy)
                if args.probs:
                    save_probs(Path(tmp), x[held], held, args.probs / f"{name}-fold{i}.npz")
            scores.append(record["metrics"]["test"]["accuracy"])
            for part, accuracy in record["metrics"]["test"].get("parts", {}).items():
                kinds.setdefault(part, []).append(accuracy)
            print(f"{name} fold {i + 1}/{args.folds}: {scores[-1]:.4f}", file=sys.stderr)
        result["variants"][name] = {"changes": changes, "fold_accuracy": scores, "mean": round(float(np.mean(scores)), 4),
                                    "std": round(float(np.std(scores)), 4),
                                    "seconds": round(time.perf_counter() - started, 1)}
        for part, got in kinds.items():  # a rocket variant: each kind of classifier alone
            result["variants"][f"{name}:{part}"] = {"changes": changes, "fold_accuracy": got,
                                                    "mean": round(float(np.mean(got)), 4), "std": round(float(np.std(got)), 4)}
        for k, got in prefixes.items():
            result["variants"][f"{name}@{k}"] = {"changes": {**changes, "members": k}, "fold_accuracy": got,
                                                 "mean": round(float(np.mean(got)), 4), "std": round(float(np.std(got)), 4)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, v in result["variants"].items():
            print(f"{name:20s} {v['mean']:.4f} ± {v['std']:.4f}  {v['fold_accuracy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
