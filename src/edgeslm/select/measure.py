"""Compress one candidate under the accuracy guard, and measure a compressed model on a profile:
batch-1 latency (p50, p90) at a thread count, the resident memory it adds (in a fresh process, as a
device loads it) and CPU time for joules per answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.energy import CpuMeter

MEASURE_VERSION = 1  # bump when how latency or memory is measured changes: cached measurements go stale

# a child process's memory in bytes from its own /proc/self/status (VmRSS now, VmHWM its peak): the line
# every probe script starts with these lines
PROC_STATUS = r"""
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
"""

_RSS_PROBE = PROC_STATUS + r"""
import json, sys
a = json.loads(sys.argv[1])
import numpy, onnxruntime, tokenizers  # the libraries' own memory is the device's baseline, not the model's
from edgeslm.runtime.engines.onnx import OnnxClassifier
base = status('VmRSS')
clf = OnnxClassifier(a['model'], a['tokenizer'], a['labels'], a['max_length'], a['inputs'], threads=a['threads'], spin=False)
for t in a['texts']:
    clf.predict([t])
print(json.dumps({'peak_bytes': status('VmHWM') - base, 'rss_bytes': status('VmRSS') - base}))
"""


def compress_artefact(ctx: Any, recipe: Any) -> tuple[dict[str, Any], Path | None]:
    """Run the recipe under its guard in an open CompressContext; the record (accuracy on val and test,
    the guard's attempts, size, parameters) and the model file, or a refused record and None."""
    from edgeslm.compress import measure
    from edgeslm.compress.guard import Bar, GuardError
    from edgeslm.compress.pipeline import guarded_variant
    from edgeslm.evaluate.runner import evaluate_classifier

    t0 = time.perf_counter()
    bar = Bar("validation accuracy", recipe.floor * ctx.fp32_val, True, f"{recipe.floor:.2%} of fp32 {ctx.fp32_val:.4f}")
    try:
        variant = guarded_variant(ctx, recipe, ctx.train, bar)
    except GuardError as exc:
        return {"status": "refused", "reason": str(exc), "recipe": recipe.to_dict(),
                "compress_s": round(time.perf_counter() - t0, 2)}, None
    test = evaluate_classifier(ctx.classifier(variant.path), ctx.test, timed=False)
    record = {
        "status": "ok", "recipe": recipe.to_dict(),
        "val": {k: variant.val[k] for k in ("accuracy", "macro_f1", "n")},
        "test": {k: test[k] for k in ("accuracy", "macro_f1", "n")},
        "attempts": variant.attempts, "quantization": variant.quantization, "export_check": variant.export_check,
        "bytes": measure.file_bytes(variant.path), **measure.parameters(variant.student),
        "compress_s": round(time.perf_counter() - t0, 2),
    }
    return record, Path(variant.path)


def measure_model(model: Path, tokenizer: Path, labels: list[str], max_length: int, inputs: list[str], threads: int,
                  texts: list[str], calls: int = 300) -> dict[str, Any]:
    """Batch-1 latency over `calls` requests cycling through `texts` (spinning off, as compress measures),
    with the process CPU time they took; then the memory the model adds, in a fresh process."""
    from edgeslm.evaluate.metrics import latency_summary
    from edgeslm.runtime.engines.onnx import OnnxClassifier

    t0 = time.perf_counter()
    clf = OnnxClassifier(model, tokenizer, labels, max_length, inputs, threads=threads, spin=False)
    for t in texts[:20]:
        clf.predict([t])
    times, meter = [], CpuMeter()
    for i in range(calls):
        text = texts[i % len(texts)]
        with meter:
            s = time.perf_counter()
            clf.predict([text])
            times.append(time.perf_counter() - s)
    lat = latency_summary(times)
    clf.close()
    args = {"model": str(model), "tokenizer": str(tokenizer), "labels": labels, "max_length": max_length,
            "inputs": inputs, "threads": threads, "texts": texts[:32]}
    probe = subprocess.run([sys.executable, "-c", _RSS_PROBE, json.dumps(args)], capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        raise EdgeslmError(f"measuring the memory of {model} failed: {probe.stderr.strip().splitlines()[-1:]}")
    rss = json.loads(probe.stdout.strip().splitlines()[-1])
    return {"p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"], "ram_mb": rss["peak_bytes"] / 2**20,
            "cpu_s_per_call": meter.cpu_seconds / calls, "wall_s_per_call": meter.wall_seconds / calls,
            "calls": calls, "measure_s": round(time.perf_counter() - t0, 2)}
