"""Evaluate a classifier bundle on labelled data, torch-free: accuracy, macro-F1, latency (series bundles: evaluate/series.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from edgeslm.data.records import Example, read_examples
from edgeslm.evaluate.metrics import classification_metrics, latency_summary
from edgeslm.formats.manifest import SERIES_TASK
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.onnx import MAX_REQUEST_CHARS, OnnxClassifier


def evaluate_classifier(clf: OnnxClassifier, rows: list[Example], timed: bool = True,
                        progress: bool = False) -> dict[str, Any]:
    """Batch-1 requests, one at a time, as a device would see them; each timed end to end
    (tokenization included). Untimed runs batch 64 for speed."""
    predicted: list[str] = []
    seconds: list[float] = []
    # A data file may hold texts past the engine's request limit (a guard on requests, not on data). The
    # model reads only a text's first max_length tokens: for the trainer's 48-256 token windows those lie
    # inside the first 2000 characters, so cutting there scores what the device would.
    texts = [ex.text[:MAX_REQUEST_CHARS] for ex in rows]
    if timed:
        for text in tqdm(texts, desc="eval", unit="req", disable=not progress):
            start = time.perf_counter()
            predicted.append(clf.predict([text])[0]["label"])
            seconds.append(time.perf_counter() - start)
    else:
        for i in range(0, len(texts), 64):
            predicted += [p["label"] for p in clf.predict(texts[i : i + 64])]
    metrics = classification_metrics([ex.label for ex in rows], predicted, clf.labels)
    if timed:
        metrics["latency"] = {"batch": 1, **latency_summary(seconds)}
    return metrics


def evaluate_bundle(bundle_path: Path, data: Path, threads: int | None = None, progress: bool = False,
                    warmup: int = 10) -> dict[str, Any]:
    bundle = open_bundle(bundle_path)
    if bundle.manifest.task == SERIES_TASK:  # rows {"series": [...], "label": ...}
        from edgeslm.evaluate.series import evaluate_series_bundle

        return evaluate_series_bundle(bundle, data, threads=threads, progress=progress)
    rows = read_examples(data, labels=bundle.manifest.labels)
    clf = OnnxClassifier.from_bundle(bundle, threads=threads)
    for ex in rows[:warmup]:  # first calls allocate; a device serves warm
        clf.predict([ex.text[:MAX_REQUEST_CHARS]])
    metrics = evaluate_classifier(clf, rows, timed=True, progress=progress)
    return {"bundle": str(bundle_path), "name": bundle.manifest.name, "data": str(data), **metrics,
            "threads": clf.session.get_session_options().intra_op_num_threads}
