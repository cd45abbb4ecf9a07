"""Request validation against a spec written apart from it (requests_spec.py): every body is either
accepted as a request whose fields equal the input, or refused with a 400 that names a field the
spec also finds wrong. The slow variants run 10,000 bodies each (CI; `make test-fast` skips them)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from edgeslm.runtime.server.errors import HttpError
from edgeslm.runtime.server.schemas import parse_chat, parse_classify

from .requests_spec import chat_bodies, chat_expected, chat_problems, classify_bodies, classify_problems

FAST = settings(max_examples=400, deadline=None)
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused(parse, body: Any) -> HttpError | None:
    try:
        return parse(body)
    except HttpError as err:
        return err


def accepted(parse: Any, problems: set[str], body: Any) -> Any:
    """The parsed request when the spec finds no problem; else checks the 400 names a field at fault."""
    result = refused(parse, body)
    if isinstance(result, HttpError):
        assert result.status == 400
        assert problems, f"refused a good body: {result.message}"
        assert any(field in result.message for field in problems), (result.message, problems)
        return None
    assert not problems, f"accepted a body the spec refuses for {sorted(problems)}"
    return result


def check_classify(body: Any) -> None:
    result = accepted(parse_classify, classify_problems(body), body)
    if result is not None:
        assert result.model == body.get("model")
        assert result.single == ("text" in body)
        assert result.texts == ([body["text"]] if "text" in body else body["texts"])


def check_chat(body: Any) -> None:
    result = accepted(parse_chat, chat_problems(body), body)
    if result is not None:
        assert dataclasses.asdict(result) == chat_expected(body)


@FAST
@given(classify_bodies())
def test_classify_bodies_are_accepted_as_given_or_refused_by_field(body):
    check_classify(body)


@FAST
@given(chat_bodies())
def test_chat_bodies_are_accepted_as_given_or_refused_by_field(body):
    check_chat(body)


@pytest.mark.slow
@SLOW
@given(classify_bodies())
def test_classify_bodies_10k(body):
    check_classify(body)


@pytest.mark.slow
@SLOW
@given(chat_bodies())
def test_chat_bodies_10k(body):
    check_chat(body)


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body, field", [
    ({"text": "on \ud800"}, "text"),  # a lone surrogate cannot be encoded: the tokenizer raised (a 500)
    ({"texts": ["on", "off\udfff"]}, "texts[1]"),
    ({"messages": [{"role": "user", "content": "\ud83d"}]}, "messages[0].content"),
    ({"messages": HI, "stop": 0}, "stop"),  # falsy junk was taken for "no stop strings"
    ({"messages": HI, "stop": ""}, "stop"),
    ({"messages": HI, "max_completion_tokens": "x"}, "max_completion_tokens"),  # the error said max_tokens
    ({"messages": HI, "max_tokens": "x", "max_completion_tokens": 5}, "max_tokens"),  # was ignored
    ({"messages": HI, "n": True}, "n"),  # True == 1 passed
])
def test_refusals_name_the_field(body, field):
    parse = parse_chat if "messages" in body else parse_classify
    with pytest.raises(HttpError) as err:
        parse(body)
    assert err.value.status == 400 and field in err.value.message


@pytest.mark.parametrize("body, expected", [
    ({"messages": HI, "stream": None, "n": None, "stop": None}, {"stream": False, "stop": ()}),  # null: not given
    ({"messages": HI, "max_completion_tokens": None, "max_tokens": 5}, {"max_tokens": 5}),  # it was 128
    ({"messages": HI, "max_completion_tokens": 7, "max_tokens": 5}, {"max_tokens": 7}),
    ({"messages": HI, "stop": "##"}, {"stop": ("##",)}),
])
def test_optional_fields(body, expected):
    request = parse_chat(body)
    fields = {"stream": request.stream, **dataclasses.asdict(request.sampling)}
    assert {k: fields[k] for k in expected} == expected
