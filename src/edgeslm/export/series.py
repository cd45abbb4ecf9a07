"""Build side: a time-series run (train/series.py) to an ONNX graph, checked against PyTorch, and to an
fp32 bundle for the `onnxruntime-series` engine. compress/series.py quantizes the same graph.

The graph takes `series` float32 [batch, length, channels] (batch dynamic; length and channels fixed, the
engine's input contract) and gives `logits` [batch, K]. The TorchScript exporter, opset 17, as for text.

The check: ORT's logits within TOLERANCE of PyTorch's and the same argmax. A graph with random-convolution
features (`rocket`) holds thresholds: where PyTorch's and ORT's convolutions round a value that sits on a
bias differently, one proportion moves by 1 / positions, so it gets THRESHOLD_TOLERANCE, and the argmax must
agree wherever PyTorch's top two logits are further apart than that (a near tie may go either way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.data.series import read_series_rows
from edgeslm.errors import BundleError
from edgeslm.evaluate.series import evaluate_series_classifier
from edgeslm.formats.manifest import SERIES_ENGINE, SERIES_TASK
from edgeslm.formats.writer import BundleWriter
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.train.run import RunFolder
from edgeslm.train.series import load_series_model, predict_logits

OPSET = 17
TOLERANCE = 1e-3  # max |logit difference| ORT fp32 vs PyTorch; argmax must agree on every checked series
THRESHOLD_TOLERANCE = 2e-2  # the same with random-convolution features: a few comparisons may flip
EXPORTER = f"torchscript-opset{OPSET}"


def export_series_onnx(model: Any, path: Path) -> None:
    import torch

    s = model.shape
    dummy = torch.zeros(2, s.length, s.channels)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model.eval(), (dummy,), str(path), dynamo=False, opset_version=OPSET, input_names=["series"],
                      output_names=["logits"], dynamic_axes={"series": {0: "batch"}, "logits": {0: "batch"}})


def compare_series(model: Any, onnx_path: Path, x: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """ORT (one thread) vs PyTorch logits on x [n, L, C]: max |difference| and argmax agreement."""
    clf = SeriesClassifier(onnx_path, labels, threads=1, spin=False)
    ours = np.concatenate([clf.logits(x[i:i + 256]) for i in range(0, len(x), 256)])
    ref = predict_logits(model, x)
    tolerance = THRESHOLD_TOLERANCE if model.shape.rocket else TOLERANCE
    top2 = np.sort(ref, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > tolerance  # no near tie: both must give the same class
    same = ours.argmax(-1) == ref.argmax(-1)
    return {"n": len(x), "max_abs_diff": float(np.abs(ours - ref).max()), "argmax_agree": float(same.mean()),
            "argmax_agree_clear": float(same[clear].mean()) if clear.any() else 1.0, "tolerance": tolerance}


def verify_series_export(check: dict[str, Any]) -> dict[str, Any]:
    tolerance = check.get("tolerance", TOLERANCE)
    if check["max_abs_diff"] > tolerance or check.get("argmax_agree_clear", check["argmax_agree"]) < 1.0:
        raise BundleError(f"the ONNX export disagrees with PyTorch: max |Δlogit| {check['max_abs_diff']:.2e} "
                          f"(tolerance {tolerance}), argmax agreement {check['argmax_agree']:.4f}")
    return check


def run_splits(run: Path, labels: list[str]) -> dict[str, tuple[np.ndarray, list[str]]]:
    folder = RunFolder(Path(run))
    return {name: read_series_rows(folder.split(name), labels=labels) for name in ("val", "test")}


def export_series(run: Path, out: Path, name: str | None = None, profile: str = "any") -> dict[str, Any]:
    """fp32 bundle: model.onnx + manifest, with the export check and val/test scores through the device engine."""
    model, record = load_series_model(run)
    labels = record["labels"]
    splits = run_splits(run, labels)
    with BundleWriter(out) as writer:
        onnx_path = writer.path("model.onnx")
        export_series_onnx(model, onnx_path)
        check = verify_series_export(compare_series(model, onnx_path, splits["val"][0][:256], labels))
        clf = SeriesClassifier(onnx_path, labels, threads=1, spin=False)
        evaluation = {split: _scores(clf, x, y) for split, (x, y) in splits.items()}
        manifest = writer.finish(
            name=name or Path(out).name, family="encoder", architecture="ts-transformer", task=SERIES_TASK,
            engine=SERIES_ENGINE, model_file="model.onnx", labels=labels, profile=profile,
            provenance=provenance(record, {"exporter": EXPORTER, **check}), evaluation=evaluation)
    return manifest.to_dict()


def provenance(record: dict[str, Any], export_check: dict[str, Any]) -> dict[str, Any]:
    return {"base_model": "ts-transformer (trained from scratch)", "dataset": record["dataset"],
            "train_config": record["config"], "shape": record["shape"], "params": record["params"],
            "series": record["series"], "export_check": export_check}


def _scores(clf: SeriesClassifier, x: np.ndarray, y: list[str]) -> dict[str, Any]:
    m = evaluate_series_classifier(clf, x, y, timed=False)
    return {k: m[k] for k in ("accuracy", "macro_f1", "n")}
