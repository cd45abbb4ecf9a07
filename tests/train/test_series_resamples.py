"""benchmarks/series_resamples.py: resample 0 is the official split, every other one redraws TRAIN + TEST with
the official label counts and nothing shared between its parts; `ours` trains and saves each part's
probabilities, `fuse` scores them again with the same features and reproduces the run, `compare` pairs by
resample (the MiniRocket side needs aeon, which lives in .venv-ts: its file is written here by hand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeslm.data.series import load_ucr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from series_resamples import compare, resample, sign_test  # noqa: E402

TINY = {"data": "ecg5000", "batch_size": 32, "patch": 8, "stride": 8, "stem": 8, "d_model": 16, "heads": 2, "layers": 1,
        "ff": 32, "max_steps": 4, "epochs": 1, "rocket": 600, "rocket_stride": 4, "rocket_weight": 0.33}


def _run(*args: str) -> dict:
    done = subprocess.run([sys.executable, "benchmarks/series_resamples.py", *args, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _key(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_resample_zero_is_the_official_split_and_the_others_keep_its_label_counts():
    official = load_ucr("ecg5000", 13)
    zero = resample("ecg5000", 0, 13)
    assert np.array_equal(zero.x_test, official.x_test) and np.array_equal(zero.y_val, official.y_val)
    counts = np.bincount(np.concatenate([official.y_train, official.y_val]))
    seen = []
    for r in (1, 2):
        s = resample("ecg5000", r, 13)
        assert s.sizes() == zero.sizes()
        assert np.array_equal(np.bincount(np.concatenate([s.y_train, s.y_val])), counts)
        train, val, test = _key(s.x_train), _key(s.x_val), _key(s.x_test)
        assert not (train & test) and not (val & test) and not (train & val)
        assert len(train | val | test) == 5000  # every series of TRAIN and TEST once
        seen.append(test)
    assert seen[0] != seen[1] and seen[0] != _key(official.x_test)


def test_sign_test_is_the_exact_two_sided_binomial():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test(3, 3) == 1.0


def test_ours_saves_the_parts_fuse_reproduces_them_and_compare_pairs_by_resample(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    probs = tmp_path / "probs"
    ours = _run("ours", str(config), "--resamples", "2", "--probs", str(probs))
    assert [r["resample"] for r in ours["resamples"]] == [0, 1] and all(r["n"] == 4500 for r in ours["resamples"])
    assert sorted(p.name for p in probs.iterdir()) == ["resample-0.npz", "resample-1.npz"]
    fuse = _run("fuse", str(config), "--resamples", "2", "--probs", str(probs), "--setting", "600/4",
                "--weights", "0.33")
    for run, again in zip(ours["resamples"], fuse["settings"]["600/4"], strict=True):
        # the same features fitted the same way, the same saved transformers: the run's own three figures
        assert (again["transformers"], again["rocket"], again["w0.33"]) == (run["transformers"], run["rocket"], run["accuracy"])
    wrong = subprocess.run([sys.executable, "benchmarks/series_resamples.py", "fuse", str(config), "--resamples", "2",
                            "--probs", str(tmp_path / "none"), "--setting", "600/4"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert wrong.returncode != 0 and "resample-0.npz: missing" in wrong.stderr
    theirs = tmp_path / "minirocket.json"
    base = [round(r["accuracy"] - 0.01 * (1 - 2 * i), 4) for i, r in enumerate(ours["resamples"])]
    theirs.write_text(json.dumps({"model": "minirocket", "set": "ecg5000",
                                  "resamples": [{"resample": i, "accuracy": a} for i, a in enumerate(base)]}))
    mine = tmp_path / "ours.json"
    mine.write_text(json.dumps(ours))
    got = _run("compare", str(mine), str(theirs))
    assert got["ours"]["minus_minirocket"] == [0.01, -0.01] and (got["ours"]["wins"], got["ours"]["losses"]) == (1, 1)
    assert "ours:transformers" in got and "ours:rocket" in got
    assert got == compare(ours, json.loads(theirs.read_text())) | {"command": got["command"]}
    # the picture, from compare's own output; a file that is not one is refused with its name
    paired, picture = tmp_path / "compare.json", tmp_path / "resamples.png"
    paired.write_text(json.dumps(got))
    drawn = subprocess.run([sys.executable, "benchmarks/series_resamples.py", "plot", str(paired), str(paired),
                            "--out", str(picture)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
    bad = subprocess.run([sys.executable, "benchmarks/series_resamples.py", "plot", str(mine), "--out", str(picture)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "not a `series_resamples.py compare --out` result" in bad.stderr
    junk = subprocess.run([sys.executable, "benchmarks/series_resamples.py", "compare", str(picture), str(theirs)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert junk.returncode != 0 and "not a `series_resamples.py ours --out` result" in junk.stderr
