"""benchmarks/series_cv.py and benchmarks/series_fuse.py, run as a user runs them, on a tiny config: every fold
trains and is scored, the held-out probabilities are saved, and series_fuse reads them back on the same folds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = {"data": "ecg5000", "batch_size": 32, "patch": 8, "stride": 8, "stem": 8, "d_model": 16, "heads": 2, "layers": 1,
        "ff": 32, "max_steps": 4, "epochs": 1}


def _run(*args: str) -> dict:
    done = subprocess.run([sys.executable, *args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_cross_validation_saves_each_folds_probabilities_and_fuse_scores_them(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    probs = tmp_path / "probs"
    cv = _run("benchmarks/series_cv.py", str(config), "--folds", "2", "--skip-base", "--variant", "tr=rocket:0",
              "--probs", str(probs))
    assert cv["train_series"] == 500 and len(cv["variants"]["tr"]["fold_accuracy"]) == 2
    assert sorted(p.name for p in probs.iterdir()) == ["tr-fold0.npz", "tr-fold1.npz"]
    fuse = _run("benchmarks/series_fuse.py", str(config), "--folds", "2", "--probs", str(probs), "--variant", "tr",
                "--setting", "600/4", "--setting", "1200/4/diff+ppv+mpv", "--weights", "0.5")
    got = fuse["settings"]["600/4"]
    # both below the least budget (one bias a kernel): the first difference and a second pooling make 2 x 2 as many
    assert fuse["settings"]["1200/4/diff+ppv+mpv"]["features"] == 4 * got["features"]
    # the transformers' saved probabilities score what cross-validation scored, fold for fold
    assert got["transformers"]["fold_accuracy"] == cv["variants"]["tr"]["fold_accuracy"]
    assert len(got["rocket"]["fold_accuracy"]) == 2 and got["rocket"]["mean"] >= 0.8 and "w0.5" in got
    # another seed's folds hold other rows: refused, not scored
    wrong = subprocess.run([sys.executable, "benchmarks/series_fuse.py", str(config), "--folds", "2", "--seed", "14",
                            "--probs", str(probs), "--variant", "tr", "--setting", "600/4"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert wrong.returncode != 0 and "other rows" in wrong.stderr
    unknown = subprocess.run([sys.executable, "benchmarks/series_fuse.py", str(config), "--folds", "2",
                              "--probs", str(probs), "--variant", "tr", "--setting", "600/4/diff+lspv"],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert unknown.returncode != 0 and "pooling" in unknown.stderr
    # the copies the head may learn from are the config's own fair augmentations: ECG5000's config has none
    unfair = subprocess.run([sys.executable, "benchmarks/series_fuse.py", str(config), "--folds", "2",
                             "--probs", str(probs), "--variant", "tr", "--setting", "600/4/aug"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert unfair.returncode != 0 and "flip or reverse" in unfair.stderr
