"""The exit plan schema (formats/early_exit.py) and what the manifest's version 2 adds, without a model."""

import copy
import json

import pytest

from edgeslm.errors import BundleError
from edgeslm.formats.early_exit import PLAN_VERSION, ExitPlan, read_exit_plan
from edgeslm.formats.manifest import EARLY_EXIT_ENGINE, Manifest
from edgeslm.formats.reader import open_bundle
from edgeslm.formats.writer import BundleWriter

GOOD = {"version": 1, "hidden_size": 384,
        "segments": [{"file": "segment-1.onnx", "layers": 2, "threshold": 0.9},
                     {"file": "segment-2.onnx", "layers": 4, "threshold": None},
                     {"file": "segment-3.onnx", "layers": 6}]}
SHA = "0" * 64


def changed(path, value):
    data = copy.deepcopy(GOOD)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def test_round_trip():
    plan = ExitPlan.from_dict(GOOD)
    assert ExitPlan.from_dict(plan.to_dict()) == plan
    assert ExitPlan.from_bytes(plan.to_json().encode()) == plan
    assert [s.threshold for s in plan.exits] == [0.9, None]
    assert plan.segments[-1].threshold is None


@pytest.mark.parametrize("data, message", [
    (changed(["version"], PLAN_VERSION + 1), "newer than this edgeslm reads"),
    (changed(["version"], True), "version must be"),
    (changed(["extra"], 1), "unknown field.*extra"),
    (changed(["hidden_size"], 0), "hidden_size"),
    (changed(["segments"], GOOD["segments"][:1]), "2 to 64 segments"),
    (changed(["segments", 0, "threshold"], 1.5), r"threshold must be a softmax probability in \(0, 1\]"),
    (changed(["segments", 0, "threshold"], 0), "threshold must be"),
    (changed(["segments", 0, "threshold"], "0.9"), "threshold must be"),
    (changed(["segments", 0, "threshold"], KeyError), "missing field.*threshold"),
    (changed(["segments", 2, "threshold"], 0.5), "last segment always answers"),
    (changed(["segments", 1, "layers"], 2), "must be more than"),
    (changed(["segments", 1, "layers"], 2.5), "layers must be a positive integer"),
    (changed(["segments", 1, "file"], "segment-1.onnx"), "repeat a file"),
    (changed(["segments", 1, "file"], ""), "file must be"),
    (changed(["segments", 1], "segment-2.onnx"), "must be an object"),
    ([1], "JSON object"),
])
def test_refused_with_a_clear_message(data, message):
    with pytest.raises(BundleError, match=message):
        ExitPlan.from_dict(data)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{not json", b"[" * 100_000, b" " * (1 << 17)])
def test_hostile_bytes_are_bundle_errors(raw):
    with pytest.raises(BundleError):
        ExitPlan.from_bytes(raw)


def manifest(**changes):
    data = {"format": "edgeslm-bundle", "format_version": 2, "name": "x", "family": "encoder", "architecture": "bert",
            "task": "text-classification", "engine": EARLY_EXIT_ENGINE, "model_file": "early-exit.json",
            "files": {"early-exit.json": {"sha256": SHA, "bytes": 1}, "tokenizer.json": {"sha256": SHA, "bytes": 1}},
            "labels": ["a", "b"], "tokenizer": {"file": "tokenizer.json", "max_length": 48,
                                                "inputs": ["input_ids", "attention_mask"]}}
    data.update(changes)
    return data


def test_the_early_exit_engine_needs_format_version_2():
    assert Manifest.from_dict(manifest()).engine == EARLY_EXIT_ENGINE
    with pytest.raises(BundleError, match="needs bundle format version 2, this manifest says 1"):
        Manifest.from_dict(manifest(format_version=1))
    with pytest.raises(BundleError, match="runs on llama.cpp"):
        Manifest.from_dict(manifest(family="decoder", task="text-generation"))


def test_writer_stamps_the_lowest_version_a_bundle_needs(tiny_bundle, tmp_path):
    # an older edgeslm (format 1) keeps reading every bundle that needs nothing newer
    assert json.loads((tiny_bundle / "manifest.json").read_text())["format_version"] == 1
    out = tmp_path / "ee"
    with BundleWriter(out) as w:
        w.add(tiny_bundle / "tokenizer.json", "tokenizer.json")
        for i in (1, 2, 3):
            w.add(tiny_bundle / "model.onnx", f"segment-{i}.onnx")
        w.path("early-exit.json").write_text(json.dumps(GOOD))
        w.finish(name="ee", family="encoder", architecture="bert", task="text-classification", engine=EARLY_EXIT_ENGINE,
                 model_file="early-exit.json", labels=["a", "b"],
                 tokenizer={"file": "tokenizer.json", "max_length": 16, "inputs": ["input_ids", "attention_mask"]})
    bundle = open_bundle(out)
    assert bundle.manifest.format_version == 2
    assert read_exit_plan(bundle) == ExitPlan.from_dict(GOOD)


def test_a_plan_naming_an_unlisted_file_is_refused(tiny_bundle, tmp_path):
    out = tmp_path / "ee"
    plan = changed(["segments", 2, "file"], "elsewhere.onnx")
    with BundleWriter(out) as w:
        w.add(tiny_bundle / "tokenizer.json", "tokenizer.json")
        for i in (1, 2):
            w.add(tiny_bundle / "model.onnx", f"segment-{i}.onnx")
        w.path("early-exit.json").write_text(json.dumps(plan))
        w.finish(name="ee", family="encoder", architecture="bert", task="text-classification", engine=EARLY_EXIT_ENGINE,
                 model_file="early-exit.json", labels=["a", "b"], tokenizer={"file": "tokenizer.json", "max_length": 16})
    with pytest.raises(BundleError, match="'elsewhere.onnx' is not one of the model files"):
        read_exit_plan(open_bundle(out))
    with pytest.raises(BundleError, match="a bundle for onnxruntime, not onnxruntime-early-exit"):
        read_exit_plan(open_bundle(tiny_bundle))
