"""Choose the random-convolution features' setting on TRAIN alone, without training the transformers again:
on each cross-validation fold, fit the features and ridge head (models/conv_features.py, as `rocket: N` does
in training) on the fold's training rows and combine their held-out probabilities with the transformers' that
`series_cv.py --probs DIR` saved for the same folds. TEST is never read.

    .venv/bin/python benchmarks/series_cv.py configs/series/forda.yaml --folds 3 --probs runs/cv/forda
    .venv/bin/python benchmarks/series_fuse.py configs/series/forda.yaml --folds 3 --probs runs/cv/forda \
        --setting 5000/4 --setting 2500/4 --weights 0.33,0.5 --json

A setting is FEATURES/STRIDE[/OPTIONS], OPTIONS '+'-joined from diff (the first difference as a second
input), aug (the head also learns from the flipped or reversed copies the config's flip and reverse call
fair, as `rocket_augment: true`) and the poolings ppv, mpv, mipv (ppv alone when none is named):
5000/4/diff+ppv+mpv, 5000/4/aug. The folds,
validation carves and seed must be series_cv.py's (the same --folds and --seed); the saved probabilities
name their rows, and a mismatch stops the run. Training with `rocket`, `rocket_stride`, `rocket_weight`,
`rocket_diff` and `rocket_pooling` gives these same numbers: the same rows, the same fit, the same
combination (the transformers are trained before and apart from the features).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from series_cv import fold_rows, folds  # noqa: E402  (the same folds and carves, by the same code)

from edgeslm.cli.train import _read_config  # noqa: E402
from edgeslm.data.series import load_series  # noqa: E402
from edgeslm.errors import ConfigError  # noqa: E402
from edgeslm.models.conv_features import ConvFeatureClassifier, check_pooling, fit  # noqa: E402
from edgeslm.train.series import SeriesTrainConfig  # noqa: E402


def parse_setting(setting: str) -> tuple[int, int, bool, str, bool]:
    """'5000/4/diff+aug+ppv+mpv' -> (5000, 4, True, 'ppv+mpv', True): features, stride, diff, pooling, aug."""
    parts = setting.split("/")
    if len(parts) not in (2, 3):
        raise SystemExit(f"--setting {setting!r}: FEATURES/STRIDE[/OPTIONS]")
    options = parts[2].split("+") if len(parts) == 3 else []
    pooling = "+".join(o for o in options if o not in ("diff", "aug")) or "ppv"
    try:
        check_pooling(pooling)
        return int(parts[0]), int(parts[1]), "diff" in options, pooling, "aug" in options
    except ValueError as exc:
        raise SystemExit(f"--setting {setting!r}: {exc}") from None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path, help="the training config series_cv.py ran (its data)")
    ap.add_argument("--probs", type=Path, required=True, help="series_cv.py --probs folder")
    ap.add_argument("--variant", default="base", help="whose saved probabilities (series_cv.py's variant name)")
    ap.add_argument("--setting", action="append", required=True,
                    help="FEATURES/STRIDE[/OPTIONS], e.g. 5000/4 or 5000/4/diff+ppv+mpv")
    ap.add_argument("--weights", default="0.33,0.5,0.67", help="the features' shares of the combined probability")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    weights = [float(w) for w in args.weights.split(",")]
    config = SeriesTrainConfig.from_dict(_read_config(args.config))
    data = load_series(config.data, args.seed)
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    parts = folds(y, args.folds, args.seed)
    result = {"config": str(args.config), "folds": args.folds, "seed": args.seed,
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "settings": {}}
    for setting in args.setting:
        features, stride, diff, pooling, aug = parse_setting(setting)
        try:
            augment = replace(config, rocket_augment=True).rocket_augments() if aug else ()
        except ConfigError as exc:
            raise SystemExit(f"--setting {setting!r}: {exc}") from None
        scores: dict[str, list[float]] = {"transformers": [], "rocket": [], **{f"w{w}": [] for w in weights}}
        started = time.perf_counter()
        for i, held in enumerate(parts):
            saved = np.load(args.probs / f"{args.variant}-fold{i}.npz")
            if not np.array_equal(saved["index"], held):
                raise SystemExit(f"{args.probs}: fold {i} holds other rows; use series_cv.py's --folds and --seed")
            train, _ = fold_rows(y, held, args.seed)
            model = ConvFeatureClassifier(data.length, data.channels, len(data.labels), features, stride, diff,
                                          pooling).eval()
            fit(model, x[train], y[train], args.seed, augment=augment)
            with torch.no_grad():
                rocket = torch.softmax(model(torch.from_numpy(x[held])), -1).numpy()
            transformers = saved["probs"]
            scores["transformers"].append(float((transformers.argmax(-1) == y[held]).mean()))
            scores["rocket"].append(float((rocket.argmax(-1) == y[held]).mean()))
            for w in weights:
                scores[f"w{w}"].append(float((((1 - w) * transformers + w * rocket).argmax(-1) == y[held]).mean()))
            print(f"{setting} fold {i + 1}/{args.folds}: " + " ".join(f"{k} {v[-1]:.4f}" for k, v in scores.items()),
                  file=sys.stderr)
        result["settings"][setting] = {
            "features": model.features, "seconds": round(time.perf_counter() - started, 1),
            **{k: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4),
                   "fold_accuracy": [round(a, 4) for a in v]} for k, v in scores.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for setting, got in result["settings"].items():
            print(setting, "  ".join(f"{k} {v['mean']:.4f}" for k, v in got.items() if isinstance(v, dict)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
