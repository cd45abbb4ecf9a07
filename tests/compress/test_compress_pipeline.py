"""compress on the real (briefly trained) MiniLM-L6 intent model."""

import json
import logging

import pytest
import yaml

from edgeslm.compress.pipeline import GuardError, compress
from edgeslm.compress.recipe import Recipe, load_recipe
from edgeslm.data.records import Example, write_jsonl
from edgeslm.errors import BundleError, ConfigError, DataError
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier

pytestmark = pytest.mark.model


def test_int8_dynamic_bundle_is_smaller_verified_and_reports_side_by_side(trained_run, tmp_path):
    root_level = logging.getLogger().level
    result = compress(trained_run, load_recipe("int8-dynamic"), tmp_path / "q", progress=False, latency_rounds=30)
    assert logging.getLogger().level == root_level  # ORT's quantizer is quietened for the call only
    r = result["report"]
    bundle = open_bundle(tmp_path / "q")
    assert set(bundle.manifest.files) == {"model.onnx", "tokenizer.json", "recipe.yaml"}
    assert yaml.safe_load((tmp_path / "q" / "recipe.yaml").read_text())["name"] == "int8-dynamic"
    assert r["size_ratio"] < 0.3
    assert r["val_accuracy_kept"] >= 0.99
    assert {"fp32", "ort-dynamic-int8", "int8-dynamic"} == set(r["latency"]["batch1"])
    assert r["latency"]["batch32"]["int8-dynamic"]["batch"] == 32
    clf = OnnxClassifier.from_bundle(bundle)
    assert clf.predict(["turn off the kitchen lights"])[0]["label"] in clf.labels


def test_demo_reuses_a_compressed_bundle_only_for_the_same_recipe(trained_run, tmp_path, monkeypatch):
    import edgeslm.compress.recipe as recipes
    from edgeslm.demo.run import _compressed_of

    compress(trained_run, load_recipe("int8-dynamic"), tmp_path / "q", progress=False, latency_rounds=10)
    assert _compressed_of(tmp_path / "q", trained_run, "int8-dynamic")
    assert not _compressed_of(tmp_path / "q", trained_run, "int8-static")
    changed = Recipe.from_dict({**load_recipe("int8-dynamic").to_dict(), "floor": 0.98})
    monkeypatch.setattr(recipes, "load_recipe", lambda name: changed)  # the built-in recipe was edited
    assert not _compressed_of(tmp_path / "q", trained_run, "int8-dynamic")


def test_int8_static_freezes_calibrated_scales_on_the_fused_graph(trained_run, tmp_path):
    import collections

    import onnx

    recipe = load_recipe("int8-static")  # the built-in floor (99% of fp32): the fixture is well trained
    # for an AVX2 device without VNNI: 7-bit weights, whatever this machine has
    target = tmp_path / "old-x86.yaml"
    target.write_text("name: old-x86\nmemory_budget_mb: 2048\ncores: 4\nthreads: 4\nisa: [avx2]\n"
                      "watts_idle: 8\nwatts_busy: 25\n", encoding="utf-8")
    result = compress(trained_run, recipe, tmp_path / "s", progress=False, latency_rounds=20, profile=target)
    r = result["report"]
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "s" / "model.onnx")).graph.node)
    assert ops["DynamicQuantizeLinear"] == 0  # no range scan left at run time
    assert ops["QAttention"] == 6 and ops["MatMulIntegerToFloat"] == 20  # 18 MatMul + pooler + classifier
    assert r["quantization"]["static_activations"] == ops["QuantizeLinear"] == 26
    assert r["quantization"]["reduce_range"] is True and r["target"] == {"profile": "old-x86", "isa": ["avx2"]}
    assert yaml.safe_load((tmp_path / "s" / "recipe.yaml").read_text())["modifiers"][0]["reduce_range"] == "auto"
    assert open_bundle(tmp_path / "s").manifest.profile == "old-x86"
    assert r["size_ratio"] < 0.26
    assert r["val_accuracy_kept"] >= 0.99


def test_guard_refuses_and_writes_nothing(trained_run, tmp_path):
    recipe = Recipe.from_dict({"name": "too-small", "floor": 1.0, "modifiers": [
        {"type": "distill-layers", "layers": [0], "steps": 1, "repair_steps": 0}]})
    with pytest.raises(GuardError, match=r"missed its floor.*short by"):
        compress(trained_run, recipe, tmp_path / "nope", progress=False)
    assert not (tmp_path / "nope").exists()


