"""Ours against MiniRocket over stratified resamples of a UCR set (the archive's own protocol for comparing
classifiers, Bagnall et al. 2017): is a gap on the official split the split's, or the method's?

    .venv/bin/python benchmarks/series_resamples.py ours configs/series/ecg5000.yaml --resamples 10 \
        --out runs/bench/resamples-ecg5000-ours.json
    .venv-ts/bin/python benchmarks/series_resamples.py minirocket configs/series/ecg5000.yaml --resamples 10 \
        --out runs/bench/resamples-ecg5000-minirocket.json
    .venv/bin/python benchmarks/series_resamples.py compare runs/bench/resamples-ecg5000-ours.json \
        runs/bench/resamples-ecg5000-minirocket.json --out runs/bench/resamples-ecg5000-compare.json
    .venv/bin/python benchmarks/series_resamples.py plot runs/bench/resamples-forda-compare.json \
        runs/bench/resamples-ecg5000-compare.json --out docs/resamples.png

Resample 0 is the official TRAIN/TEST split; resample r > 0 pools TRAIN and TEST and draws, with seed r, as
many series of each label for training as the official TRAIN holds (so the same sizes and label counts), the
rest to test. Ours is the config's whole training procedure (its 10% carve of the resample's training series
chooses the epoch; its seed fixed), scored with each part alone too; MiniRocket is aeon's, random state 0, one
thread, as benchmarks/time_series.py fits it. The two runs go in two environments (torch and aeon do not share
one); `compare` pairs them by resample: means, the per-resample differences, wins and losses, and a two-sided
sign test. Accuracy only. This measures; it chooses nothing: no config is tuned on these resamples, whose test
parts hold most of the official TEST series.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from edgeslm.data.series import SeriesSplits, load_ucr, stratified_holdout  # noqa: E402

FEATURES_BATCH = 64  # the features compare every position with every bias: [batch, features, length] at once


def resample(name: str, r: int, seed: int) -> SeriesSplits:
    """Resample r of a UCR set: 0 the official split, else the pooled series redrawn with the official
    TRAIN's label counts; the validation carve (10%, stratified, `seed`) comes from its training series."""
    official = load_ucr(name, seed)
    if r == 0:
        return official  # its carve is `edgeslm train`'s own, so resample 0 reproduces the demo's run
    y_train = np.concatenate([official.y_train, official.y_val])
    x_all = np.concatenate([official.x_train, official.x_val, official.x_test])
    y_all = np.concatenate([y_train, official.y_test])
    rng = np.random.default_rng(r)
    train = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y_all == label))[:int((y_train == label).sum())]
                                    for label in np.unique(y_train)]))
    test = np.setdiff1d(np.arange(len(y_all)), train)
    val = train[stratified_holdout(y_all[train], 0.1, seed)]
    fit = np.setdiff1d(train, val)
    return SeriesSplits(x_all[fit], y_all[fit], x_all[val], y_all[val], x_all[test], y_all[test], official.labels,
                        {**official.meta, "split": f"resample {r} of TRAIN+TEST, official TRAIN's label counts"})


def run_ours(config_path: Path, resamples: int, probs: Path | None = None) -> dict[str, Any]:
    from edgeslm.cli.train import _read_config
    from edgeslm.train.series import SeriesTrainConfig, train_series

    config = SeriesTrainConfig.from_dict(_read_config(config_path))
    rows = []
    for r in range(resamples):
        split, started = resample(config.data, r, config.seed), time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            test = train_series(config, Path(tmp), data=split)["metrics"]["test"]
            if probs is not None:
                save_parts(Path(tmp), split, probs / f"resample-{r}.npz")
        rows.append({"resample": r, "accuracy": test["accuracy"], "n": test["n"], **test.get("parts", {}),
                     "seconds": round(time.perf_counter() - started, 1)})
        print(f"ours resample {r}: {test['accuracy']:.4f} {test.get('parts', {})}", file=sys.stderr)
    return {"model": "ours", "set": config.data, "seed": config.seed, "resamples": rows}


def save_parts(run: Path, split: SeriesSplits, path: Path) -> None:
    """Each part's class probabilities on the resample's test series (the transformers' mean; the features'
    if the run has them), so `fuse` can try other features without training the transformers again."""
    from edgeslm.compress.exit_math import softmax
    from edgeslm.train.series import load_series_model, predict_logits

    model, _ = load_series_model(run)
    ensemble = hasattr(model, "members")
    parts = {"transformers": np.exp(predict_logits(model.transformers, split.x_test)) if ensemble
             else softmax(predict_logits(model, split.x_test))}
    if getattr(model, "rocket", None) is not None:
        parts["rocket"] = softmax(predict_logits(model.rocket, split.x_test, FEATURES_BATCH))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, y=split.y_test, **parts)


