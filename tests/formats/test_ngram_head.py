"""The n-gram head file (formats/ngram_head.py): round trip, and every malformed or tampered file refused
with a BundleError naming what is wrong, without a model."""

import base64
import copy
import json

import numpy as np
import pytest

from edgeslm.errors import BundleError
from edgeslm.formats.ngram_head import NGRAM_FILE, NGRAM_VERSION, NgramHead, read_ngram_head
from edgeslm.formats.reader import open_bundle

LABELS = ["a", "b"]
FEATURES = ["c: t", "c:tu", "w:turn", "w:turn on"]
WEIGHT = np.arange(8, dtype=np.float32).reshape(4, 2) / 4


def weight(values):
    return base64.b64encode(np.asarray(values, dtype="<f2").tobytes()).decode()


GOOD = {"version": 1, "labels": LABELS, "chars": [2, 4], "words": [1, 2], "features": FEATURES,
        "idf": [1.0, 1.5, 2.0, 2.5], "bias": [0.1, -0.1], "weight": weight(WEIGHT), "floor": 0.7}


def changed(key, value):
    data = copy.deepcopy(GOOD)
    if value is KeyError:
        del data[key]
    else:
        data[key] = value
    return data


def test_round_trip_keeps_the_weights_as_float16_gives_them():
    head = NgramHead.from_dict(GOOD)
    assert head.weight.shape == (4, 2) and head.weight.dtype == np.float32
    assert np.array_equal(head.weight, WEIGHT)  # quarters are exact in float16
    again = NgramHead.from_bytes(head.to_json().encode())
    assert again.features == head.features and again.labels == ("a", "b") and again.chars == (2, 4) and again.floor == 0.7
    assert np.array_equal(again.weight, head.weight) and np.array_equal(again.idf, head.idf)


@pytest.mark.parametrize("data, message", [
    (changed("extra", 1), "unknown field"),
    (changed("idf", KeyError), "missing field"),
    (changed("version", NGRAM_VERSION + 1), "newer than this edgeslm reads"),
    (changed("version", True), "version must be a positive integer"),
    (changed("labels", []), "labels must be a non-empty list"),
    (changed("labels", ["a", "a"]), "labels repeat"),
    (changed("chars", [4, 2]), r"chars must be \[shortest, longest\]"),
    (changed("words", [1, 9]), r"words must be \[shortest, longest\]"),
    (changed("features", ["x:tu", *FEATURES[1:]]), "starting with 'c:' or 'w:'"),
    (changed("features", [FEATURES[0]] * 4), "features repeat"),
    (changed("idf", [1.0, 2.0]), "idf must be a list of 4 numbers"),
    (changed("idf", [1.0, float("inf"), 1.0, 1.0]), r"idf\[1\] must be a finite number"),
    (changed("bias", [0.0, "1"]), r"bias\[1\] must be a finite number"),
    (changed("weight", weight(WEIGHT[:3])), "weight holds 12 bytes; 4 features x 2 labels of float16 are 16"),
    (changed("weight", "not base64!"), "weight is not valid base64"),
    (changed("weight", [[0.0, 0.0]] * 4), "weight must be a base64 string"),
    (changed("weight", weight(np.where(WEIGHT > 1, np.inf, WEIGHT))), "not finite"),
    (changed("floor", 1.5), "floor must be a confidence"),
    (changed("floor", None), "floor must be a confidence"),
    ([], "must be a JSON object"),
])
def test_malformed_heads_are_refused(data, message):
    with pytest.raises(BundleError, match=message):
        NgramHead.from_dict(data)


def test_bytes_that_are_not_a_head_are_refused():
    with pytest.raises(BundleError, match="not valid UTF-8 JSON"):
        NgramHead.from_bytes(b"\xff{")
    with pytest.raises(BundleError, match="larger than"):
        NgramHead.from_bytes(b" " * (33 << 20))


def test_a_bundle_carries_its_head_hashed_and_one_without_has_none(write_early_exit, tmp_path):
    assert read_ngram_head(open_bundle(write_early_exit(tmp_path / "ee", {NGRAM_FILE: json.dumps(GOOD)}))).labels == ("a", "b")
    assert read_ngram_head(open_bundle(write_early_exit(tmp_path / "bare", {}))) is None
    out = write_early_exit(tmp_path / "t", {NGRAM_FILE: json.dumps(GOOD)})
    (out / NGRAM_FILE).write_text(json.dumps(changed("bias", [5.0, -0.1])))
    with pytest.raises(BundleError, match=NGRAM_FILE):
        open_bundle(out)  # tampered after signing: its sha256 no longer matches


def test_a_head_for_other_labels_is_refused(write_early_exit, tmp_path):
    out = write_early_exit(tmp_path / "ee", {NGRAM_FILE: json.dumps(GOOD)}, labels=("b", "a"))
    with pytest.raises(BundleError, match="labels are not the bundle's"):
        read_ngram_head(open_bundle(out))