def test_quantize_repairs_reuse_one_student_export(trained_run, tmp_path, monkeypatch):
    import edgeslm.compress.pipeline as pipeline

    exports, said = [], []
    real_export = pipeline.export_onnx
    monkeypatch.setattr(pipeline, "export_onnx", lambda *a, **k: exports.append(1) or real_export(*a, **k))
    recipe = Recipe.from_dict({"name": "tiny", "floor": 1.0, "modifiers": [
        {"type": "distill-layers", "layers": [0], "steps": 1, "repair_steps": 0},
        {"type": "quantize", "scheme": "int8-dynamic", "repair_keep_fp32": 2}]})
    with pytest.raises(GuardError, match=r"after 3 attempt\(s\)"):
        compress(trained_run, recipe, tmp_path / "nope", progress=False, echo=said.append)
    assert [s for s in said if s.startswith("repair:")] == [
        "repair: per-channel weight scales", "repair: keeping the 2 most quantization-sensitive MatMuls in fp32"]
    assert len(exports) == 1  # per-tensor, per-channel and keep-2 all quantize the same student export


def test_student_export_that_disagrees_with_pytorch_is_refused(trained_run, tmp_path, monkeypatch):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    import edgeslm.compress.pipeline as pipeline

    real_export = pipeline.export_onnx

    def broken_export(*args, **kwargs):  # an exporter that writes a wrong weight into a valid graph
        names = real_export(*args, **kwargs)
        model = onnx.load(str(args[2]))
        big = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == 1 else 0)
        big.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(big) * 1.5, big.name))
        onnx.save(model, str(args[2]))
        return names

    monkeypatch.setattr(pipeline, "export_onnx", broken_export)
    recipe = Recipe.from_dict({"name": "tiny", "floor": 0.01, "modifiers": [
        {"type": "distill-layers", "layers": [0], "steps": 1, "repair_steps": 0}]})
    with pytest.raises(BundleError, match="export disagrees with PyTorch"):
        compress(trained_run, recipe, tmp_path / "nope", progress=False)
    assert not (tmp_path / "nope").exists()


def test_guard_retrains_a_student_that_missed_the_floor(trained_run, tmp_path):
    """The recipe's torch repair: a one-layer student after one distillation step is far below the
    floor; the guard distils it further before it quantizes or refuses anything."""
    said = []
    recipe = Recipe.from_dict({"name": "retrain", "floor": 0.99, "modifiers": [
        {"type": "distill-layers", "layers": [0], "steps": 1, "repair_steps": 60, "learning_rate": 5e-4}]})
    try:
        result = compress(trained_run, recipe, tmp_path / "r", progress=False, echo=said.append, latency_rounds=5)
    except GuardError as exc:
        result = None
        assert "after 2 attempt(s)" in str(exc)
    assert "repair: 60 more distillation steps" in said
    before, after = [float(s.rsplit(" ", 1)[1]) for s in said if s.startswith("student before quantization")]
    assert after > before + 0.2  # the repair really trained the student
    if result is not None:  # met the floor after the repair: the report says how it got there
        attempts = result["report"]["attempts"]
        assert attempts[0]["stage"] == "student" and attempts[0]["val_accuracy"] == pytest.approx(before, abs=1e-4)
        assert attempts[-1]["torch_repair"] is True


def test_calibration_with_unknown_labels_fails_fast(trained_run, tmp_path):
    calib = write_jsonl(tmp_path / "c.jsonl", [Example("brew coffee", "HassMakeCoffee")])
    with pytest.raises(DataError, match="unknown label 'HassMakeCoffee'"):
        compress(trained_run, load_recipe("int8-static"), tmp_path / "x", calibration=calib, progress=False)


def test_decoder_bundle_is_refused(tmp_path):
    from edgeslm.export.gguf import export_gguf

    export_gguf("smollm2-135m", tmp_path / "smol")
    with pytest.raises(ConfigError, match="decoder bundle"):
        compress(tmp_path / "smol", load_recipe("int8-dynamic"), tmp_path / "x", progress=False)


def test_xz_stored_model_loads_and_truncation_is_caught(trained_run, tmp_path):
    recipe = Recipe.from_dict({"name": "xz", "floor": 0.9, "modifiers": [
        {"type": "quantize", "scheme": "int8-dynamic", "quantize_embeddings": True, "compress_file": True}]})
    compress(trained_run, recipe, tmp_path / "xz", progress=False, latency_rounds=20)
    bundle = open_bundle(tmp_path / "xz")
    assert bundle.manifest.model_file == "model.onnx.xz"
    assert OnnxClassifier.from_bundle(bundle).predict(["what time is it"])[0]["label"]
    path = tmp_path / "xz" / "model.onnx.xz"
    path.write_bytes(path.read_bytes()[:1000])
    data = json.loads((tmp_path / "xz" / "manifest.json").read_text())
    from edgeslm.formats.hashing import sha256_file

    data["files"]["model.onnx.xz"] = {"sha256": sha256_file(path), "bytes": 1000}
    (tmp_path / "xz" / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="cannot load"):
        OnnxClassifier.from_bundle(open_bundle(tmp_path / "xz"))
