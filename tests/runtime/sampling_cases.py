"""The sampling ranges as one table of boundary values, written apart from sampling.py: each value with
whether a server whose max_tokens limit is N_CTX, and an engine whose context is N_CTX, must accept it.
None is "not given": a JSON null in a request, a left-out argument for the engine.
test_sampling.py holds the HTTP schema and SamplingConfig to it; test_llama_engine.py the real engine."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

N_CTX = 512  # the model tests' engine context, and the server limit the schema is given here


def grammar_of(chars: int) -> str:
    """Valid GBNF of exactly `chars` characters: one literal."""
    return 'root ::= "' + "a" * (chars - 11) + '"'


BOUNDARIES: dict[str, list[tuple[Any, bool]]] = {
    "max_tokens": [(0, False), (1, True), (N_CTX, True), (N_CTX + 1, False), (-1, False), (8.0, False),
                   (True, False), ("8", False)],
    "temperature": [(0, True), (0.0, True), (0.7, True), (2, True), (math.nextafter(2.0, 3.0), False),
                    (-1e-9, False), (math.nan, False), (math.inf, False), (True, False), ("1", False)],
    "top_p": [(0, True), (0.0, True), (0.5, True), (1, True), (math.nextafter(1.0, 2.0), False), (-1e-9, False),
              (math.nan, False), (None, True)],
    "seed": [(0, True), (2**31 - 1, True), (2**31, True), (2**32 - 2, True), (2**32 - 1, False), (-1, False),
             (1.0, False), (True, False), (None, True)],
    "stop": [(None, True), ("a", True), ("", False), (["a", "b", "c", "d"], True), (["a", "b", "c", "d", "e"], False),
             ([""], False), (["x" * 200], True), (["x" * 201], False), ("x" * 201, False), ([1], False), (0, False)],
    "grammar": [(None, True), ('root ::= "yes" | "no"', True), (grammar_of(20_000), True),
                (grammar_of(20_001), False), ("", False), ("  ", False), (3, False)],
    "json_schema": [(None, True), ({"type": "object"}, True)],
}

CASES = [({name: value}, ok) for name, values in BOUNDARIES.items() for value, ok in values]


def allowed(fields: dict[str, Any], oks: list[bool]) -> bool:
    both = fields.get("grammar") is not None and fields.get("json_schema") is not None
    return all(oks) and not both


@st.composite
def combinations(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """Some of the fields, each at one of its boundary values, and whether the whole must be accepted."""
    fields, oks = {}, []
    for name, values in BOUNDARIES.items():
        if draw(st.booleans()):
            value, ok = draw(st.sampled_from(values))
            fields[name] = value
            oks.append(ok)
    return fields, allowed(fields, oks)


def present(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields as keyword arguments: what is None is left out."""
    return {k: v for k, v in fields.items() if v is not None}


def http_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The chat body that asks for these sampling fields (json_schema travels as response_format)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    for name, value in fields.items():
        if name != "json_schema":
            body[name] = value
        elif value is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": value}}
    return body
