"""Evaluate a classifier bundle on labelled data, torch-free: accuracy, macro-F1, latency."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from edgeslm.bundle.reader import open_bundle
from edgeslm.data.records import Example, read_examples
from edgeslm.evaluate.metrics import classification_metrics, latency_summary
from edgeslm.runtime.engines.onnx import OnnxClassifier


def evaluate_classifier(clf: OnnxClassifier, rows: list[Example], timed: bool = True,
                        progress: bool = False) -> dict[str, Any]:
    """Batch-1 requests, one at a time, as a device would see them; each timed end to end
    (tokenization included). Untimed runs batch 64 for speed."""
    predicted: list[str] = []
    seconds: list[float] = []
    if timed:
        for ex in tqdm(rows, desc="eval", unit="req", disable=not progress):
            start = time.perf_counter()
            predicted.append(clf.predict([ex.text])[0]["label"])
            seconds.append(time.perf_counter() - start)
    else:
        for i in range(0, len(rows), 64):
            predicted += [p["label"] for p in clf.predict([ex.text for ex in rows[i : i + 64]])]
    metrics = classification_metrics([ex.label for ex in rows], predicted, clf.labels)
    if timed:
        metrics["latency"] = {"batch": 1, **latency_summary(seconds)}
    return metrics


def evaluate_bundle(bundle_path: Path, data: Path, threads: int | None = None, progress: bool = False,
                    warmup: int = 10) -> dict[str, Any]:
    bundle = open_bundle(bundle_path)
    rows = read_examples(data, labels=bundle.manifest.labels)
    clf = OnnxClassifier.from_bundle(bundle, threads=threads)
    for ex in rows[:warmup]:  # first calls allocate; a device serves warm
        clf.predict([ex.text])
    metrics = evaluate_classifier(clf, rows, timed=True, progress=progress)
    return {"bundle": str(bundle_path), "name": bundle.manifest.name, "data": str(data), **metrics,
            "threads": clf.session.get_session_options().intra_op_num_threads}
