"""Tier 4, remote (off unless the user names an endpoint): an OpenAI-compatible chat-completions
server asked for Home Assistant's intent JSON. Only the command with its PII redacted leaves the
device (pii.py), with the home's entity, area and floor names and the grammar's intents and slots,
which are not personal. The reply is checked like any tier's (validate.py): an intent the grammar
knows, slots it allows, names the home has, numbers in range.

An endpoint that hangs, refuses, or answers garbage costs one counted fallback (`fallbacks[reason]`)
and no answer; `answer()` never raises for what the endpoint does. The time limit is hard: it
bounds the whole exchange (connect, send, every read), not each socket call, so a server that drips
one byte a second is cut off too. Name resolution is the one step it cannot bound: give an IP
address or a name the device resolves locally where that matters.

Where the request goes: a URL whose path ends in /chat/completions is used as given; otherwise
/v1/chat/completions is appended (or /chat/completions, when the URL already ends in /v1), so
`http://host:8080`, `http://host:8080/v1` and the full path all reach llama.cpp's server, vLLM,
Ollama's OpenAI API or OpenAI's own.

Confidence: the endpoint gives none, so every validated answer carries `confidence` (0.9 unless
configured). Below the policy's `cache_from` (0.98 by default), so remote answers are not cached;
above what a tier before it had when the router comes this far, so the router takes it.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import ssl
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.formats import strict_json
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.home import Home
from edgeslm.runtime.tiers.pii import PiiRedactor, Redaction
from edgeslm.runtime.tiers.validate import AnswerCheck, InvalidAnswer

log = logging.getLogger(__name__)

REMOTE_CONFIDENCE = 0.9
FALLBACK_REASONS = ("timeout", "connection", "http_status", "too_large", "not_json", "bad_shape", "unknown_intent",
                    "unknown_slot", "bad_slot")


class RemoteError(ConfigError):
    """A remote tier that cannot be set up (a bad URL or limit), said with what to change."""


@dataclass(frozen=True)
class RemoteConfig(Config):
    url: str
    model: str = "default"  # the name the endpoint serves the model under (llama.cpp's server takes any)
    timeout_s: float = 5.0  # the whole exchange, connect to last byte
    confidence: float = REMOTE_CONFIDENCE
    max_reply_bytes: int = 1 << 20
    max_tokens: int = 256

    def validate(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"remote URL {self.url!r}: give http(s)://host[:port][/path], "
                              "e.g. http://127.0.0.1:8080/v1")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise RemoteError(f"remote URL {self.url!r}: the port is not a number in 1-65535") from None
        if not (isinstance(self.timeout_s, int | float) and math.isfinite(self.timeout_s) and 0 < self.timeout_s <= 300):
            raise RemoteError(f"remote timeout_s: seconds in (0, 300], not {self.timeout_s!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise RemoteError(f"remote confidence: a number in [0, 1], not {self.confidence!r}")
        if self.max_reply_bytes < 1024 or self.max_tokens < 16:
            raise RemoteError("remote max_reply_bytes must be at least 1024 and max_tokens at least 16")
        if not self.model.strip():
            raise RemoteError("remote model: name the model the endpoint serves")

    @property
    def endpoint(self) -> str:
        parts = urlsplit(self.url)
        path = parts.path.rstrip("/")
        if not path.endswith("/chat/completions"):
            path += "/chat/completions" if path.endswith("/v1") else "/v1/chat/completions"
        return path + (f"?{parts.query}" if parts.query else "")


class _Fallback(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class RemoteTier:
    name = "remote"

    def __init__(self, url: str, home: Home, model: str = "default", timeout_s: float = 5.0,
                 api_key: str | None = None, confidence: float = REMOTE_CONFIDENCE,
                 redactor: PiiRedactor | None = None):
        self.config = RemoteConfig(url=url, model=model, timeout_s=timeout_s, confidence=confidence)
        self.home, self.api_key = home, api_key
        self.redactor = redactor or PiiRedactor(home)
        self.check = AnswerCheck(home)
        self.fallbacks: Counter = Counter()
        self.sent = 0  # requests that left the device
        self.last_redaction: Redaction | None = None
        self._prompt = _system_prompt(home, self.check)

    def answer(self, text: str, context: dict[str, Any] | None = None) -> Answer | None:
        redaction = self.redactor.redact(text)
        self.last_redaction = redaction
        try:
            reply = self._exchange(self._request(redaction.text, context))
            intent, slots = _parse(reply)
            slots = self.check.check(intent, slots, restore=redaction.restore)
        except (_Fallback, InvalidAnswer) as exc:
            self.fallbacks[exc.reason] += 1
            log.info("remote tier: no answer (%s): %s", exc.reason, exc)
            return None
        return Answer(intent, slots, tier=self.name, confidence=self.config.confidence)

    def _request(self, command: str, context: dict[str, Any] | None) -> bytes:
        system = self._prompt
        area = (context or {}).get("area")
        if isinstance(area, str) and area in {a.name for a in self.home.areas}:
            system += f"\nThe speaker is in the area {area}: a command that names no area means this one."
        body = {"model": self.config.model, "temperature": 0, "max_tokens": self.config.max_tokens,
                "response_format": {"type": "json_object"},
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": command}]}
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _exchange(self, body: bytes) -> bytes:
        """POST `body`; the reply's bytes, or _Fallback. Every blocking step gets only the time left."""
        parts = urlsplit(self.config.url)
        deadline = time.monotonic() + self.config.timeout_s

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Fallback("timeout", f"no complete reply within {self.config.timeout_s:g} s")
            return remaining

        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=left(), context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=left())
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            conn.connect()
            sock = conn.sock  # the response keeps reading from it after getresponse() lets go of it
            sock.settimeout(left())
            self.sent += 1
            conn.request("POST", self.config.endpoint, body=body, headers=headers)
            sock.settimeout(left())
            response = conn.getresponse()
            if not 200 <= response.status < 300:
                raise _Fallback("http_status", f"HTTP {response.status} {response.reason}")
            chunks, size = [], 0
            while True:
                sock.settimeout(left())
                chunk = response.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.config.max_reply_bytes:
                    raise _Fallback("too_large", f"the reply passed {self.config.max_reply_bytes} bytes")
                chunks.append(chunk)
            left()
            return b"".join(chunks)
        except TimeoutError:
            raise _Fallback("timeout", f"no complete reply within {self.config.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, reset, unreachable, TLS, broken
            raise _Fallback("connection", f"{type(exc).__name__}: {exc}") from None
        finally:
            conn.close()


def _parse(reply: bytes) -> tuple[Any, Any]:
    """The chat-completions reply -> (intent, slots), or _Fallback saying what was wrong with it."""
    try:  # strictly: NaN, a repeated key, a number past Python's digit limit or nesting past the stack is junk
        doc = strict_json.loads(reply)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Fallback("not_json", "the endpoint's reply is not JSON") from None
    try:
        content = doc["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Fallback("bad_shape", "not a chat-completions reply (no choices[0].message.content)") from None
    if not isinstance(content, str):
        raise _Fallback("bad_shape", "the message content is not text")
    content = content.strip()
    if content.startswith("```"):  # models fence JSON even when asked not to
        content = content.strip("`").removeprefix("json").strip()
    try:
        answer = strict_json.loads(content.encode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Fallback("not_json", f"the model's answer is not JSON: {content[:80]!r}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("intent"), str):
        raise _Fallback("bad_shape", 'the model\'s answer is not {"intent": ..., "slots": {...}}')
    return answer["intent"], answer.get("slots", {})


def _system_prompt(home: Home, check: AnswerCheck) -> str:
    entities = "; ".join(f"{e.name} ({e.domain}{', in ' + home.area(e.area).name if e.area else ''})"
                         for e in home.entities)
    intents = "\n".join(f"- {intent}: {', '.join(check.slot_names(intent)) or 'no slots'}"
                        for intent in sorted(check.intents))
    return (
        "You turn a smart-home command into Home Assistant's intent JSON. Answer with one JSON object and "
        'nothing else: {"intent": "<intent>", "slots": {"<slot>": <value>, ...}}.\n'
        "Use only these intents, each with only the slots listed:\n"
        f"{intents}\n"
        "The home's devices (name, domain, area): "
        f"{entities or 'none'}.\n"
        f"Areas: {', '.join(a.name for a in home.areas) or 'none'}. "
        f"Floors: {', '.join(f.name for f in home.floors) or 'none'}.\n"
        "Spell name, area and floor values exactly as listed; numbers as JSON numbers. Text in angle brackets "
        "(<PERSON>, <PHONE>, <EMAIL>, <ADDRESS>, <CODE>) was removed for privacy: copy it unchanged into a "
        "message or item slot if one needs it."
    )
