"""Decoder scenario: greedy generation of a fixed number of tokens from a fixed real prompt, edgeslm's
LlamaEngine against a plain `llama_cpp.Llama` on the same GGUF file, rounds alternating in one
process, each round a cold prefill (KV cache dropped) so time-to-first-token is real.

Also a ceiling: a batch-1 decoder reads every weight once per token, so memory bandwidth / model
bytes bounds tokens/s. The bandwidth here is one thread's numpy read speed (llama.cpp's threads
together may read faster), so read the bound as a scale, not a law.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgeslm.bench.config import peak_rss_mb
from edgeslm.errors import ConfigError
from edgeslm.formats.reader import Bundle, open_bundle
from edgeslm.runtime.energy import CpuMeter
from edgeslm.runtime.engines.llama import LlamaEngine, collect, import_llama_cpp
from edgeslm.runtime.profiles import isa_summary

VS = ("llama-cpp",)
# A smart-home assistant's system prompt and a user's question: the text a device would prefill.
PROMPT_TEXT = (
    "You are the voice assistant of a smart home. You control lights, thermostats, locks, blinds and "
    "media players, and you answer in one or two short sentences. The living room lights are on at 60 "
    "percent, the front door is locked, and the thermostat is set to 21 degrees.\n"
    "User: It is getting dark and a bit cold in here. What would you change, and why?\nAssistant:"
)
BANDWIDTH_BYTES = 512 << 20


def run_decoder_bench(bundle_path: Path | Bundle, vs: str | None = None, prompt_tokens: int = 40, new_tokens: int = 64,
                      rounds: int = 10, threads: int = 2, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    if vs is not None and vs not in VS:
        raise ConfigError(f"decoder benchmarks compare against {', '.join(VS)}, not {vs!r}")
    if not 8 <= prompt_tokens <= 1024 or not 2 <= new_tokens <= 1024 or rounds < 1 or threads < 1:
        raise ConfigError("need 8 <= prompt_tokens <= 1024, 2 <= new_tokens <= 1024, rounds >= 1, threads >= 1")
    bundle = bundle_path if isinstance(bundle_path, Bundle) else open_bundle(Path(bundle_path))
    engine = LlamaEngine.from_bundle(bundle, threads=threads, n_ctx=2048)
    prompt, tokens = _prompt(engine, prompt_tokens)
    model_bytes = bundle.model_path.stat().st_size
    sides: dict[str, Any] = {"edgeslm": lambda: _edgeslm_round(engine, prompt, new_tokens, seed)}
    _edgeslm_round(engine, prompt, new_tokens, seed)  # warm-up: page the mmapped weights in
    rss_edgeslm = peak_rss_mb()
    raw = None
    if vs == "llama-cpp":
        llama_cpp = import_llama_cpp()
        # Plain defaults except the thread count: what a user of llama-cpp-python gets.
        raw = llama_cpp.Llama(model_path=str(bundle.model_path), n_threads=threads, verbose=False)
        sides["llama-cpp"] = lambda: _raw_round(raw, tokens, new_tokens)
        _raw_round(raw, tokens, new_tokens)

    stats: dict[str, dict[str, list[float]]] = {name: {"ttft": [], "per_token": [], "tok_s": []} for name in sides}
    spans = {name: CpuMeter() for name in sides}
    tokens_edgeslm = 0
    bar = tqdm(total=rounds * len(sides), desc="decoder", disable=not progress, unit="round")
    for _ in range(rounds):
        for name, run in sides.items():  # edgeslm, raw, edgeslm, raw, ...
            with spans[name]:
                ttft, decode_s, n = run()
            if name == "edgeslm":
                tokens_edgeslm += n
            stats[name]["ttft"].append(ttft)
            stats[name]["per_token"].append(decode_s / (n - 1))
            stats[name]["tok_s"].append((n - 1) / decode_s)
            bar.update(1)
    bar.close()
    engine.close()
    if raw is not None:
        raw.close()

    rss_process = peak_rss_mb()  # before the bandwidth probe's 512 MB buffer
    gbps = memory_read_gbps()
    result: dict[str, Any] = {
        "bundle": str(bundle.path), "model_file": bundle.manifest.model_file, "model_bytes": model_bytes,
        "prompt_tokens": len(tokens), "new_tokens": new_tokens, "rounds": rounds, "threads": threads,
        "decoding": "greedy, end-of-text ignored so every round generates exactly new_tokens",
        "sides": {name: _summary(s) for name, s in stats.items()},
        "cpu_seconds": round(spans["edgeslm"].cpu_seconds, 3), "wall_seconds": round(spans["edgeslm"].wall_seconds, 3),
        "tokens_generated": tokens_edgeslm,
        "cpu_seconds_definition": "process user+sys seconds spent in the edgeslm rounds",
        "peak_rss_mb": {"edgeslm": rss_edgeslm, "process": rss_process},
        "peak_rss_definition": "edgeslm: after its engine loaded and ran, before the baseline loaded; process: "
                               "both loaded (mmapped weights count once per mapping)",
        "memory_read_gb_s": round(gbps, 2),
        "bandwidth_bound_tok_s": round(gbps * 1e9 / model_bytes, 1),
        "bandwidth_bound_definition": "single-thread numpy read bandwidth (sum over 512 MB, best of 3) / model file bytes",
        "isa": isa_summary(),
    }
    if raw is not None:
        ours, theirs = result["sides"]["edgeslm"], result["sides"]["llama-cpp"]
        result["tok_s_ratio"] = round(ours["tok_s_median"] / theirs["tok_s_median"], 3)
        result["tok_s_ratio_definition"] = "edgeslm median decode tok/s / llama-cpp median decode tok/s (above 1: edgeslm faster)"
        result["per_token_ms_ratio"] = round(ours["per_token_ms_p50"] / theirs["per_token_ms_p50"], 3)
        result["per_token_ms_ratio_definition"] = "edgeslm p50 ms per decoded token / llama-cpp's (below 1: edgeslm faster)"
        result["ttft_ratio"] = round(ours["ttft_ms_p50"] / theirs["ttft_ms_p50"], 3)
    return result


def _prompt(engine: LlamaEngine, n: int) -> tuple[str, list[int]]:
    """The first n tokens of the fixed text (repeated if needed), as text and as the tokens both sides get."""
    text = PROMPT_TEXT
    while len(engine.tokenize(text)) < n:
        text += "\n" + PROMPT_TEXT
    tokens = engine.tokenize(text)
    body = tokens[1:] if tokens and tokens[0] == engine._llm.token_bos() and len(tokens) > 1 else tokens
    bos = tokens[: len(tokens) - len(body)]
    prompt = engine._llm.detokenize(body[: n - len(bos)]).decode("utf-8", errors="ignore")
    return prompt, engine.tokenize(prompt)


def _edgeslm_round(engine: LlamaEngine, prompt: str, new_tokens: int, seed: int) -> tuple[float, float, int]:
    engine.reset()
    _, done = collect(engine.complete(prompt, max_tokens=new_tokens, temperature=0.0, seed=seed, ignore_eos=True))
    n = done.completion_tokens
    return done.time_to_first_token_s, (n - 1) / done.decode_tokens_per_s, n


def _raw_round(llm: Any, tokens: list[int], new_tokens: int) -> tuple[float, float, int]:
    """The plainest streaming loop llama-cpp-python offers: generate() token ids (no text, so the raw
    side does less work than edgeslm, which turns tokens into text and checks stops)."""
    llm.reset()
    start = time.perf_counter()
    first = last = 0.0
    n = 0
    gen = llm.generate(tokens, temp=0.0, repeat_penalty=1.0)
    for _ in gen:
        last = time.perf_counter()
        if n == 0:
            first = last
        n += 1
        if n >= new_tokens:
            break
    gen.close()
    return first - start, last - first, n


def _summary(s: dict[str, list[float]]) -> dict[str, float]:
    def pct(values: list[float], q: float, scale: float = 1.0) -> float:
        return round(float(np.percentile(values, q)) * scale, 3)

    return {
        "tok_s_median": pct(s["tok_s"], 50), "tok_s_p10": pct(s["tok_s"], 10),
        "per_token_ms_p50": pct(s["per_token"], 50, 1e3), "per_token_ms_p90": pct(s["per_token"], 90, 1e3),
        "ttft_ms_p50": pct(s["ttft"], 50, 1e3), "ttft_ms_p90": pct(s["ttft"], 90, 1e3),
    }


def memory_read_gbps(nbytes: int = BANDWIDTH_BYTES, repeats: int = 3) -> float:
    """One thread's read bandwidth: numpy sums a buffer far larger than any cache, best of `repeats`."""
    a = np.ones(nbytes // 8, dtype=np.float64)  # ones, not empty: every page is touched before timing
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t)
    del a
    return nbytes / best / 1e9
