"""A real server on a free loopback port, in a background thread, over real bundles: the tiny synthetic
encoder (fast tier) or the trained one (`model` tier)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Running:
    host: str
    port: int
    app: Any

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None,
                raw: bytes | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        out = resp.status, resp.headers, resp.read()  # an HTTPMessage: header names case-insensitive
        conn.close()
        return out

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body)
        return status, json.loads(data)

    def send_raw(self, data: bytes, shut: bool = True) -> bytes:
        with socket.create_connection((self.host, self.port), timeout=15) as s:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    piece = s.recv(65536)
                except ConnectionResetError:
                    break
                if not piece:
                    break
                chunks.append(piece)
            return b"".join(chunks)


def start_server(config: Any, limits: Any = None) -> tuple[Running, Any]:
    """The real server (uvicorn, our protocol, the Starlette app) on a free port, in a thread."""
    from edgeslm.runtime.server.limits import Limits
    from edgeslm.runtime.server.serve import build_app

    app = build_app(config)
    limits = limits or Limits(max_body_bytes=config.max_body_bytes, header_timeout_s=3)
    return start_asgi(app.asgi(limits), limits, app.close, app)


def start_asgi(asgi: Any, limits: Any, close: Any = None, app: Any = None) -> tuple[Running, Any]:
    """Any ASGI app behind the server's own uvicorn configuration (serve.uvicorn_server)."""
    from edgeslm.runtime.server.serve import uvicorn_server

    server = uvicorn_server(asgi, "127.0.0.1", 0, limits)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(3000):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.01)
    assert server.started, "the test server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        if close:
            close()

    return Running("127.0.0.1", port, app), stop


@pytest.fixture(scope="module")
def encoder_server(session_bundle: Path) -> Iterator[Running]:
    from edgeslm.runtime.server.serve import ServeConfig

    running, stop = start_server(ServeConfig(bundles=[str(session_bundle)], port=0, max_body_bytes=64 * 1024))
    yield running
    stop()


@pytest.fixture(scope="module")
def tiny_server(tiny_bundle: Path) -> Iterator[Running]:
    """The whole server over the tiny synthetic encoder: every route and refusal, in milliseconds."""
    from edgeslm.runtime.server.serve import ServeConfig

    running, stop = start_server(ServeConfig(bundles=[str(tiny_bundle)], port=0, max_body_bytes=64 * 1024))
    yield running
    stop()
