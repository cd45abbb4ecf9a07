"""Measure a GGUF file as a device would run it: in a fresh process, llama.cpp at a thread count and the
serving context, a fixed smart-home prompt (bench's first) prefilled cold and `new_tokens` generated
greedily with end-of-text ignored, a few times; time to first token, tokens/s after the first, the
peak RSS the engine adds (the mmapped file, the KV cache, compute buffers) and CPU over wall time.
The same run calibrates the cost model on the source and measures every candidate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.select.measure import PROC_STATUS

MEASURE_VERSION = 1  # bump when how a decoder is measured changes: cached measurements go stale
N_CTX = 2048  # what `edgeslm serve` and bench give a decoder

_PROBE = PROC_STATUS + r"""
import json, statistics, sys, time
a = json.loads(sys.argv[1])
import numpy, llama_cpp, jinja2  # the libraries' own memory is the device's baseline, not the model's
from edgeslm.runtime.engines.llama import LlamaEngine, collect
base = status('VmRSS')
t0 = time.perf_counter()
eng = LlamaEngine(a['model'], threads=a['threads'], n_ctx=a['n_ctx'])
load_s = time.perf_counter() - t0
collect(eng.complete(a['prompt'], max_tokens=4, temperature=0, ignore_eos=True))  # page the weights in
ttft, tps, cpu, wall = [], [], 0.0, 0.0
for _ in range(a['requests']):
    eng.reset()  # a cold prefill every time
    c, w = time.process_time(), time.perf_counter()
    _, done = collect(eng.complete(a['prompt'], max_tokens=a['new_tokens'], temperature=0, ignore_eos=True))
    cpu += time.process_time() - c
    wall += time.perf_counter() - w
    ttft.append(done.time_to_first_token_s * 1e3)
    tps.append(done.decode_tokens_per_s)
print(json.dumps({'ttft_ms': statistics.median(ttft), 'tok_s': statistics.median(tps), 'ttft_all_ms': ttft,
                  'tok_s_all': tps, 'prompt_tokens': done.prompt_tokens, 'new_tokens': done.completion_tokens,
                  'cpu_s': cpu, 'wall_s': wall, 'peak_bytes': status('VmHWM') - base,
                  'engine_memory_bytes': eng.memory_bytes(), 'load_s': load_s}))
"""


def fixed_prompt() -> str:
    from edgeslm.bench.decoder import prompts

    return prompts(None)[0]


def measure_gguf(model: Path, threads: int, requests: int = 3, new_tokens: int = 32, n_ctx: int = N_CTX) -> dict[str, Any]:
    """The figures of `requests` cold requests (medians of time to first token and tokens/s)."""
    args = {"model": str(model), "threads": threads, "requests": requests, "new_tokens": new_tokens, "n_ctx": n_ctx,
            "prompt": fixed_prompt()}
    probe = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(args)], capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        raise EdgeslmError(f"measuring {model} with llama.cpp failed: {probe.stderr.strip().splitlines()[-1:]}")
    got = json.loads(probe.stdout.strip().splitlines()[-1])
    got["file_bytes"] = Path(model).stat().st_size
    return got
