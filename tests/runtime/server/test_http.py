"""The HTTP layer on its own: uvicorn with our protocol limits and body limits, around a tiny echo
application, over real sockets. The routes come in test_app.py and the *_server.py files."""

from __future__ import annotations

import io
import json
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.runtime.server.errors import HttpError, parse_json
from edgeslm.runtime.server.limits import BodyLimits, Limits, send_error

from .conftest import start_asgi
from .rawhttp import Client, Framing, read_reply


async def echo(scope, receive, send):
    body = (await receive())["body"]
    path = scope["path"]
    if path.startswith("/stream"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for piece in (b"one\n", b"two\n", b"three\n"):
            if piece == b"three\n" and path == "/stream-boom":
                raise RuntimeError("a bug in the stream")
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    try:
        data = parse_json(body) if body else None
    except HttpError as err:
        await send_error(send, err)
        return
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    out = json.dumps({"method": scope["method"], "path": path, "body": data, "headers": headers}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


LIMITS = Limits(max_body_bytes=1024, header_timeout_s=2, body_timeout_s=2, idle_timeout_s=5)


@pytest.fixture(scope="module")
def address():
    running, stop = start_asgi(BodyLimits(echo, LIMITS), LIMITS)
    yield running.host, running.port
    stop()


def exchange(address, data: bytes, shut: bool = True) -> bytes:
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while piece := s.recv(65536):
            out += piece
        return out


def status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def test_keep_alive_serves_two_requests_on_one_connection(address):
    req = b'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{"x":1}'
    out = exchange(address, req + req.replace(b"/a", b"/b"))
    assert out.lower().count(b"http/1.1 200 ok") == 2
    assert b'"path": "/a"' in out and b'"path": "/b"' in out


def test_http10_closes_after_its_answer(address):
    out = exchange(address, b"GET /x HTTP/1.0\r\n\r\nGET /y HTTP/1.0\r\n\r\n")
    assert out.count(b" 200 ") == 1 and b"connection: close" in out.lower()


@pytest.mark.parametrize("raw, code", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /x HTTP/2.0\r\n\r\n", 505),
    (b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    (b"POST /x HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
    (b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),
    # both framings at once is how requests are smuggled past a proxy: llhttp refuses it
    (b"POST /x HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\n\xff\xfe{}", 400),
    (b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops", 400),
    (b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nNaN", 400),
    (b"GET /x HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"GET /x HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(65)) + b"\r\n", 431),
    (b"GET /x HTTP/1.1\r\nHost: x", 400),  # the client stopped before the headers ended
    (b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}", 400),  # ...or before its body did
])
def test_malformed_requests_get_4xx_and_a_json_reason(address, raw, code):
    out = exchange(address, raw)
    reply = read_reply(io.BytesIO(out))
    assert reply.status == code, out[:300]
    assert reply.json()["error"]["code"] == code and reply.json()["error"]["message"]


def test_a_short_body_says_how_much_arrived(address):
    reply = read_reply(io.BytesIO(exchange(address, b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}")))
    assert "2 of the 10 bytes" in reply.json()["error"]["message"]


def test_the_body_must_arrive_in_time(address):
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
        started = time.monotonic()
        reply = read_reply(s.makefile("rb"))
        assert reply.status == 408 and "did not arrive" in reply.json()["error"]["message"]
        assert 1.5 < time.monotonic() - started < 8


def test_a_client_that_never_finishes_its_headers_is_timed_out(address):
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\n")
        started = time.monotonic()
        reply = read_reply(s.makefile("rb"))
        assert reply.status == 408 and time.monotonic() - started < 8


def test_trickling_header_bytes_does_not_reset_the_deadline(address):
    """A slowloris client sends a byte a second; the deadline runs from the request's first byte."""
    with socket.create_connection(address, timeout=10) as s:
        started = time.monotonic()
        try:
            for byte in b"GET /slow HTTP/1.1\r\nX-Slow: " + b"a" * 20:
                s.sendall(bytes([byte]))
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = s.recv(4096)
        assert status(data) == 408 and time.monotonic() - started < 5


def test_a_silent_connection_is_timed_out_too(address):
    with socket.create_connection(address, timeout=10) as s:
        assert status(s.recv(4096)) == 408


def test_a_stream_is_chunked_and_the_connection_kept(address):
    with Client(*address, timeout=10) as c:
        reply = c.request("GET", "/stream")
        assert reply.status == 200 and reply.chunked and reply.body == b"one\ntwo\nthree\n"
        assert c.request("GET", "/after").json()["path"] == "/after"


def test_a_stream_that_fails_midway_is_visibly_cut_short(address):
    """The status line is gone, so no 500 can be sent: the connection closes without the last chunk,
    and a client sees an incomplete body, never a complete-looking answer."""
    with Client(*address, timeout=10) as c:
        with pytest.raises(Framing):
            c.request("GET", "/stream-boom")
    assert status(exchange(address, b"GET /fine HTTP/1.1\r\n\r\n")) == 200


def test_expect_100_continue_is_honoured(address):
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(b"POST /x HTTP/1.1\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(b'{"x":1}')
        assert read_reply(s.makefile("rb")).json()["body"] == {"x": 1}


TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~", min_size=1, max_size=10)
VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["GET", "POST", "DELETE", "PUT"]), st.sampled_from(["/", "/v1/classify", "/a?b=c", "/x/y"]),
       st.dictionaries(TOKEN.filter(lambda k: k.lower() not in ("content-length", "transfer-encoding", "expect",
                                                                  "connection", "upgrade")), VALUE, max_size=6))
def test_a_well_formed_request_arrives_as_it_was_sent(address, method, target, headers):
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    reply = read_reply(io.BytesIO(exchange(address, head.encode())))
    assert reply.status == 200
    got = reply.json()
    assert got["method"] == method and got["path"] == target.split("?", 1)[0]
    assert {k.lower(): v for k, v in headers.items()}.items() <= got["headers"].items()


def check_any_bytes(address, data: bytes) -> None:
    out = exchange(address, data)
    if not out:
        return  # nothing complete was asked, or the connection was closed cleanly
    reply = read_reply(io.BytesIO(out))  # strict: status line, headers, exactly Content-Length bytes
    assert reply.status in (200, 400, 404, 405, 408, 411, 413, 431, 505), reply.status
    assert reply.status == 200 or "error" in reply.json()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_get_a_well_framed_answer_or_a_clean_close(address, data):
    check_any_bytes(address, data)


@pytest.mark.slow
@settings(max_examples=3_000, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 st.builds(lambda a, b: a + b, st.sampled_from([b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\n"]),
                           st.binary(max_size=300))))
def test_any_bytes_3k(address, data):
    check_any_bytes(address, data)
