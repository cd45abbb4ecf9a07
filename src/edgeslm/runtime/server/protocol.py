"""uvicorn's httptools protocol, with the limits a device needs that uvicorn leaves out:

- a deadline for each request's headers (10 s), so a client trickling bytes cannot hold a connection;
- at most 16 KiB and 64 lines of headers (llhttp itself has no cap), 431 beyond;
- HTTP/1.0 and 1.1 only (505 otherwise);
- a request cut short (its headers, or its body before Content-Length bytes) answered with a 400
  that says so, not a silent close;
- every refusal as the same JSON error body the routes use.

Parsing, keep-alive, pipelining, `Expect: 100-continue`, HEAD and flow control stay uvicorn's and
llhttp's. This subclasses uvicorn's protocol class, which is not a public API: pyproject pins the
range of uvicorn it was written against, and tests/runtime/server/test_http.py checks each limit.
"""

from __future__ import annotations

import asyncio
import logging

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from edgeslm.runtime.server.errors import HttpError

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 64
HTTP_VERSIONS = ("1.0", "1.1")


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the refusal itself is kept on the protocol."""


class EdgeHttpProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0  # per request, from its first byte (or the connection's start) to its blank line

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._refusal: HttpError | None = None
        self._in_head = self._in_body = False
        self._requests = 0
        self._head_bytes = self._header_count = self._body_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout_s, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # served as plain HTTP/1.1, as uvicorn does without websockets
        except httptools.HttpParserError as exc:
            reason = _reason(exc)
            if self._refusal is None and "HTTP version" in reason:  # llhttp knows only 0.9, 1.x and 2.0
                self._refusal = HttpError(505, f"{reason}; use HTTP/1.1")
            self._refuse(self._refusal or HttpError(400, f"malformed request: {reason}"))

    def eof_received(self) -> None:
        """The client closed its side. Mid-request, tell it why its request is not answered."""
        if self._in_head:
            self._refuse(HttpError(400, "the request ended before its headers did"))
        elif self._in_body and self.cycle is not None and not self.cycle.response_started:
            announced = dict(self.headers).get(b"content-length", b"?").decode("latin-1")
            self.cycle.disconnected = True  # the route waiting for the body gets a disconnect and stops
            self.cycle.message_event.set()
            self._refuse(HttpError(400, f"the body ended after {self._body_bytes} of the {announced} bytes its "
                                        "Content-Length announced"))

    # -- parser callbacks ----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._header_count, self._body_bytes = True, 0, 0, 0
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_late)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._stop(HttpError(431, f"more than {MAX_HEADERS} headers"))
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._in_head, self._in_body = False, True
        self._requests += 1
        version = self.parser.get_http_version()
        if version == "0.9":  # what llhttp makes of a request line with no version
            self._stop(HttpError(400, "malformed request line: METHOD /path HTTP/1.1"))
        if version not in HTTP_VERSIONS:
            self._stop(HttpError(505, f"HTTP/{version[:10]} is not served; use HTTP/1.1"))
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    # -- refusals ------------------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:  # uvicorn's own refusals, as JSON like ours
        self._refuse(HttpError(400, msg))

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEADER_BYTES:
            self._stop(HttpError(431, f"request headers exceed {MAX_HEADER_BYTES} bytes"))

    def _stop(self, err: HttpError) -> None:
        self._refusal = err
        raise _Refused(err.message)

    def _head_late(self) -> None:
        self._head_timer = None
        if self._in_head or self._requests == 0:
            self._refuse(HttpError(408, f"no complete request headers within {self.header_timeout_s:g} s"))

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, err: HttpError) -> None:
        """Answer with err and close. While an earlier (pipelined) answer is still being written, only
        close once it is out: two responses must never interleave."""
        self._cancel_head_timer()
        self._in_head = self._in_body = False
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        body = err.body()
        head = [STATUS_LINE[err.status], b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
        head += [f"{k}: {v}\r\n".encode("latin-1") for k, v in err.headers.items()]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        self.transport.close()


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def protocol_class(header_timeout_s: float) -> type[EdgeHttpProtocol]:
    """The protocol with this server's header deadline (uvicorn builds one instance per connection)."""
    return type("EdgeHttpProtocol", (EdgeHttpProtocol,), {"header_timeout_s": header_timeout_s})
