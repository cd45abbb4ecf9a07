"""`edgeslm replay` on a small hand-written stream for homes/maple-cottage.yaml: real grammar, real
encoder, real cache; and every malformed stream refused with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.errors import ConfigError, DataError
from edgeslm.evaluate.replay import ReplayConfig, read_stream, replay, slots_match

HERE = Path(__file__).resolve().parent
STREAM = HERE / "maple_stream.jsonl"
HOME = HERE.parents[1] / "homes" / "maple-cottage.yaml"


def test_templates_and_cache_alone_answer_the_grammar_and_repeat_themselves(tmp_path):
    out = tmp_path / "answers.jsonl"
    r = replay(ReplayConfig(stream=STREAM, home=HOME, tiers=["cache", "templates"], out=out))
    assert r["n"] == r["labelled"] == 10
    assert r["cache"]["hits"] == 3 and r["cache"]["false_hits"] == 0  # the three repeats, normalized
    assert r["tier_share"]["cache"] == 0.3 and "none" in r["tier_share"]  # the typo has no template
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 10 and set(lines[0]) == {"text", "intent", "slots", "tier", "confidence", "latency_ms",
                                                  "joules"}
    assert lines[2]["tier"] == "cache" and lines[2]["slots"] == {"name": "Floor Lamp"}
    assert r["latency"]["p50_ms"] > 0 and r["joules"] > 0


@pytest.mark.model
def test_all_tiers_answer_every_command_right(session_bundle):
    r = replay(ReplayConfig(stream=STREAM, home=HOME, bundle=session_bundle))
    assert r["intent_accuracy"] == 1.0 and r["slot_accuracy"] == 1.0, r
    assert r["tier_share"].get("encoder", 0) > 0 and r["cache"]["false_hits"] == 0


def test_slot_matching_compares_names_without_case():
    assert slots_match({"name": "floor lamp"}, {"name": "Floor Lamp", "domain": "light"})
    assert not slots_match({"area": "Kitchen"}, {"area": "Kids Room"})
    assert not slots_match({"brightness": 40}, {"brightness": 50})


@pytest.mark.parametrize("lines, words", [
    (['{"text": "a"}', "not json"], ":2: not JSON"),
    (['{"label": "x"}'], ":1: each row is an object with text"),
    (['{"text": "a", "colour": 1}'], "unknown field"),
    (['{"text": "a", "slots": [1]}'], "slots has the wrong type"),
    (['{"text": "a", "ts": 5}', '{"text": "b", "ts": 4}'], ":2: ts 4 is before"),
    ([""], "no commands"),
    (['{"text": "a", "ts": ' + "1" * 5000 + "}"], ":1: not JSON"),  # past Python's digit limit
    (['{"text": "a", "ts": NaN}'], ":1: not JSON"),
    (['{"text": "a", "text": "b"}'], ":1: not JSON: field 'text' appears twice"),
    (["[" * 30_000 + "]" * 30_000], ":1: not JSON"),  # under the line limit, past the stack
])
def test_malformed_streams_name_the_line(tmp_path, lines, words):
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=words):
        read_stream(path)


def test_a_non_utf8_stream_and_bad_configs(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"text": "\xff"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_stream(path)
    with pytest.raises(ConfigError, match="--generative .*missing.gguf: no such file"):
        ReplayConfig(stream=path, home=HOME, tiers=["cache", "generative"], generative=tmp_path / "missing.gguf")
    with pytest.raises(ConfigError, match="choose from"):
        ReplayConfig(stream=path, home=HOME, tiers=["cache", "oracle"])
    with pytest.raises(ConfigError, match="only repeat"):
        ReplayConfig(stream=path, home=HOME, tiers=["cache"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_are_a_stream_or_a_data_error(tmp_path, data):
    path = tmp_path / "junk.jsonl"
    path.write_bytes(data)
    try:
        rows = read_stream(path)
    except DataError:
        return
    assert rows and all(isinstance(r.text, str) for r in rows)


def test_replay_with_a_remote_that_refuses_counts_the_fallbacks_and_answers_the_rest(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = replay(ReplayConfig(stream=STREAM, home=HOME, tiers=["cache", "templates", "remote"],
                            remote=f"http://127.0.0.1:{port}/v1"))
    assert r["n"] == 10 and r["tier_share"]["templates"] >= 0.6
    assert r["remote_fallbacks"] == {"connection": 1}  # only the typo gets past the templates and the cache


def test_the_remote_tier_without_an_endpoint_is_a_clear_error():
    with pytest.raises(ConfigError, match="--remote URL"):
        replay(ReplayConfig(stream=STREAM, home=HOME, tiers=["templates", "remote"]))
