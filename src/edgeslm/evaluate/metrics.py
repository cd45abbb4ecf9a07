"""Classification and latency metrics: pure functions over lists, numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro-F1 over the labels present in `truth`, per-label F1 and the top confusions."""
    n = len(truth)
    if n == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "n": 0, "per_label": {}, "confusions": []}
    correct = sum(t == p for t, p in zip(truth, predicted, strict=True))
    per_label: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        if tp + fn == 0:
            continue  # label absent from this set: it cannot be scored, and should not drag macro-F1 to 0
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": tp + fn}
    confusions: dict[tuple[str, str], int] = {}
    for t, p in zip(truth, predicted, strict=True):
        if t != p:
            confusions[(t, p)] = confusions.get((t, p), 0) + 1
    top = sorted(confusions.items(), key=lambda kv: -kv[1])[:10]
    return {
        "accuracy": round(correct / n, 4),
        "macro_f1": round(float(np.mean([v["f1"] for v in per_label.values()])), 4),
        "n": n,
        "per_label": per_label,
        "confusions": [{"true": t, "predicted": p, "count": c} for (t, p), c in top],
    }


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Percentiles in milliseconds of per-request wall times."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return {}
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
    }
