"""The n-gram head file (formats/ngram_head.py): round trip, and every malformed or tampered file refused
with a BundleError naming what is wrong, without a model."""

import base64
import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# Property tests: a head from an untrusted bundle is parsed or refused with a BundleError, never anything else.
JUNK = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
        | st.lists(st.integers() | st.floats() | st.text(max_size=4), max_size=5)
        | st.dictionaries(st.text(max_size=4), st.integers(), max_size=3))


@st.composite
def mutated(draw):
    data = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*GOOD, "extra"]))
        if draw(st.booleans()) and key in data:
            del data[key]
        else:
            data[key] = draw(JUNK)
    return data


BLOBS = st.binary(max_size=300) | st.tuples(st.integers(0, len(json.dumps(GOOD))), st.binary(max_size=4)).map(
    lambda cut: json.dumps(GOOD).encode()[:cut[0]] + cut[1])
FAST = settings(max_examples=400, deadline=None)
SLOW = settings(max_examples=10_000, deadline=None)


def check(data=None, blob=None):
    try:
        head = NgramHead.from_dict(data) if blob is None else NgramHead.from_bytes(blob)
    except BundleError:
        return
    assert head.weight.shape == (len(head.features), len(head.labels)) and np.isfinite(head.weight).all()


@FAST
@given(data=mutated())
def test_property_mutated_heads(data):
    check(data)


@FAST
@given(blob=BLOBS)
def test_property_head_bytes(blob):
    check(blob=blob)


@pytest.mark.slow
@SLOW
@given(data=mutated())
def test_property_mutated_heads_slow(data):
    check(data)


@pytest.mark.slow
@SLOW
@given(blob=BLOBS)
def test_property_head_bytes_slow(blob):
    check(blob=blob)
