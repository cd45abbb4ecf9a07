"""SamplingConfig is the one place sampling ranges live: the HTTP schema accepts exactly what it accepts
(the real engine is held to the same table in test_llama_engine.py)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings

from edgeslm.errors import ConfigError
from edgeslm.runtime.engines.sampling import SamplingConfig, SamplingError
from edgeslm.runtime.server.errors import HttpError
from edgeslm.runtime.server.schemas import parse_chat

from .sampling_cases import CASES, N_CTX, combinations, http_body, present

HTTP_DEFAULTS = {"max_tokens": 128, "temperature": 0.0, "top_p": 1.0, "seed": 0}


def config_or_error(fields: dict) -> SamplingConfig | SamplingError:
    try:
        return SamplingConfig(**present(fields))
    except SamplingError as exc:
        return exc


def http_or_error(fields: dict) -> SamplingConfig | HttpError:
    try:
        return parse_chat(http_body(fields), max_tokens_limit=N_CTX).sampling
    except HttpError as exc:
        return exc


def check(fields: dict, ok: bool) -> None:
    http = http_or_error(fields)
    assert isinstance(http, SamplingConfig) == ok, (fields, http)
    if not ok:
        assert http.status == 400 and any(name in http.message for name in fields), http.message
        return
    assert http == SamplingConfig(**{**HTTP_DEFAULTS, **present(fields)})  # null means "not given"
    assert isinstance(config_or_error(fields), SamplingConfig)


@pytest.mark.parametrize("fields, ok", CASES, ids=[f"{next(iter(f))}={next(iter(f.values()))!r:.20}" for f, _ in CASES])
def test_each_boundary_value(fields, ok):
    check(fields, ok)
    if not ok and fields.get("max_tokens") != N_CTX + 1:  # past the server's limit, not past SamplingConfig's range
        assert isinstance(config_or_error(fields), SamplingError)


@settings(max_examples=300, deadline=None)
@given(combinations())
def test_combinations_of_boundary_values(case):
    fields, ok = case
    check(fields, ok)


def test_max_tokens_range_and_the_server_limit():
    assert SamplingConfig(max_tokens=131072).max_tokens == 131072
    with pytest.raises(SamplingError, match=r"max_tokens must be an integer in \[1, 131072\]"):
        SamplingConfig(max_tokens=131073)
    with pytest.raises(HttpError, match="max_completion_tokens must be at most 512 on this server"):
        parse_chat({**http_body({}), "max_completion_tokens": 513}, max_tokens_limit=512)


def test_errors_are_config_and_value_errors_and_values_are_normalised():
    with pytest.raises(ConfigError):
        SamplingConfig(top_p=2)
    with pytest.raises(ValueError, match="temperature"):  # a wrong type too, as the engine's errors always were
        SamplingConfig(temperature="hot")
    config = SamplingConfig(temperature=1, top_p=1, stop=["##", "\n\n"], grammar='root ::= "a"')
    assert (config.temperature, config.top_p, config.stop) == (1.0, 1.0, ("##", "\n\n"))
    assert SamplingConfig(stop="##").stop == ("##",) and SamplingConfig(stop=None).stop == ()
    with pytest.raises(SamplingError, match="not both"):
        SamplingConfig(grammar='root ::= "a"', json_schema={"type": "object"})


def test_round_trips_through_a_dict():
    config = SamplingConfig(max_tokens=7, stop=("a",), seed=2**32 - 2, json_schema={"type": "object"})
    assert SamplingConfig.from_dict(config.to_dict()) == config
    assert dataclasses.asdict(config)["stop"] == ("a",)
