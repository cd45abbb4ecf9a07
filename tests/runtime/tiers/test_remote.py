"""Tier 4 against a real HTTP server on 127.0.0.1 standing in for the remote LLM (the one thing here
outside the product): it records every request. Over the whole PII test set, at least 95% of the
labelled PII never reaches it while the home's names and setting numbers do; an endpoint that hangs,
drips, refuses, fails or lies gives no answer and one counted fallback, never an exception."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.data.pii_commands import held_out, pii_commands
from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.pii import PiiRedactor
from edgeslm.runtime.tiers.remote import RemoteConfig, RemoteError, RemoteTier, _Fallback, _parse
from edgeslm.runtime.tiers.router import Assistant

HOMES = Path(__file__).resolve().parents[3] / "homes"


class FakeLLM(BaseHTTPRequestHandler):
    """`server.mode` says how to behave; `server.received` keeps what came in."""

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = json.loads(body)
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "body": request})
        mode, command = self.server.mode, request["messages"][-1]["content"]
        if mode == "hang":
            self.server.release.wait(10)
            return
        if mode == "close":
            self.close_connection = True
            return
        if mode == "500":
            return self._send(500, b'{"error": "overloaded"}')
        if mode == "drip":  # headers at once, then a byte every 0.1 s: each read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Length", "200")
            self.end_headers()
            for _ in range(200):
                if self.server.release.wait(0.1):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()
            return
        if mode == "not-json":
            return self._send(200, b"<html>Bad gateway</html>")
        if mode == "huge":
            return self._send(200, b'{"x": "' + b"a" * (2 << 20) + b'"}')
        content = {
            "answer": self._answer(command),
            "invalid-intent": json.dumps({"intent": "HassLaunchRocket", "slots": {}}),
            "invented-entity": json.dumps({"intent": "HassTurnOn", "slots": {"name": "Hot Tub"}}),
            "unknown-slot": json.dumps({"intent": "HassTurnOn", "slots": {"name": self._entity(), "colour": "red"}}),
            "prose": "Sure! I would turn on the lamp for you.",
            "wrong-shape": json.dumps(["HassTurnOn"]),
            "broadcast": json.dumps({"intent": "HassBroadcast", "slots": {"message": command.split(" that ", 1)[-1]}}),
            "fenced": "```json\n" + self._answer(command) + "\n```",
        }[mode]
        self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode())

    def _entity(self):
        return self.server.home.entities[0].name

    def _answer(self, command):
        """What a good remote model would say: turn on the first of the home's devices it names."""
        lowered = command.lower()
        for e in sorted(self.server.home.entities, key=lambda e: -len(e.name)):
            if e.name.lower() in lowered:
                return json.dumps({"intent": "HassTurnOn", "slots": {"name": e.name}})
        return json.dumps({"intent": "HassNevermind", "slots": {}})

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def llm():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    server.daemon_threads = True
    server.mode, server.received, server.release = "answer", [], threading.Event()
    server.home = load_home(HOMES / "maple-cottage.yaml")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def url(server, path="/v1"):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_a_good_endpoint_answers_with_the_homes_spelling_and_the_remote_tier(llm):
    tier = RemoteTier(url(llm), llm.home, model="tiny", api_key="sk-test")
    answer = tier.answer("please turn on the floor lamp", {"area": "Living Room"})
    assert (answer.intent, answer.slots, answer.tier, answer.confidence) == (
        "HassTurnOn", {"name": "Floor Lamp"}, "remote", 0.9)
    request = llm.received[-1]
    assert request["path"] == "/v1/chat/completions" and request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "tiny" and request["body"]["messages"][-1]["content"] == "please turn on the floor lamp"
    system = request["body"]["messages"][0]["content"]
    assert "Floor Lamp (light, in Living Room)" in system and "HassTurnOn" in system and "in the area Living Room" in system
    assert not tier.fallbacks and tier.sent == 1


def test_the_url_may_be_a_base_a_v1_base_or_the_full_path():
    for url_given, path in [("http://h:1", "/v1/chat/completions"), ("http://h:1/", "/v1/chat/completions"),
                        ("http://h:1/v1", "/v1/chat/completions"), ("https://h/api/v1/", "/api/v1/chat/completions"),
                        ("http://h:1/openai/deployments/x/chat/completions?api-version=1",
                         "/openai/deployments/x/chat/completions?api-version=1")]:
        assert RemoteConfig(url=url_given).endpoint == path


@pytest.mark.parametrize("bad", [{"url": "ftp://host/v1"}, {"url": "host:8080"}, {"url": "http://h:99999/v1"},
                                 {"url": "http://h/v1", "timeout_s": 0}, {"url": "http://h/v1", "timeout_s": float("nan")},
                                 {"url": "http://h/v1", "model": " "}, {"url": "http://h/v1", "confidence": 2.0}])
def test_a_bad_setup_is_a_clear_error(bad):
    with pytest.raises(RemoteError):
        RemoteConfig(**bad)


