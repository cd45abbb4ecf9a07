"""The manifest's `selection` block (format version 3): strict, and only in bundles that carry it."""

import copy

import pytest

from edgeslm.errors import BundleError
from edgeslm.formats.manifest import Manifest, required_version

SHA = "0" * 64
BASE = {
    "format": "edgeslm-bundle", "format_version": 3, "name": "x", "family": "encoder",
    "architecture": "bert", "task": "text-classification", "engine": "onnxruntime", "model_file": "model.onnx",
    "files": {"model.onnx": {"sha256": SHA, "bytes": 1}, "tokenizer.json": {"sha256": SHA, "bytes": 1}},
    "labels": ["a", "b"], "tokenizer": {"file": "tokenizer.json", "max_length": 48, "inputs": ["input_ids"]},
}
SELECTION = {"budget": "p90_ms<=5", "profile": "this-machine", "candidate": "int8-dynamic@2t", "threads": 2,
             "predicted": {"p90_ms": 2.0, "ram_mb": 50.0, "joules": 0.01},
             "measured": {"p90_ms": 2.2, "ram_mb": 48.0, "joules": 0.012, "accuracy": 0.99}}


def with_selection(**changes):
    data = copy.deepcopy(BASE)
    data["selection"] = {**copy.deepcopy(SELECTION), **changes}
    return data


def test_selection_round_trips():
    m = Manifest.from_dict(with_selection())
    assert m.selection["threads"] == 2
    assert Manifest.from_dict(m.to_dict()) == m


def test_a_manifest_without_selection_omits_it_and_needs_no_new_version():
    data = copy.deepcopy(BASE)
    data["format_version"] = 1
    m = Manifest.from_dict(data)
    assert "selection" not in m.to_dict()  # an older device refuses unknown fields: never write an empty one
    assert required_version("onnxruntime", {"selection": {}}) == 1
    assert required_version("onnxruntime", {"selection": SELECTION}) == 3


@pytest.mark.parametrize("data, message", [
    ({**with_selection(), "format_version": 2}, "selection needs bundle format version 3"),
    (with_selection(extra=1), "unknown selection field"),
    (with_selection(threads=0), "threads must be an integer"),
    (with_selection(budget=""), "budget must be a non-empty string"),
    (with_selection(measured={"p90_ms": "fast"}), "measured.p90_ms must be a number"),
    (with_selection(predicted={"latency": 1.0}), "predicted.latency is not a metric"),
    (with_selection(predicted={}), "predicted must be a non-empty object"),
])
def test_bad_selection_is_refused(data, message):
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(data)


def test_missing_selection_fields_are_named():
    data = with_selection()
    del data["selection"]["measured"]
    with pytest.raises(BundleError, match="selection is missing measured"):
        Manifest.from_dict(data)
