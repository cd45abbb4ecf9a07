"""The manifest schema alone (no model needed)."""

import copy

import pytest

from edgeslm.bundle.manifest import FORMAT_VERSION, Manifest
from edgeslm.errors import BundleError

SHA = "0" * 64
GOOD = {
    "format": "edgeslm-bundle", "format_version": FORMAT_VERSION, "name": "x", "family": "encoder",
    "architecture": "bert", "task": "text-classification", "engine": "onnxruntime", "model_file": "model.onnx",
    "files": {"model.onnx": {"sha256": SHA, "bytes": 1}, "tokenizer.json": {"sha256": SHA, "bytes": 1}},
    "labels": ["a", "b"], "tokenizer": {"file": "tokenizer.json", "max_length": 48, "inputs": ["input_ids"]},
}


def with_(**changes):
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return data


def test_round_trip():
    m = Manifest.from_dict(GOOD)
    assert Manifest.from_dict(m.to_dict()) == m


@pytest.mark.parametrize("data, message", [
    (with_(format_version=FORMAT_VERSION + 1), "newer than this edgeslm reads"),
    (with_(format_version="1"), "must be an integer"),
    (with_(format="something-else"), "not an edgeslm bundle"),
    (with_(signature="abc"), "unknown field.*signature"),
    (with_(family="vision"), "family must be"),
    (with_(engine="llama.cpp"), "runs on onnxruntime"),
    (with_(model_file="other.onnx"), "not listed in files"),
    (with_(labels=["a"]), "at least two"),
    (with_(labels=["a", "a"]), "repeat"),
    (with_(files={"../../etc/passwd": {"sha256": SHA, "bytes": 1}}), "plain relative path"),
    (with_(files={"model.onnx": {"sha256": "abc", "bytes": 1}}), "sha256 hex"),
    (with_(files={"model.onnx": {"sha256": SHA, "bytes": -1}}), "non-negative"),
    (with_(files={"model.onnx": {"sha256": SHA, "bytes": 1, "extra": 1}}), "exactly sha256 and bytes"),
    (with_(tokenizer={"file": "tokenizer.json", "max_length": 4}), "max_length"),
    (with_(name=3), "name must be a str"),
    ({k: v for k, v in GOOD.items() if k != "files"}, "missing field.*files"),
    ([1, 2], "JSON object"),
])
def test_refused_with_a_clear_message(data, message):
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(data)
