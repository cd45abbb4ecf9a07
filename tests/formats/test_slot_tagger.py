"""The slot tagger file (formats/slot_tagger.py): round trip, and every malformed or tampered file refused
with a BundleError naming what is wrong, without a model."""

import copy
import json

import numpy as np
import pytest

from edgeslm.errors import BundleError
from edgeslm.formats.reader import open_bundle
from edgeslm.formats.slot_tagger import TAGGER_FILE, TAGGER_VERSION, TaggerHead, read_tagger

TAGS = ["O", "B-name", "I-name", "B-area", "I-area", "B-floor", "I-floor"]
HIDDEN, WINDOW = 4, 1
ROWS = (2 * WINDOW + 1) * HIDDEN
GOOD = {"version": 1, "layers": 2, "hidden_size": HIDDEN, "window": WINDOW, "tags": TAGS,
        "weight": [[0.01 * (r + c) for c in range(len(TAGS))] for r in range(ROWS)], "bias": [0.0] * len(TAGS)}


def changed(key, value):
    data = copy.deepcopy(GOOD)
    if value is KeyError:
        del data[key]
    else:
        data[key] = value
    return data


def test_round_trip():
    head = TaggerHead.from_dict(GOOD)
    assert head.weight.shape == (ROWS, len(TAGS)) and head.weight.dtype == np.float32
    again = TaggerHead.from_bytes(head.to_json().encode())
    assert again.tags == head.tags and np.array_equal(again.weight, head.weight) and np.array_equal(again.bias, head.bias)


@pytest.mark.parametrize("data, message", [
    (changed("extra", 1), "unknown field"),
    (changed("bias", KeyError), "missing field"),
    (changed("version", TAGGER_VERSION + 1), "newer than this edgeslm reads"),
    (changed("version", True), "version must be a positive integer"),
    (changed("window", 9), "window must be an integer"),
    (changed("hidden_size", 0), "hidden_size must be"),
    (changed("tags", ["B-name", "O"]), "starting with 'O'"),
    (changed("tags", ["O", "B-room"] + TAGS[2:]), "is not B-<kind> or I-<kind>"),
    (changed("tags", ["O", "B-name", "B-name"] + TAGS[3:]), "tags repeat"),
    (changed("weight", GOOD["weight"][:-1]), r"weight must be a list of 12"),
    (changed("weight", [*GOOD["weight"][:-1], [0.0] * 6]), r"weight\[11\] must be a list of 7"),
    (changed("weight", [*GOOD["weight"][:-1], [0.0] * 6 + ["1"]]), r"weight\[11\]\[6\] must be a finite number"),
    (changed("bias", [float("nan")] * 7), r"bias\[0\] must be a finite number"),
    (changed("bias", [0.0] * 6), "bias must be a list of 7"),
    ([], "must be a JSON object"),
])
def test_malformed_taggers_are_refused(data, message):
    with pytest.raises(BundleError, match=message):
        TaggerHead.from_dict(data)


def test_bytes_that_are_not_a_tagger_are_refused():
    with pytest.raises(BundleError, match="not valid UTF-8 JSON"):
        TaggerHead.from_bytes(b"\xff{")
    with pytest.raises(BundleError, match="NaN|finite"):  # json.loads takes NaN; the schema must not
        TaggerHead.from_bytes(json.dumps(changed("bias", [float("nan")] * 7)).encode())
    with pytest.raises(BundleError, match="larger than"):
        TaggerHead.from_bytes(b" " * (17 << 20))


def test_a_bundle_carries_its_tagger_hashed_and_one_without_has_none(write_early_exit, tmp_path):
    out = write_early_exit(tmp_path / "ee", {TAGGER_FILE: json.dumps(GOOD)})
    bundle = open_bundle(out)
    assert TAGGER_FILE in bundle.manifest.files
    assert read_tagger(bundle).tags == tuple(TAGS)
    assert read_tagger(open_bundle(write_early_exit(tmp_path / "bare", {}))) is None


def test_a_tampered_tagger_is_refused_before_it_is_read(write_early_exit, tmp_path):
    out = write_early_exit(tmp_path / "ee", {TAGGER_FILE: json.dumps(GOOD)})
    data = json.loads((out / TAGGER_FILE).read_text())
    data["bias"][1] = 50.0  # same length on disk would still change the sha256
    (out / TAGGER_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=TAGGER_FILE):
        open_bundle(out)


def test_a_listed_but_malformed_tagger_is_refused_at_read(write_early_exit, tmp_path):
    out = write_early_exit(tmp_path / "ee", {TAGGER_FILE: json.dumps(changed("weight", GOOD["weight"][:3]))})
    with pytest.raises(BundleError, match="weight must be a list of 12"):
        read_tagger(open_bundle(out))