def run_fuse(config_path: Path, resamples: int, probs: Path, settings: list[str], weights: list[float]) -> dict[str, Any]:
    """The saved transformers of each resample combined with other features (FEATURES/STRIDE[/OPTIONS], as
    series_fuse.py), fitted on the resample's training series as `rocket: N` does in training."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from series_fuse import parse_setting

    from edgeslm.cli.train import _read_config
    from edgeslm.compress.exit_math import softmax
    from edgeslm.models.conv_features import ConvFeatureClassifier, fit
    from edgeslm.train.series import SeriesTrainConfig, predict_logits

    torch.set_num_threads(1)
    config = SeriesTrainConfig.from_dict(_read_config(config_path))
    result: dict[str, Any] = {"model": "ours", "set": config.data, "seed": config.seed, "settings": {}}
    for setting in settings:
        features, stride, diff, pooling, aug = parse_setting(setting)
        if aug:
            raise SystemExit("fuse: the 'aug' option is not supported here")
        rows = []
        for r in range(resamples):
            saved_path = probs / f"resample-{r}.npz"
            if not saved_path.is_file():
                raise SystemExit(f"{saved_path}: missing; run `series_resamples.py ours CONFIG --probs {probs}` first")
            split, saved = resample(config.data, r, config.seed), np.load(saved_path)
            if not np.array_equal(saved["y"], split.y_test):
                raise SystemExit(f"{probs}: resample {r} holds other test series; same config and resamples, please")
            model = ConvFeatureClassifier(split.length, split.channels, len(split.labels), features, stride, diff,
                                          pooling).eval()
            fit(model, split.x_train, split.y_train, config.seed)
            rocket = softmax(predict_logits(model, split.x_test, FEATURES_BATCH))
            transformers, y = saved["transformers"], split.y_test
            row = {"resample": r, "n": len(y), "features": model.features,
                   "transformers": round(float((transformers.argmax(-1) == y).mean()), 4),
                   "rocket": round(float((rocket.argmax(-1) == y).mean()), 4)}
            for w in weights:
                row[f"w{w}"] = round(float((((1 - w) * transformers + w * rocket).argmax(-1) == y).mean()), 4)
            rows.append(row)
            print(f"{setting} resample {r}: {row}", file=sys.stderr)
        result["settings"][setting] = rows
    return result


def run_minirocket(config_path: Path, resamples: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from time_series import minirocket, minirocket_accuracy

    from edgeslm.cli.train import _read_config

    name, seed = _read_config(config_path)["data"], 13  # the carve's seed: no matter, MiniRocket fits on the carve too
    library, make = minirocket()
    rows = []
    with threadpool_limits(1):
        for r in range(resamples):
            split = resample(name, r, seed)
            x_train = np.concatenate([split.x_train, split.x_val]).transpose(0, 2, 1)  # aeon: [n, channels, length]
            y_train = np.concatenate([split.y_train, split.y_val])
            clf = make(random_state=0)
            clf.fit(x_train, y_train)
            rows.append({"resample": r, "accuracy": minirocket_accuracy(clf, split.x_test, split.y_test),
                         "n": len(split.y_test)})
            print(f"minirocket resample {r}: {rows[-1]['accuracy']:.4f}", file=sys.stderr)
    return {"model": "minirocket", "library": library, "set": name, "resamples": rows}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test, ties dropped."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    mine = {row["resample"]: row for row in ours["resamples"]}
    base = {row["resample"]: row["accuracy"] for row in theirs["resamples"]}
    shared = sorted(set(mine) & set(base))
    if not shared:
        raise SystemExit("compare: the two files share no resample")
    out: dict[str, Any] = {"set": ours["set"], "resamples": shared,
                           "minirocket": summary([base[r] for r in shared])}
    for part in ("accuracy", "transformers", "rocket"):
        if not all(part in mine[r] for r in shared):
            continue
        got = [mine[r][part] for r in shared]
        diff = [round(mine[r][part] - base[r], 4) for r in shared]
        wins, losses = sum(d > 0 for d in diff), sum(d < 0 for d in diff)
        out["ours" if part == "accuracy" else f"ours:{part}"] = {
            **summary(got), "minus_minirocket": diff, "mean_difference": round(statistics.mean(diff), 4),
            "wins": wins, "ties": len(diff) - wins - losses, "losses": losses, "sign_test_p": round(sign_test(wins, losses), 4)}
    return out


PARTS = {"minirocket": ("MiniRocket", "tab:orange", "o"), "ours": ("ours", "tab:blue", "s"),
         "ours:transformers": ("its transformers alone", "tab:cyan", "^"),
         "ours:rocket": ("its features alone", "tab:gray", "v")}


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    """One panel a set: each method's accuracy by resample (0: the official split), means dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.8), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        shown = result["resamples"]
        for key, (label, color, marker) in PARTS.items():
            if key not in result:
                continue
            got = result[key]
            ax.plot(shown, got["by_resample"], marker=marker, color=color, lw=1.2 if key in ("ours", "minirocket") else 0.7,
                    label=f"{label}: mean {got['mean']:.4f}")
            ax.axhline(got["mean"], color=color, ls="--", lw=0.6)
        ours = result.get("ours", {})
        ax.set_title(f"{result['set']}: ours above MiniRocket on {ours.get('wins', 0)} of {len(shown)} resamples"
                     f" (sign test p = {ours.get('sign_test_p', 1.0):g})", fontsize=9)
        ax.set_xticks(shown)
        ax.set_xlabel("resample (0: the official TRAIN / TEST split)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def read_result(path: Path, keys: set[str], what: str) -> dict[str, Any]:
    """A JSON object this script wrote, with at least `keys`; anything else stops the run naming the file."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(result, dict) and keys <= set(result):
            return result
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    raise SystemExit(f"{path}: not a `series_resamples.py {what}` result")


def summary(values: list[float]) -> dict[str, Any]:
    return {"by_resample": values, "mean": round(statistics.mean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["ours", "minirocket", "fuse", "compare", "plot"])
    ap.add_argument("inputs", nargs="+", type=Path, help="a series training config; for compare, ours.json "
                    "minirocket.json; for plot, one or more compare --out files (the picture goes to --out)")
    ap.add_argument("--resamples", type=int, default=10, help="resamples 0..N-1 (0: the official split)")
    ap.add_argument("--probs", type=Path, help="ours: save each resample's part probabilities here; fuse: read them")
    ap.add_argument("--setting", action="append", default=[], help="fuse: FEATURES/STRIDE[/OPTIONS], as series_fuse.py")
    ap.add_argument("--weights", default="0.33,0.5", help="fuse: the features' shares of the combined probability")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    if args.resamples < 1:
        ap.error("--resamples must be at least 1")
    if args.what == "plot":
        if args.out is None or args.out.suffix != ".png":
            ap.error("plot needs --out FILE.png")
        print(plot([read_result(p, {"set", "resamples", "minirocket", "ours"}, "compare --out") for p in args.inputs],
                   args.out))
        return 0
    if args.what == "compare":
        if len(args.inputs) != 2:
            ap.error("compare takes two files: ours.json minirocket.json")
        ours, theirs = args.inputs
        result = compare(read_result(ours, {"set", "resamples"}, "ours --out"),
                         read_result(theirs, {"resamples"}, "minirocket --out"))
    elif args.what == "ours":
        result = run_ours(args.inputs[0], args.resamples, args.probs)
    elif args.what == "fuse":
        if args.probs is None or not args.setting:
            ap.error("fuse needs --probs (ours --probs's folder) and at least one --setting")
        result = run_fuse(args.inputs[0], args.resamples, args.probs, args.setting,
                          [float(w) for w in args.weights.split(",")])
    else:
        result = run_minirocket(args.inputs[0], args.resamples)
    result["command"] = "python benchmarks/series_resamples.py " + " ".join(sys.argv[1:])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json or args.what != "compare":
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['set']}, resamples {result['resamples']}: MiniRocket {result['minirocket']['mean']:.4f} "
              f"± {result['minirocket']['sd']:.4f}")
        for name, v in result.items():
            if name.startswith("ours"):
                print(f"{name:20s} {v['mean']:.4f} ± {v['sd']:.4f}  minus MiniRocket {v['mean_difference']:+.4f}  "
                      f"wins {v['wins']} ties {v['ties']} losses {v['losses']}  sign test p {v['sign_test_p']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
