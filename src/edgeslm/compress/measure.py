"""Side-by-side measurements of model variants in one process: latency (interleaved, so drift in
machine load hits every variant alike), file size, parameters and sparsity."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeslm.evaluate.metrics import latency_summary
from edgeslm.runtime.engines.onnx import OnnxClassifier


def interleaved_latency(variants: dict[str, OnnxClassifier], texts: list[str], batch: int, rounds: int,
                        block: int = 10) -> dict[str, dict[str, float]]:
    """Median and p90 ms per predict() call on `batch` texts. Variants take turns in blocks of
    `block` calls, so slow drift in machine load hits all alike; the first call of each block is
    dropped (cold caches after a switch). Callers pass sessions with spinning off: with ONNX
    Runtime's default spinning, one session's idle workers slowed the next session's calls by up to
    2x on this 2-core machine, and by different amounts per model, which made ratios meaningless."""
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    per_variant = max(1, rounds // block)
    cursor = 0
    for r in range(per_variant):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            clf = variants[name]
            for i in range(block + 1):
                start = (cursor + i * batch) % max(1, len(texts) - batch + 1)
                chunk = texts[start : start + batch]
                t0 = time.perf_counter()
                clf.predict(chunk)
                if i:
                    times[name].append(time.perf_counter() - t0)
        cursor += (block + 1) * batch
    summaries = {n: latency_summary(t) for n, t in times.items()}
    return {n: {"p50_ms": s["p50_ms"], "p90_ms": s["p90_ms"], "calls": len(times[n]), "batch": batch}
            for n, s in summaries.items()}


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
