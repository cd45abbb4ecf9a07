"""The series run's fp32 ONNX bundle: checked against PyTorch, scored through the device engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeslm.data.series import read_series_rows
from edgeslm.errors import BundleError
from edgeslm.export.series import compare_series, export_series, export_series_onnx, verify_series_export
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.train.run import RunFolder
from edgeslm.train.series import load_series_model


def test_fp32_bundle_matches_pytorch_and_the_run(series_run, tmp_path):
    manifest = export_series(series_run, tmp_path / "fp32")
    assert manifest["task"] == "series-classification" and manifest["engine"] == "onnxruntime-series"
    assert manifest["format_version"] == 4 and manifest["tokenizer"] == {}
    check = manifest["provenance"]["export_check"]
    assert check["max_abs_diff"] < 1e-3 and check["argmax_agree"] == 1.0
    record = json.loads(RunFolder(series_run).record_file.read_text())
    # the device engine scores the official test split as PyTorch did at the end of training
    assert manifest["evaluation"]["test"]["accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"], abs=0.002)
    bundle = open_bundle(tmp_path / "fp32")
    clf = SeriesClassifier.from_bundle(bundle, threads=1)
    assert (clf.length, clf.channels) == (140, 1)


def test_a_broken_export_is_refused(series_run, tmp_path):
    model, record = load_series_model(series_run)
    path = tmp_path / "m.onnx"
    export_series_onnx(model, path)
    x, _ = read_series_rows(RunFolder(series_run).split("val"))
    with __import__("torch").no_grad():
        model.head.bias.add_(5.0 * __import__("torch").arange(5.0))  # the torch model moves, the graph does not
    check = compare_series(model, path, x, record["labels"])
    assert check["max_abs_diff"] > 1e-3
    with pytest.raises(BundleError, match="disagrees with PyTorch"):
        verify_series_export(check)
    assert np.isfinite(check["max_abs_diff"])


def test_threshold_features_get_their_own_tolerance_but_not_a_different_answer():
    """A graph with random-convolution features may differ from PyTorch by a flipped comparison (the
    tolerance it recorded); a different class on a series without a near tie is still refused."""
    ok = {"n": 256, "max_abs_diff": 0.008, "argmax_agree": 255 / 256, "argmax_agree_clear": 1.0, "tolerance": 0.02}
    assert verify_series_export(ok) is ok
    with pytest.raises(BundleError, match="disagrees"):
        verify_series_export({**ok, "argmax_agree_clear": 255 / 256})
    with pytest.raises(BundleError, match="disagrees"):
        verify_series_export({**ok, "max_abs_diff": 0.03})
    with pytest.raises(BundleError, match="disagrees"):  # a plain graph keeps 1e-3
        verify_series_export({**ok, "tolerance": 1e-3})
