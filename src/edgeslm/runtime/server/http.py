"""HTTP/1.1 on asyncio streams: keep-alive, Content-Length bodies, chunked streaming responses.

Small on purpose: the device serves a handful of JSON routes, so a parser with hard limits (header
bytes, body bytes, read timeouts) is easier to trust than a framework. Anything it does not accept
gets a 4xx and the connection closes; nothing a client sends can reach the handler unvalidated.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 64
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class HttpError(Exception):
    """A request the server refuses, with the status and a message the client can act on."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        # The Content-Type is not checked: `curl -d` labels JSON as a form, and the body must parse anyway.
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(400, f"the body is not valid UTF-8 (byte {exc.start})") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise HttpError(400, "the body's JSON is nested too deeply") from None
        except ValueError:  # Python refuses integers past 4300 digits (a guard against quadratic parsing)
            raise HttpError(400, "the body's JSON has a number with too many digits") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None  # sent chunked as it is produced (server-sent events)
    on_close: Callable[[], None] | None = None  # called when a stream ends or the client leaves

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), headers=headers or {})

    @classmethod
    def error(cls, err: HttpError) -> Response:
        return cls.json({"error": {"message": err.message, "type": err.kind, "code": err.status}}, err.status,
                        err.headers)


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    header_timeout_s: float = 10.0  # slow clients cannot hold a connection open by trickling bytes
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0


class HttpServer:
    def __init__(self, handler: Handler, limits: Limits = Limits(), on_error: Callable[[], None] | None = None):
        self.handler, self.limits, self.on_error = handler, limits, on_error
        self.connections = 0

    async def serve(self, host: str, port: int) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._connection, host, port, limit=MAX_HEADER_BYTES, backlog=1024,
                                          reuse_address=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            first = True
            while True:
                try:
                    request = await self._read(reader, first)
                except HttpError as err:
                    await self._send(writer, Response.error(err), "HTTP/1.1", keep_alive=False)
                    return
                if request is None:
                    return
                first = False
                keep_alive = _keep_alive(request)
                try:
                    response = await self.handler(request)
                except HttpError as err:
                    response = Response.error(err)
                except Exception:  # a bug, not the client's fault: log it, count it, answer 500
                    log.exception("handler failed on %s %s", request.method, request.path)
                    if self.on_error:
                        self.on_error()
                    response = Response.error(HttpError(500, "internal error; see the server log", "server_error"))
                if not await self._send(writer, response, request.version, keep_alive, request.method == "HEAD"):
                    return
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections -= 1
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, first: bool) -> Request | None:
        timeout = self.limits.header_timeout_s if first else self.limits.idle_timeout_s
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise HttpError(400, "the request ended before its headers did") from None
            return None
        except asyncio.LimitOverrunError:
            raise HttpError(431, f"request headers exceed {MAX_HEADER_BYTES} bytes") from None
        except TimeoutError:
            if first:
                raise HttpError(408, "no complete request headers within the timeout") from None
            return None
        request = parse_head(head)
        length = content_length(request.headers, self.limits.max_body_bytes)
        if length:
            try:
                request.body = await asyncio.wait_for(reader.readexactly(length), self.limits.body_timeout_s)
            except TimeoutError:
                raise HttpError(408, f"the body did not arrive within {self.limits.body_timeout_s:g} s") from None
            except asyncio.IncompleteReadError as exc:  # the client stopped sending: tell it why, then close
                raise HttpError(400, f"the body ended after {len(exc.partial)} of the {length} bytes its "
                                     "Content-Length announced") from None
        return request

    async def _send(self, writer: asyncio.StreamWriter, response: Response, version: str, keep_alive: bool,
                    head_only: bool = False) -> bool:
        head = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
                f"Content-Type: {response.content_type}"]
        head += [f"{k}: {v}" for k, v in response.headers.items()]
        chunked = response.stream is not None and version == "HTTP/1.1"
        if response.stream is not None:
            head.append("Cache-Control: no-cache")
            if chunked:
                head.append("Transfer-Encoding: chunked")
            else:
                keep_alive = False  # HTTP/1.0 has no chunking: the end of the stream is the end of the connection
        else:
            head.append(f"Content-Length: {len(response.body)}")
        head.append("Connection: keep-alive" if keep_alive else "Connection: close")
        # The answer to HEAD has no body, whatever its Content-Length says: a client reads the next
        # response right after the headers, so body bytes here would corrupt it.
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else response.body))
        if response.stream is None or head_only:
            try:
                await writer.drain()
            finally:
                if response.stream is not None and response.on_close:  # a stream never started is over too
                    response.on_close()
            return response.stream is None
        try:
            complete = True
            stream = aiter(response.stream)
            while True:
                try:
                    piece = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception:
                    # The status line is gone, so no 500 can be sent: the producer should end its stream
                    # with an error event of its own (app.py does). If it raised instead, end the chunked
                    # body cleanly so the client is not left waiting, count it, and close the connection:
                    # a cut-short body must not look like a complete answer on a reused connection.
                    log.exception("the response stream failed")
                    if self.on_error:
                        self.on_error()
                    complete = False
                    break
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
            return complete
        except ConnectionError:
            return False
        finally:
            if response.on_close:
                response.on_close()


def parse_head(head: bytes) -> Request:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "request line and headers must be ASCII") from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/"):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, f"{version[:20]!r} is not served; use HTTP/1.1")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise HttpError(400, "malformed header line")
        key = name.lower()
        value = value.strip()
        if key in headers and key == "content-length" and headers[key] != value:
            raise HttpError(400, "conflicting Content-Length headers")
        headers[key] = value
    return Request(method, target.split("?", 1)[0], version, headers)


def content_length(headers: dict[str, str], limit: int) -> int:
    if "transfer-encoding" in headers:
        raise HttpError(411, "chunked request bodies are not accepted; send Content-Length")
    raw = headers.get("content-length", "0")
    if not raw.isdigit() or not raw.isascii():
        raise HttpError(400, "Content-Length must be a non-negative integer")
    length = int(raw)
    if length > limit:
        raise HttpError(413, f"the body of {length} bytes exceeds the limit of {limit}")
    return length


def _keep_alive(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"
