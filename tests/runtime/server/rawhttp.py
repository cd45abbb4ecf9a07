"""A strict HTTP/1.1 response reader over a raw socket, for tests that must see the framing itself:
a chunked body has to end with its zero-length chunk, not with the connection closing."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any, BinaryIO, Self


class Framing(AssertionError):
    """The response is not well-formed HTTP/1.1 (the connection ended early, a bad chunk size...)."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    chunked: bool

    def json(self) -> Any:
        return json.loads(self.body)

    def sse(self) -> list[str]:
        """The data lines of a server-sent-events body, in order ("[DONE]" included)."""
        text = self.body.decode("utf-8")
        if text and not text.endswith("\n\n"):
            raise Framing(f"the event stream ends inside an event: {text[-80:]!r}")
        return [event[len("data: "):] for event in text.split("\n\n") if event.startswith("data: ")]


def _line(f: BinaryIO, what: str) -> bytes:
    line = f.readline(65537)
    if not line.endswith(b"\r\n"):
        raise Framing(f"the connection ended (or a line ran on) inside {what}: {line[:80]!r}")
    return line[:-2]


def read_reply(f: BinaryIO, head: bool = False) -> Reply:
    """Read one response from a socket file; raises Framing unless it is complete and well-framed.
    `head`: the answer to a HEAD request, which has headers only, whatever Content-Length says."""
    status_line = _line(f, "the status line")
    version, status, _ = status_line.decode("latin-1").split(" ", 2)
    if version != "HTTP/1.1":
        raise Framing(f"status line {status_line!r}")
    headers: dict[str, str] = {}
    while line := _line(f, "the headers"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    chunked = headers.get("transfer-encoding") == "chunked"
    if head:
        body = b""
    elif chunked:
        body = b""
        while True:
            size = _line(f, "a chunk size")
            try:
                n = int(size, 16)
            except ValueError:
                raise Framing(f"bad chunk size {size!r}") from None
            if n == 0:
                if _line(f, "the end of the chunked body") != b"":
                    raise Framing("trailers after the last chunk")
                break
            data = f.read(n + 2)
            if len(data) != n + 2 or not data.endswith(b"\r\n"):
                raise Framing(f"the connection ended inside a chunk of {n} bytes")
            body += data[:-2]
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
        if len(body) != int(headers["content-length"]):
            raise Framing("the connection ended inside the body")
    else:
        body = f.read()
    return Reply(int(status), headers, body, chunked)


class Client:
    """One keep-alive connection: send requests, read strictly framed replies."""

    def __init__(self, host: str, port: int, timeout: float = 30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", "Host: test", f"Content-Length: {len(data)}",
                *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        self.send(method, path, body, headers)
        return read_reply(self.file)

    def closed_by_peer(self) -> bool:
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
