"""The manifest's time-series task (format version 4): its own engine, no tokenizer, and only bundles that
need it are stamped 4, so older devices keep reading the rest."""

import copy

import pytest

from edgeslm.errors import BundleError
from edgeslm.formats.manifest import SERIES_ENGINE, SERIES_TASK, Manifest, required_version

SHA = "0" * 64
BASE = {
    "format": "edgeslm-bundle", "format_version": 4, "name": "forda-int8", "family": "encoder",
    "architecture": "ts-transformer", "task": SERIES_TASK, "engine": SERIES_ENGINE, "model_file": "model.onnx",
    "files": {"model.onnx": {"sha256": SHA, "bytes": 1}}, "labels": ["-1", "1"],
}


def with_(**changes):
    return {**copy.deepcopy(BASE), **changes}


def test_series_manifest_round_trips():
    m = Manifest.from_dict(with_())
    assert Manifest.from_dict(m.to_dict()) == m and m.tokenizer == {}
    assert required_version(SERIES_ENGINE) == 4 and required_version("onnxruntime") == 1


@pytest.mark.parametrize(("data", "message"), [
    (with_(format_version=3), "needs bundle format version 4"),
    (with_(engine="onnxruntime"), "runs on engine onnxruntime-series and nothing else"),
    (with_(task="text-classification", tokenizer={"file": "model.onnx", "max_length": 48}), "nothing else does"),
    (with_(labels=["only"]), "at least two"),
    (with_(tokenizer={"file": "model.onnx", "max_length": 48}), "has no tokenizer"),
    (with_(family="decoder"), "a decoder bundle runs on llama.cpp"),
])
def test_series_manifest_refusals(data, message):
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(data)