def test_pii_never_reaches_the_endpoint_but_home_names_and_numbers_do(llm):
    """The whole labelled PII test set, through the tier and over HTTP, for both example homes."""
    spans = hidden = chars = hidden_chars = keep = arrived = 0
    for home_file in ("maple-cottage.yaml", "harbor-loft.yaml"):
        home = load_home(HOMES / home_file)
        llm.home, llm.received = home, []
        redactor = PiiRedactor(home)
        tier = RemoteTier(url(llm), home, redactor=redactor)
        rows = pii_commands(home) + held_out(home)
        for row in rows:
            tier.answer(row.text)
        sent = [r["body"]["messages"][-1]["content"] for r in llm.received]
        assert len(sent) == len(rows) and tier.sent == len(rows) and not tier.fallbacks
        for row, text in zip(rows, sent, strict=True):
            red = redactor.redact(row.text)
            assert text == red.text  # what left the device is the redacted command, nothing more
            gone = {i for s in red.spans for i in range(s.start, s.end)}
            for s in row.pii:
                spans += 1
                hidden += s.value.lower() not in text.lower() and set(range(s.start, s.end)) <= gone
                chars += s.end - s.start
                hidden_chars += len(set(range(s.start, s.end)) & gone)
            for s in row.keep:
                keep += 1
                arrived += s.value in text
    assert spans >= 600
    assert hidden / spans >= 0.95 and hidden_chars / chars >= 0.95, (hidden / spans, hidden_chars / chars)
    assert arrived / keep >= 0.99, arrived / keep


def test_a_hung_endpoint_is_cut_off_at_the_timeout(llm):
    llm.mode = "hang"
    tier = RemoteTier(url(llm), llm.home, timeout_s=0.3)
    started = time.monotonic()
    assert tier.answer("turn on the floor lamp") is None
    assert time.monotonic() - started < 1.5
    assert tier.fallbacks == {"timeout": 1}


def test_a_dripping_endpoint_is_cut_off_at_the_total_timeout_not_per_read(llm):
    llm.mode = "drip"
    tier = RemoteTier(url(llm), llm.home, timeout_s=0.5)
    started = time.monotonic()
    assert tier.answer("turn on the floor lamp") is None
    assert time.monotonic() - started < 2.0  # a per-read timeout would wait the whole 20 s
    assert tier.fallbacks == {"timeout": 1}


def test_a_refusing_endpoint_is_a_connection_fallback():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tier = RemoteTier(f"http://127.0.0.1:{port}/v1", load_home(HOMES / "maple-cottage.yaml"), timeout_s=1)
    assert tier.answer("turn on the floor lamp") is None
    assert tier.fallbacks == {"connection": 1}


@pytest.mark.parametrize("mode, reason", [
    ("500", "http_status"), ("close", "connection"), ("not-json", "not_json"), ("prose", "not_json"),
    ("wrong-shape", "bad_shape"), ("invalid-intent", "unknown_intent"), ("invented-entity", "bad_slot"),
    ("unknown-slot", "unknown_slot"), ("huge", "too_large"),
])
def test_an_endpoint_that_fails_or_lies_gives_no_answer_and_a_counted_reason(llm, mode, reason):
    llm.mode = mode
    tier = RemoteTier(url(llm), llm.home, timeout_s=3)
    assert tier.answer("turn on the floor lamp") is None
    assert tier.answer("turn on the floor lamp") is None
    assert tier.fallbacks == {reason: 2}


def _reply(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"content": content}}]}).encode()


@pytest.mark.parametrize("reply", [
    b'{"choices": [' + b"1" * 5000 + b"]}",  # past Python's digit limit: a ValueError that is not a JSONDecodeError
    b"[" * 100_000 + b"]" * 100_000,
    b'{"choices": [], "choices": [{"message": {"content": "{}"}}]}',  # which copy counts would be a guess
    _reply('{"intent": "HassTurnOn", "slots": {"brightness": ' + "9" * 5000 + "}}"),
    _reply('{"intent": "HassTurnOn", "slots": {"brightness": NaN}}'),
    _reply("[" * 100_000 + "]" * 100_000),
])
def test_a_reply_that_is_not_strict_json_is_a_not_json_fallback(reply):
    with pytest.raises(_Fallback) as info:
        _parse(reply)
    assert info.value.reason == "not_json"


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 JSONISH.map(lambda v: json.dumps(v).encode()),
                 JSONISH.map(lambda v: _reply(json.dumps(v))),
                 st.text(max_size=200).map(_reply)))
def test_any_reply_is_an_intent_and_slots_or_a_counted_fallback(reply):
    try:
        intent, slots = _parse(reply)
    except _Fallback as exc:
        assert exc.reason in ("not_json", "bad_shape")
        return
    assert isinstance(intent, str)  # the slots are checked against the home next (AnswerCheck)


def test_a_fenced_answer_is_read_and_a_message_gets_its_people_back_on_the_device(llm):
    llm.mode = "fenced"
    tier = RemoteTier(url(llm), llm.home)
    assert tier.answer("switch on the ceiling fan").slots == {"name": "Ceiling Fan"}
    llm.mode = "broadcast"
    answer = tier.answer("announce that Maria Gonzalez is at the door")
    assert llm.received[-1]["body"]["messages"][-1]["content"] == "announce that <PERSON> is at the door"
    assert (answer.intent, answer.slots) == ("HassBroadcast", {"message": "Maria Gonzalez is at the door"})


def test_the_assistant_falls_back_past_a_failing_remote_tier_without_crashing(llm):
    llm.mode = "500"
    tier = RemoteTier(url(llm), llm.home)
    assistant = Assistant([tier], load_profile("this-machine"))
    answer = assistant.ask("turn on the floor lamp")
    assert answer.tier == "none" and tier.fallbacks == {"http_status": 1}
    llm.mode = "answer"
    assert assistant.ask("turn on the floor lamp").slots == {"name": "Floor Lamp"}
