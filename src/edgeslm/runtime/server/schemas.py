"""Request bodies, validated before anything runs: each problem is a 400 that names the field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edgeslm.runtime.engines.llama import ROLES
from edgeslm.runtime.engines.onnx import MAX_REQUEST_CHARS as MAX_TEXT_CHARS
from edgeslm.runtime.server.http import HttpError

MAX_TEXTS = 64
MAX_MESSAGES = 64
MAX_MESSAGE_CHARS = 16_000
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ClassifyRequest:
    model: str | None
    texts: list[str]
    single: bool  # "text" was given: answer with one result, not a list


@dataclass(frozen=True)
class ChatRequest:
    model: str | None
    messages: list[dict[str, str]]
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    seed: int = 0
    grammar: str | None = None
    json_schema: dict[str, Any] | None = None


def _bad(message: str) -> HttpError:
    return HttpError(400, message)


def _object(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad(f"unknown field(s): {', '.join(unknown[:5])}")
    return body


def _model(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model or len(model) > 200):
        raise _bad("model must be a non-empty string")
    return model


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _bad(f"{where} must be a string")
    if not value.strip():
        raise _bad(f"{where} is empty")
    if len(value) > limit:
        raise _bad(f"{where} has {len(value)} characters; the limit is {limit}")
    if "\x00" in value:
        raise _bad(f"{where} contains a NUL character")
    if _LONE_SURROGATE.search(value):  # JSON can spell them ("\\ud800"); no engine can encode one as UTF-8
        raise _bad(f"{where} contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid Unicode")
    return value


def parse_classify(body: Any) -> ClassifyRequest:
    body = _object(body, {"model", "text", "texts"})
    if ("text" in body) == ("texts" in body):
        raise _bad("give exactly one of text (a string) or texts (a list of strings)")
    if "text" in body:
        return ClassifyRequest(_model(body), [_text(body["text"], "text", MAX_TEXT_CHARS)], True)
    texts = body["texts"]
    if not isinstance(texts, list) or not texts:
        raise _bad("texts must be a non-empty list of strings")
    if len(texts) > MAX_TEXTS:
        raise _bad(f"texts has {len(texts)} items; the limit is {MAX_TEXTS} a request")
    return ClassifyRequest(_model(body), [_text(t, f"texts[{i}]", MAX_TEXT_CHARS) for i, t in enumerate(texts)], False)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float, integer: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise _bad(f"{name} must be {'an integer' if integer else 'a number'}")
    if not low <= value <= high:
        raise _bad(f"{name} must be between {low:g} and {high:g}")
    return value


def parse_chat(body: Any, max_tokens_limit: int = 2048) -> ChatRequest:
    body = _object(body, {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
                          "stream", "seed", "response_format", "grammar", "n", "user", "stream_options"})
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list")
    if len(messages) > MAX_MESSAGES:
        raise _bad(f"messages has {len(messages)} items; the limit is {MAX_MESSAGES}")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content", "name"}:
            raise _bad(f"messages[{i}] must be an object with role and content")
        if m.get("role") not in ROLES:
            raise _bad(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        clean.append({"role": m["role"], "content": _text(m.get("content"), f"messages[{i}].content",
                                                          MAX_MESSAGE_CHARS)})
    # null means "not given" for every optional field: OpenAI's clients send it for unset options.
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1 or not isinstance(n, int)):
        raise _bad("n must be 1: one completion a request")
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise _bad("stop must be a non-empty string or a list of up to 4 non-empty strings")
    stream = body.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("stream must be true or false")
    grammar, schema = body.get("grammar"), None
    if grammar is not None and (not isinstance(grammar, str) or not grammar.strip() or len(grammar) > 20_000):
        raise _bad("grammar must be a non-empty GBNF string of at most 20000 characters")
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise _bad("response_format.type must be text, json_object or json_schema")
        if fmt["type"] == "json_object":
            schema = {"type": "object"}
        elif fmt["type"] == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise _bad("response_format.json_schema.schema must be a JSON Schema object")
            schema = spec["schema"]
        if schema is not None and grammar is not None:
            raise _bad("give grammar or response_format, not both")
    # max_completion_tokens is OpenAI's newer name; both are checked under their own names.
    max_tokens = _number(body, "max_tokens", 128, 1, max_tokens_limit, integer=True)
    max_tokens = _number(body, "max_completion_tokens", max_tokens, 1, max_tokens_limit, integer=True)
    return ChatRequest(
        model=_model(body), messages=clean,
        max_tokens=max_tokens,
        temperature=float(_number(body, "temperature", 0.0, 0.0, 2.0)),
        top_p=float(_number(body, "top_p", 1.0, 0.0, 1.0)),
        stop=stop, stream=stream, seed=_number(body, "seed", 0, 0, 2**31 - 1, integer=True),
        grammar=grammar, json_schema=schema,
    )
