"""Side-by-side measurements of model variants in one process: latency (interleaved, so drift in
machine load hits every variant alike), file size, parameters and sparsity."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.runtime.classifier import OnnxClassifier


def interleaved_latency(variants: dict[str, OnnxClassifier], texts: list[str], batch: int, rounds: int,
                        warmup: int = 5) -> dict[str, dict[str, float]]:
    """Median and p90 ms per call of predict() on `batch` texts, variants taking turns each round."""
    names = list(variants)
    for name in names:
        for i in range(warmup):
            variants[name].predict(texts[i * batch % len(texts):][:batch] or texts[:batch])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        start = (r * batch) % max(1, len(texts) - batch + 1)
        chunk = texts[start : start + batch]
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            variants[name].predict(chunk)
            times[name].append(time.perf_counter() - t0)
    return {n: {"p50_ms": round(float(np.median(t)) * 1000, 3), "p90_ms": round(float(np.percentile(t, 90)) * 1000, 3),
                "calls": len(t), "batch": batch} for n, t in times.items()}


def parameters(model: Any) -> dict[str, Any]:
    """Parameter count and share of exact zeros in the torch model's weight matrices."""
    total = sum(p.numel() for p in model.parameters())
    matrices = [p for p in model.parameters() if p.dim() == 2]
    zeros = sum(int((p == 0).sum()) for p in matrices)
    elements = sum(p.numel() for p in matrices)
    return {"params": int(total), "nonzero_params": int(total - zeros),
            "sparsity": round(zeros / elements, 4) if elements else 0.0}


def file_bytes(path: Path) -> int:
    return Path(path).stat().st_size
