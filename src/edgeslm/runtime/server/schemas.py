"""Request bodies, validated before anything runs: each problem is a 400 that names the field. A chat's
sampling fields are the engines' SamplingConfig, built here: its ranges are the only ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeslm.config import is_decimal
from edgeslm.data.series import parse_series
from edgeslm.runtime.engines.llama import ROLES
from edgeslm.runtime.engines.onnx import MAX_REQUEST_CHARS as MAX_TEXT_CHARS
from edgeslm.runtime.engines.sampling import SamplingConfig, SamplingError, check_max_tokens
from edgeslm.runtime.server.errors import HttpError
from edgeslm.runtime.text import text_problem

MAX_TEXTS = 64
MAX_MESSAGES = 64
MAX_MESSAGE_CHARS = 16_000
DEFAULT_SENSORS_LISTED, MAX_SENSORS_LISTED = 100, 1000  # GET /v1/sensors: sensors listed a model


@dataclass(frozen=True)
class ClassifyRequest:
    model: str | None
    texts: list[str]
    single: bool  # "text" or "series" was given: answer with one result, not a list
    series: Any = None  # float32 [length, channels] when "series" was given (texts is then empty)


@dataclass(frozen=True)
class StreamRequest:
    model: str | None
    sensor: Any  # checked by the model's StreamStore, with the values (runtime/streams.py)
    values: Any


@dataclass(frozen=True)
class AssistRequest:
    text: str
    context: dict[str, str]


@dataclass(frozen=True)
class ChatRequest:
    model: str | None
    messages: list[dict[str, str]]
    sampling: SamplingConfig
    stream: bool = False


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
    problem = text_problem(value, limit)
    if problem:
        raise _bad(f"{where} {problem}")
    return value


def parse_classify(body: Any) -> ClassifyRequest:
    body = _object(body, {"model", "text", "texts", "series"})
    if sum(k in body for k in ("text", "texts", "series")) != 1:
        raise _bad("give exactly one of text (a string), texts (a list of strings) or series (a list of numbers, "
                   "or of lists of numbers, one list of channel values a time step)")
    if "series" in body:  # the model's own length and channels are checked by its engine (also a 400)
        try:
            return ClassifyRequest(_model(body), [], True, parse_series(body["series"]))
        except ValueError as exc:
            raise _bad(str(exc)) from None
    if "text" in body:
        return ClassifyRequest(_model(body), [_text(body["text"], "text", MAX_TEXT_CHARS)], True)
    texts = body["texts"]
    if not isinstance(texts, list) or not texts:
        raise _bad("texts must be a non-empty list of strings")
    if len(texts) > MAX_TEXTS:
        raise _bad(f"texts has {len(texts)} items; the limit is {MAX_TEXTS} a request")
    return ClassifyRequest(_model(body), [_text(t, f"texts[{i}]", MAX_TEXT_CHARS) for i, t in enumerate(texts)], False)


def parse_stream(body: Any) -> StreamRequest:
    """{"sensor": id, "values": [...]}: the readings' numbers, channels and count are the store's to check,
    against the model's shape, before it changes anything."""
    body = _object(body, {"model", "sensor", "values"})
    if "sensor" not in body or "values" not in body:
        raise _bad("give sensor (the sensor's id) and values (its new readings: numbers, or one list of the "
                   "channels' values a reading)")
    return StreamRequest(_model(body), body["sensor"], body["values"])


def parse_sensors_limit(raw: str | None) -> int:
    """GET /v1/sensors?limit=N: how many sensors to list a model."""
    if raw is None:
        return DEFAULT_SENSORS_LISTED
    if not is_decimal(raw) or int(raw) > MAX_SENSORS_LISTED:
        raise _bad(f"limit must be a whole number from 0 to {MAX_SENSORS_LISTED}")
    return int(raw)


def parse_assist(body: Any) -> AssistRequest:
    body = _object(body, {"text", "context"})
    text = _text(body.get("text"), "text", MAX_TEXT_CHARS)
    context = {} if body.get("context") is None else body["context"]
    if not isinstance(context, dict) or len(context) > 8:
        raise _bad("context must be an object of at most 8 fields, e.g. {\"area\": \"Living Room\"}")
    clean = {}
    for key, value in context.items():
        if key not in ("area", "floor"):
            raise _bad(f"context.{key[:40]} is not known; give area and/or floor")
        clean[key] = _text(value, f"context.{key}", 200)
    return AssistRequest(text, clean)


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
    stream = body.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("stream must be true or false")
    schema, fmt = None, body.get("response_format")
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
    return ChatRequest(model=_model(body), messages=clean, sampling=_sampling(body, schema, max_tokens_limit),
                       stream=stream)


def _sampling(body: dict[str, Any], json_schema: dict[str, Any] | None, max_tokens_limit: int) -> SamplingConfig:
    """The request's SamplingConfig, with this API's defaults (greedy, seed 0) for what it leaves out."""
    def given(name: str, default: Any) -> Any:
        return default if body.get(name) is None else body[name]

    max_tokens = 128
    # max_completion_tokens is OpenAI's newer name and wins; both are checked under their own names.
    for name in ("max_tokens", "max_completion_tokens"):
        if body.get(name) is not None:
            try:
                max_tokens = check_max_tokens(body[name], name)
            except SamplingError as exc:
                raise _bad(str(exc)) from None
            if max_tokens > max_tokens_limit:  # this server's own limit, below the engines' range
                raise _bad(f"{name} must be at most {max_tokens_limit} on this server, got {max_tokens}")
    try:
        return SamplingConfig(max_tokens=max_tokens, temperature=given("temperature", 0.0), top_p=given("top_p", 1.0),
                              stop=given("stop", ()), seed=given("seed", 0), grammar=body.get("grammar"),
                              json_schema=json_schema)
    except SamplingError as exc:
        raise _bad(str(exc)) from None
