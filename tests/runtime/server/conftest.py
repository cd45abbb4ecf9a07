"""A real server on a free loopback port, in a background thread, over real bundles: the tiny synthetic
encoder (fast tier) or the trained one (`model` tier)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
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
        out = resp.status, dict(resp.getheaders()), resp.read()
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


async def shutdown(loop: asyncio.AbstractEventLoop, srv: Any) -> None:
    """Close the listener, cancel open connections, then stop: no task is left pending."""
    srv.close()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    loop.stop()


def start_server(config: Any) -> tuple[Running, Any]:
    from edgeslm.runtime.server.http import HttpServer, Limits
    from edgeslm.runtime.server.serve import build_app

    app = build_app(config)
    server = HttpServer(app, Limits(max_body_bytes=config.max_body_bytes, header_timeout_s=3), on_error=app.server_errors.inc)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(server.serve("127.0.0.1", 0))
        box["port"] = srv.sockets[0].getsockname()[1]
        box["srv"] = srv
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(30)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(shutdown(loop, box["srv"]), loop)
        thread.join(10)
        loop.close()
        app.close()

    return Running("127.0.0.1", box["port"], app), stop


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
