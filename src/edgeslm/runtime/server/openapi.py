"""The OpenAPI 3.1 description served at /openapi.json, written from the same constants the
validators use (schemas.py), so the documented limits are the enforced ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgeslm.runtime.engines.llama import ROLES
from edgeslm.runtime.server.schemas import (
    DEFAULT_SENSORS_LISTED,
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES,
    MAX_SENSORS_LISTED,
    MAX_TEXT_CHARS,
    MAX_TEXTS,
)
from edgeslm.runtime.streams import SENSOR_ID, StreamSettings

_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS}
_READINGS = {"type": "array", "minItems": 1, "items": {  # a series, or a push of readings: numbers, or a time step's channels
    "oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}, "minItems": 1}]}}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "code"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "integer"}}}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "a field is wrong; the message names it", 404: "no such model", 408: "the body came too slowly",
               409: "a new sensor past the model's max_sensors",
               411: "chunked bodies are refused", 413: "the body is over the limit",
               503: "overloaded or over the memory budget; see Retry-After", 500: "a server bug (counted)"}
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, reasons[c]) for c in codes}


def openapi(models: Iterable[Any], max_tokens_limit: int, streams: StreamSettings | None = None) -> dict[str, Any]:
    models, streams = list(models), streams or StreamSettings()
    classify_models = [m.name for m in models if m.capabilities & {"classify", "classify-series"}]
    series_models = [m.name for m in models if "classify-series" in m.capabilities]
    chat_models = [m.name for m in models if "chat" in m.capabilities]
    classify = {"type": "object", "additionalProperties": False, "properties": {
        "model": {"type": "string", "enum": classify_models} if classify_models else {"type": "string"},
        "text": _TEXT,
        "texts": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": MAX_TEXTS},
        "series": {"description": "a time series for a series model: numbers (one channel), or one list of the "
                                  "channels' values a time step", **_READINGS}},
        "oneOf": [{"required": ["text"]}, {"required": ["texts"]}, {"required": ["series"]}]}
    result = {"type": "object", "properties": {"label": {"type": "string"}, "score": {"type": "number"}}}
    message = {"type": "object", "required": ["role", "content"], "additionalProperties": False, "properties": {
        "role": {"type": "string", "enum": list(ROLES)},
        "content": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS}, "name": {"type": "string"}}}
    chat = {"type": "object", "required": ["messages"], "additionalProperties": False, "properties": {
        "model": {"type": "string", "enum": chat_models} if chat_models else {"type": "string"},
        "messages": {"type": "array", "items": message, "minItems": 1, "maxItems": MAX_MESSAGES},
        "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": max_tokens_limit},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": max_tokens_limit},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
        "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**32 - 2},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                           {"type": "null"}]},
        "stream": {"type": ["boolean", "null"]},
        "response_format": {"type": ["object", "null"], "properties": {
            "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
            "json_schema": {"type": "object", "properties": {"schema": {"type": "object"}}}}},
        "grammar": {"type": ["string", "null"], "description": "a GBNF grammar (llama.cpp)"},
        "n": {"type": ["integer", "null"], "enum": [1, None]},
        "user": {"type": ["string", "null"]}, "stream_options": {"type": ["object", "null"]}}}
    hop = f"every {streams.hop} readings (at most the series length N)" if streams.hop else "every N readings"
    ttl = f"a sensor silent for {streams.ttl_s:g} s is forgotten" if streams.ttl_s else "sensors are never forgotten"
    stream = {"type": "object", "required": ["sensor", "values"], "additionalProperties": False, "properties": {
        "model": {"type": "string", "enum": series_models} if series_models else {"type": "string"},
        "sensor": {"type": "string", "pattern": SENSOR_ID.pattern, "minLength": 1, "maxLength": 128},
        "values": {"description": "the sensor's new readings, oldest first: numbers (one channel), or one list of "
                                  "the channels' values a reading; finite; at most N (the model's series length, "
                                  "shown by GET /v1/sensors) a push", **_READINGS}}}
    window = {"type": "object", "properties": {"end": {"type": "integer", "description": "the sensor's reading "
                                                      "count when the window closed"}, **result["properties"]}}
    sensor = {"type": "object", "properties": {
        "sensor": {"type": "string"}, "filled": {"type": "integer", "description": "readings held, up to N"},
        "pending": {"type": "integer", "description": "readings until its next window"},
        "received": {"type": "integer"}, "idle_s": {"type": "number", "description": "seconds since its last push"}}}
    sensors = {"type": "object", "properties": {"models": {"type": "array", "items": {"type": "object", "properties": {
        "model": {"type": "string"}, "length": {"type": "integer"}, "channels": {"type": "integer"},
        "hop": {"type": "integer"}, "max_sensors": {"type": "integer"}, "ttl_s": {"type": ["number", "null"]},
        "count": {"type": "integer"}, "forgotten": {"type": "integer"}, "bytes": {"type": "integer"},
        "sensors": {"type": "array", "items": sensor, "maxItems": MAX_SENSORS_LISTED},
        "truncated": {"type": "boolean"}}}}}}
    get_json = {"responses": {"200": _json({"type": "object"}, "OK")}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "edgeslm device server", "version": "1",
                 "description": "Classification and OpenAI-compatible chat on the bundles this device serves."},
        "paths": {
            "/v1/classify": {"post": {
                "summary": "Classify one text or a list (batched with concurrent requests)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": classify}}},
                "responses": {"200": _json({"type": "object", "properties": {
                    "model": {"type": "string"}, "served_by": {"type": "string"}, **result["properties"],
                    "results": {"type": "array", "items": result}}}, "labels with their scores"),
                    **_errors(400, 404, 408, 411, 413, 503, 500)}}},
            "/v1/stream": {"post": {
                "summary": f"A sensor's new readings into its sliding window of the last N; a window is classified "
                           f"when the N-th reading arrives, then {hop}. At most {streams.max_sensors:,} sensors a "
                           f"model (a new one past it: 409); {ttl}. A refused push changes no window.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": stream}}},
                "responses": {"200": _json({"type": "object", "properties": {
                    "model": {"type": "string"}, "served_by": {"type": "string"}, "sensor": {"type": "string"},
                    "pending": {"type": "integer"}, "windows": {"type": "array", "items": window}}},
                    "the windows this push filled, oldest first (often none)"),
                    **_errors(400, 404, 408, 409, 411, 413, 503, 500)}}},
            "/v1/sensors": {"get": {
                "summary": "Each series model's sensors: count, window bytes, and the most recently heard first",
                "parameters": [{"name": "limit", "in": "query", "required": False, "description":
                                "sensors listed a model", "schema": {"type": "integer", "minimum": 0,
                                "maximum": MAX_SENSORS_LISTED, "default": DEFAULT_SENSORS_LISTED}}],
                "responses": {"200": _json(sensors, "the sensors heard from, by model"), **_errors(400)}}},
            "/v1/chat/completions": {"post": {
                "summary": "OpenAI-compatible chat completion; server-sent events when stream is true",
                "requestBody": {"required": True, "content": {"application/json": {"schema": chat}}},
                "responses": {"200": {"description": "a chat.completion, or chat.completion.chunk events",
                                      "content": {"application/json": {"schema": {"type": "object"}},
                                                  "text/event-stream": {"schema": {"type": "string"}}}},
                              **_errors(400, 404, 408, 411, 413, 503, 500)}}},
            "/v1/assist": {"post": {
                "summary": "The tiered assistant (serve --home): Home Assistant intent JSON and the tier that answered",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"], "additionalProperties": False, "properties": {
                        "text": _TEXT, "context": {"type": "object", "additionalProperties": False, "properties": {
                            "area": {"type": "string"}, "floor": {"type": "string"}}}}}}}},
                "responses": {"200": _json({"type": "object", "required": ["intent", "slots", "tier"], "properties": {
                    "intent": {"type": "string"}, "slots": {"type": "object"}, "tier": {"type": "string"},
                    "confidence": {"type": "number"}, "latency_ms": {"type": "number"}, "joules": {"type": "number"}}},
                    "the intent, its slots as the home spells them, and what answering cost"),
                    **_errors(400, 404, 408, 411, 413, 503, 500)}}},
            "/v1/models": {"get": {"summary": "Every model served here, and whether it is resident", **get_json}},
            "/healthz": {"get": {"summary": "Liveness", **get_json}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This description", **get_json}},
        },
        "components": {"schemas": {"Error": _ERROR}},
    }
