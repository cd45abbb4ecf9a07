"""Decoder benchmarks under MLPerf LoadGen, as MLPerf Inference times its LLMs: use_token_latencies,
FirstTokenComplete when the first token is out, QuerySamplesComplete with the token count at the end,
so LoadGen reports time to first token (TTFT) and time per output token (TPOT). The QSL is a fixed
set of smart-home prompts (or --data's texts put in the same frame); decoding is greedy with
end-of-text ignored, so every query generates exactly new_tokens.

Single-stream and server only: llama.cpp serves one sequence at a time, so offline and multi-stream
would only queue the same sequential work; they are refused rather than run under a misleading name.
Accuracy is not defined for free generation; with --vs llama-cpp, accuracy mode checks that edgeslm's
greedy outputs agree with llama-cpp-python's token for token.

Also a ceiling: a batch-1 decoder reads every weight once per token, so memory bandwidth / model
bytes bounds tokens/s. The bandwidth here is one thread's numpy read speed (llama.cpp's threads
together may read faster), so read the bound as a scale, not a law.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.bench import harness
from edgeslm.bench.config import QUICK, BenchConfig, peak_rss_mb
from edgeslm.bench.suts import EDGESLM_SUTS, RawLlamaSut
from edgeslm.data.records import read_examples
from edgeslm.errors import ConfigError
from edgeslm.formats.reader import Bundle
from edgeslm.runtime.engines.llama import LlamaEngine, import_llama_cpp
from edgeslm.runtime.profiles import isa_summary, load_profile

SCENARIOS = ("single-stream", "server")
VS = ("llama-cpp",)
# A smart-home assistant's system prompt, the home's state and a user's request: what a device prefills.
SYSTEM = ("You are the voice assistant of a smart home. You control lights, thermostats, locks, blinds and "
          "media players, and you answer in one or two short sentences.")
STATES = (
    "The living room lights are on at 60 percent, the front door is locked, and the thermostat is set to 21 degrees.",
    "The kitchen lights are off, the back door is unlocked, and the blinds in the bedroom are half open.",
    "The TV in the living room is playing music at volume 30, and the hallway light is on.",
    "It is 11 pm. All doors are locked except the garage, and the heating is off.",
)
QUESTIONS = (
    "It is getting dark and a bit cold in here. What would you change, and why?",
    "I am going to bed now. Make the house ready for the night.",
    "Can you turn the music down and dim the lights for a movie?",
    "Is everything locked? I am leaving for the weekend.",
    "It is too bright in the bedroom, what can you do?",
    "Set a cozy mood in the living room for dinner guests.",
)
BANDWIDTH_BYTES = 512 << 20


def prompts(data: Path | None) -> list[str]:
    """The QSL: every home state with every request (24 prompts), or each --data text in the same frame."""
    if data is not None:
        questions = [r.text for r in read_examples(Path(data))]
        return [_frame(STATES[i % len(STATES)], q) for i, q in enumerate(questions)]
    return [_frame(state, q) for q in QUESTIONS for state in STATES]


def _frame(state: str, question: str) -> str:
    return f"{SYSTEM} {state}\nUser: {question}\nAssistant:"


def check_decoder_request(config: BenchConfig) -> None:
    if config.scenario not in SCENARIOS:
        raise ConfigError(f"decoder bundles run the {' and '.join(SCENARIOS)} scenarios: llama.cpp serves one "
                          f"sequence at a time, so {config.scenario} would only queue the same sequential work")
    if config.vs is not None and config.vs not in VS:
        raise ConfigError(f"--vs {config.vs} compares encoder bundles; for a decoder use --vs llama-cpp")


def run_decoder_bench(config: BenchConfig, bundle: Bundle, out: Path, progress: bool = False) -> dict[str, Any]:
    check_decoder_request(config)
    qsl = prompts(config.data)
    profile = load_profile(config.profile)
    threads = config.threads or profile.threads
    engine = LlamaEngine.from_bundle(bundle, threads=threads, n_ctx=2048)
    longest = max(len(engine.tokenize(p)) for p in qsl)
    if longest + config.new_tokens > engine.n_ctx:
        engine.close()
        raise ConfigError(f"the longest prompt ({longest} tokens) + new_tokens ({config.new_tokens}) exceed the "
                          f"context of {engine.n_ctx}")
    suts: list[Any] = [EDGESLM_SUTS[("decoder", config.division)](engine, config.scenario, config.new_tokens)]
    raw = None
    try:
        suts[0].call(qsl[:1])  # page the mmapped weights in before the edgeslm-only RSS reading
        rss_edgeslm = peak_rss_mb()
        if config.vs == "llama-cpp":
            # Plain defaults except the thread count: what a user of llama-cpp-python gets.
            raw = import_llama_cpp().Llama(model_path=str(bundle.model_path), n_threads=threads, verbose=False)
            suts.append(RawLlamaSut(raw, qsl, config.scenario, config.new_tokens))
        hints = harness.warm_up(suts, qsl, config, batched=False)
        values, source = harness.loadgen_values(config, hints, decoder=True)
        accuracy_qsl = None
        if raw is not None:
            n = min(len(qsl), config.accuracy_samples or (QUICK.accuracy_samples_decoder if config.quick else len(qsl)))
            accuracy_qsl = qsl[:n]
        sides = harness.run_sides(suts, qsl, accuracy_qsl, values, config, out, progress)
        agreement = _agreement(engine, sides) if raw is not None else None
    finally:
        for sut in suts:
            sut.close()
        engine.close()
        if raw is not None:
            raw.close()
    rss_process = peak_rss_mb()  # before the bandwidth probe's 512 MB buffer
    gbps = memory_read_gbps()
    model_bytes = bundle.model_path.stat().st_size
    result: dict[str, Any] = {
        "scenario": config.scenario, "division": config.division, "bundle": str(bundle.path),
        "model": bundle.manifest.name, "model_file": bundle.manifest.model_file, "model_bytes": model_bytes,
        "qsl_prompts": len(qsl), "prompt_tokens_max": longest, "new_tokens": config.new_tokens,
        "threads": threads, "profile": profile.name, "isa": isa_summary(), "out": str(out), "repeats": config.repeats,
        "decoding": "greedy, end-of-text ignored so every query generates exactly new_tokens",
        "sides": {},
    }
    for name, side in sides.items():
        report = harness.side_report(side, config.scenario, tokens=True)
        report["tokens"] = side.tokens
        report["cpu_s"], report["wall_s"] = round(side.meter.cpu_seconds, 3), round(side.meter.wall_seconds, 3)
        report["joules_per_token"] = round(side.meter.joules(profile) / max(1, side.tokens), 5)
        result["sides"][name] = report
    first = next(iter(sides.values())).runs[0]
    result.update({
        "accuracy": agreement if agreement is not None else None,
        "accuracy_definition": (
            "edgeslm's greedy outputs against llama-cpp-python's on the same GGUF, from LoadGen's accuracy mode: "
            "exact_match is the share of prompts with identical text, token_agreement the mean share of "
            "leading tokens that agree (both texts tokenized by the model's tokenizer)" if agreement is not None
            else "not defined for free generation; give --vs llama-cpp to check edgeslm's greedy outputs "
                 "against llama-cpp-python's token for token"),
        "loadgen_version": first["detail"].get("loadgen_version"),
        "loadgen_settings": {"set": values, "why": source, "defaults": harness.SETTINGS_NOTE,
                             "effective": harness.effective_settings(first)},
        "division_check": ("closed: the KV cache is dropped before every query (cold prefill), checked: no "
                           "query reused cached prompt tokens" if config.division == "closed"
                           else "open: adaptive tiers may answer; today the open division runs the closed SUT"),
        "peak_rss_mb": {"edgeslm": rss_edgeslm, "process": rss_process},
        "peak_rss_definition": "edgeslm: after its engine loaded and ran, before the baseline loaded; process: "
                               "both loaded (mmapped weights count once per mapping)",
        "energy_model": f"{profile.watts_idle} W idle, {profile.watts_busy} W busy, linear in CPU utilisation, "
                        "over the performance runs (prefill included)",
        "memory_read_gb_s": round(gbps, 2),
        "bandwidth_bound_tok_s": round(gbps * 1e9 / model_bytes, 1),
        "bandwidth_bound_definition": "single-thread numpy read bandwidth (sum over 512 MB, best of 3) / model file bytes",
    })
    if raw is not None:
        tpot = harness.median_ratio(sides, "edgeslm", "llama-cpp",
                                    lambda run: float(run["detail"]["result_time_per_output_token_50.00_percentile_ns"]))
        tpot["definition"] = ("edgeslm p50 time per output token / llama-cpp's, from LoadGen's detail logs; median "
                              f"over {config.repeats} repeat(s), the order alternating (below 1: edgeslm is faster)")
        result["ratio"] = tpot
        ttft = harness.median_ratio(sides, "edgeslm", "llama-cpp",
                                    lambda run: float(run["detail"]["result_first_token_50.00_percentile_latency_ns"]))
        result["ttft_ratio"] = ttft | {"definition": "edgeslm p50 time to first token / llama-cpp's"}
    return result


def _agreement(engine: LlamaEngine, sides: dict[str, harness.SideRuns]) -> dict[str, Any]:
    ours: dict[int, bytes] = {}
    theirs: dict[int, bytes] = {}
    for answers, log in ((ours, sides["edgeslm"].accuracy_log), (theirs, sides["llama-cpp"].accuracy_log)):
        for idx, text in log or []:
            answers.setdefault(idx, text)
    exact, shares = 0, []
    for idx, text in ours.items():
        a = engine.tokenize(text.decode("utf-8", errors="replace"))
        b = engine.tokenize(theirs[idx].decode("utf-8", errors="replace"))
        same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        shares.append(same / max(len(a), len(b), 1))
        exact += text == theirs[idx]
    return {"prompts": len(ours), "exact_match": round(exact / len(ours), 4),
            "token_agreement": round(float(np.mean(shares)), 4)}


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
