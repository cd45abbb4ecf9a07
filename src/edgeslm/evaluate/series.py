"""Evaluate a time-series classifier bundle on labelled series, torch-free: accuracy, macro-F1 and
batch-1 latency, as `edgeslm eval` does for text."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from edgeslm.data.series import read_series_rows
from edgeslm.errors import DataError
from edgeslm.evaluate.metrics import classification_metrics, latency_summary
from edgeslm.runtime.engines.series import SeriesClassifier


def evaluate_series_classifier(clf: SeriesClassifier, x: np.ndarray, truth: list[str], timed: bool = True,
                               progress: bool = False, warmup: int = 10) -> dict[str, Any]:
    """x float32 [n, length, channels]. Timed: one series a call, as a device sees them (warm first);
    untimed: batches of 256."""
    x = clf.check(x)
    predicted: list[str] = []
    seconds: list[float] = []
    if timed:
        for row in x[:warmup]:
            clf.probabilities(row[None])
        for row in tqdm(x, desc="eval", unit="series", disable=not progress):
            start = time.perf_counter()
            p = clf.probabilities(row[None])
            seconds.append(time.perf_counter() - start)
            predicted.append(clf.labels[int(p[0].argmax())])
    else:
        for i in range(0, len(x), 256):
            predicted += [clf.labels[int(k)] for k in clf.probabilities(x[i:i + 256]).argmax(-1)]
    metrics = classification_metrics(truth, predicted, clf.labels)
    if timed:
        metrics["latency"] = {"batch": 1, **latency_summary(seconds)}
    return metrics


def evaluate_series_bundle(bundle: Any, data: Path, threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """`bundle`: an opened (verified) series bundle; `data`: JSONL rows {"series": [...], "label": ...}."""
    x, truth = read_series_rows(data, labels=bundle.manifest.labels)
    clf = SeriesClassifier.from_bundle(bundle, threads=threads)
    try:
        clf.check(x)
    except ValueError as exc:
        raise DataError(f"{data}: {exc}") from None
    metrics = evaluate_series_classifier(clf, x, truth, timed=True, progress=progress)
    return {"bundle": str(bundle.path), "name": bundle.manifest.name, "data": str(data), **metrics,
            "threads": clf.session.get_session_options().intra_op_num_threads}
