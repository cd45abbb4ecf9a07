"""int8 for series runs: ONNX Runtime's dynamic quantization under the accuracy guard, a signed bundle."""

from __future__ import annotations

import pytest

from edgeslm.compress.guard import GuardError
from edgeslm.compress.recipe import load_recipe, with_bar
from edgeslm.compress.series import compress_series
from edgeslm.data.series import read_series_rows
from edgeslm.errors import ConfigError
from edgeslm.export.series import export_series
from edgeslm.formats.reader import open_bundle
from edgeslm.formats.signing import generate_keys, sign_bundle, verify_bundle
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.train.run import RunFolder


def test_int8_bundle_is_small_agrees_with_fp32_and_keeps_accuracy(series_run, series_bundle, tmp_path):
    m = open_bundle(series_bundle).manifest
    report = m.provenance["compression"]
    assert m.format_version == 4 and m.task == "series-classification" and m.model_file == "model.onnx"
    assert m.files["model.onnx"].bytes <= 1_000_000 and report["bytes"] < report["fp32"]["bytes"]
    assert report["quantization"]["scheme"] == "int8-dynamic" and report["attempts"]
    export_series(series_run, tmp_path / "fp32")
    x, truth = read_series_rows(RunFolder(series_run).split("test"))
    int8 = SeriesClassifier.from_bundle(open_bundle(series_bundle), threads=1)
    fp32 = SeriesClassifier.from_bundle(open_bundle(tmp_path / "fp32"), threads=1)
    p8, p32 = int8.probabilities(x), fp32.probabilities(x)
    assert (p8.argmax(-1) == p32.argmax(-1)).mean() >= 0.97  # parity on 4,500 real test series
    assert abs(p8 - p32).max() < 0.5
    acc8 = (p8.argmax(-1) == [int8.labels.index(t) for t in truth]).mean()
    assert acc8 == pytest.approx(m.evaluation["test"]["accuracy"], abs=1e-4)
    assert acc8 >= report["fp32"]["test_accuracy"] - 0.02


def test_series_bundle_signs_and_verifies(series_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(series_bundle, copy)
    keys = generate_keys(tmp_path / "keys")
    sign_bundle(copy, keys.private)
    verify_bundle(copy, keys.public)


def test_guard_refuses_a_quantization_that_loses_accuracy_and_writes_nothing(series_run, tmp_path, monkeypatch):
    """Every attempt (and repair) yields an untrained graph of the same shape: the guard must refuse it."""
    import shutil

    from edgeslm.compress import series as compress_module
    from edgeslm.export.series import export_series_onnx
    from edgeslm.models.ts_transformer import TsTransformer
    from edgeslm.train.series import load_series_model

    model, _ = load_series_model(series_run)
    untrained = tmp_path / "untrained.onnx"
    export_series_onnx(TsTransformer(model.shape).eval(), untrained)
    calls = []

    def broken_quantize(src, dst, config, calibration=None, keep_fp32=None):
        calls.append((config.per_channel, list(keep_fp32 or [])))
        shutil.copyfile(untrained, dst)
        return {"scheme": config.scheme, "file": dst.name}

    monkeypatch.setattr(compress_module, "quantize", broken_quantize)
    with pytest.raises(GuardError, match="no bundle written"):
        compress_series(series_run, with_bar(load_recipe("int8-dynamic"), floor=0.99), tmp_path / "x", latency_rounds=10)
    assert not (tmp_path / "x").exists()
    assert calls[0] == (False, []) and calls[1] == (True, []) and len(calls) >= 3  # the repairs ran, cheapest first


def test_only_int8_dynamic_applies(series_run, tmp_path):
    with pytest.raises(ConfigError, match="int8-dynamic"):
        compress_series(series_run, load_recipe("int4-weight"), tmp_path / "x")


def test_a_run_with_a_rocket_compresses_its_transformers_and_keeps_the_feature_path_exact(tmp_path):
    """int8 touches the transformers' matrix products only: the random-convolution features' convolutions and
    thresholds stay fp32 (a proportion over a threshold moved by rounding would be another feature), and so
    does their ridge head (a few thousand weights, microseconds). MultiRocket's options (the first difference, MPV
    and MIPV) add only fp32 elementwise work and sums."""
    import onnx

    from edgeslm.train.series import SeriesTrainConfig, train_series

    run = tmp_path / "run"
    train_series(SeriesTrainConfig(data="ecg5000", limit_train=150, max_steps=20, batch_size=32, patch=8, stride=8,
                                   stem=8, d_model=32, heads=2, layers=1, ff=64, threads=2, rocket=1500,
                                   rocket_diff=True, rocket_pooling="ppv+mpv+mipv"), run)
    out = tmp_path / "int8"
    compress_series(run, with_bar(load_recipe("int8-dynamic"), floor=0.9), out, latency_rounds=10)
    graph = onnx.load(str(out / "model.onnx")).graph
    ops = [n.op_type for n in graph.node]
    integer = [n.name for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert any(name.startswith("/members.0/") for name in integer) and not any("rocket" in name for name in integer)
    # 15 dilations at length 140, over the series and its first difference
    assert "ConvInteger" not in ops and ops.count("Conv") >= 30 and "Greater" in ops and "ReduceSum" in ops
    m = open_bundle(out).manifest
    assert m.provenance["shape"]["rocket"] == 1500 and m.files["model.onnx"].bytes <= 1_000_000
    report = m.provenance["compression"]
    assert "/rocket/head/Gemm" in report["attempts"][0]["fp32_by_design"]
    assert abs(m.evaluation["test"]["accuracy"] - report["fp32"]["test_accuracy"]) <= 0.01
