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
