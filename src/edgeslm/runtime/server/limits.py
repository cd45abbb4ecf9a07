"""ASGI middleware that reads each request's body before any route sees it: refused when chunked
(411), when Content-Length exceeds the limit (413, before a byte of it is read) or when it does not
arrive in time (408). Routes then get the whole body at once; the header limits are the protocol's
(protocol.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from edgeslm.runtime.server.errors import HttpError

Scope = dict[str, Any]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    header_timeout_s: float = 10.0  # slow clients cannot hold a connection open by trickling bytes
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0  # a kept-alive connection with no next request


class _Gone(Exception):
    """The client left before its body was in: nothing to answer."""


class BodyLimits:
    def __init__(self, app: Any, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            body = await self._read(scope, receive)
        except HttpError as err:
            await send_error(send, err, close=True)  # the rest of the body is not read: do not reuse the connection
            return
        except _Gone:
            return
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # from here on, only http.disconnect: a stream watches for it

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Any) -> bytes:
        headers = dict(scope["headers"])
        if b"transfer-encoding" in headers:
            raise HttpError(411, "chunked request bodies are not accepted; send Content-Length")
        raw = headers.get(b"content-length", b"0")
        length = int(raw) if raw.isdigit() else 0  # llhttp has refused any other spelling already
        if length > self.limits.max_body_bytes:
            raise HttpError(413, f"the body of {length} bytes exceeds the limit of {self.limits.max_body_bytes}")
        if length == 0:
            return b""
        chunks, got = [], 0
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Gone
                    chunks.append(message.get("body", b""))
                    got += len(chunks[-1])
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise HttpError(408, f"the body did not arrive within {self.limits.body_timeout_s:g} s "
                                 f"({got} of {length} bytes)") from None
        return b"".join(chunks)


async def send_error(send: Any, err: HttpError, close: bool = False) -> None:
    body = err.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
