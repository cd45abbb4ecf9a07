"""The control plane in its own process, as `edgeslm fleet server` composes it, with the simulator's instruments: HTTP
requests and bytes by route kind, and the registry's transactions."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.fleet.proc import more_files


class _Counting:
    """ASGI middleware (the simulator's instrument, not the product's): requests and body bytes by route kind."""

    def __init__(self, app: Any, stats: dict[str, int]):
        self.app, self.stats = app, stats

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        kind = "archive" if scope["path"].endswith("/archive") else "enrol" if scope["path"] == "/v1/enrol" else "other"
        self.stats[f"http_{kind}_requests"] = self.stats.get(f"http_{kind}_requests", 0) + 1

        ranged = dict(scope["headers"]).get(b"range", b"bytes=0-")

        async def counted(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 206 and ranged != b"bytes=0-":
                self.stats["http_archive_resumed"] = self.stats.get("http_archive_resumed", 0) + 1  # a download resumed
            elif message["type"] == "http.response.body":
                self.stats[f"http_{kind}_bytes"] = self.stats.get(f"http_{kind}_bytes", 0) + len(message.get("body", b""))
            await send(message)
        await self.app(scope, receive, counted)


def _count_transactions(db: Any, stats: dict[str, int]) -> None:
    """Count the registry's write and read transactions (the simulator's instrument: the same object every part uses)."""
    inner = db.transaction

    def transaction(write: bool = True) -> Any:
        key = "db_write_transactions" if write else "db_read_transactions"
        stats[key] = stats.get(key, 0) + 1
        return inner(write)
    db.transaction = transaction


def _control_plane_main(spec: dict[str, Any], conn: Any) -> None:
    """The control plane as `edgeslm fleet server` composes it (server.build: registry, admin token, broker files; the
    API under uvicorn; the MQTT link and the rollout engine), until the simulator says stop."""
    logging.basicConfig(filename=spec["log"], level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    more_files()
    from edgeslm.fleet.broker import control_plane_password
    from edgeslm.fleet.link import DeviceLink, LinkConfig
    from edgeslm.fleet.rollout_engine import EngineConfig, RolloutEngine
    from edgeslm.fleet.server import FleetServerConfig, build, uvicorn_server

    stats: dict[str, int] = {}
    app = build(FleetServerConfig(state=spec["state"], db=spec["db"], trust=spec["trust"], host="127.0.0.1", port=0,
                                  mosquitto_dir=spec["mosquitto_dir"], mosquitto_pid_file=spec["mosquitto_pid_file"]))
    _count_transactions(app.registry.db, stats)
    server = uvicorn_server(_Counting(app.asgi(), stats), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    conn.send({"url": url, "pid": os.getpid()})
    link = DeviceLink(app.registry, LinkConfig(broker_host=spec["broker_host"], broker_port=spec["broker_port"],
                                               reconnect_min_s=0.2, reconnect_max_s=2.0),
                      control_plane_password(Path(spec["state"])))
    engine = RolloutEngine(app.registry, link, EngineConfig(public_url=url))
    link.start()
    engine.start()
    try:
        while True:
            message = conn.recv()
            if message == "stop":
                break
            if message == "stats":
                conn.send({**stats, "link_received": link.received, "link_refused": link.refused,
                           "link_connected": link.connected.is_set(), "threads": threading.active_count()})
    finally:
        engine.stop()
        link.stop()
        server.should_exit = True
        thread.join(10)
        app.registry.close()


class ControlPlane:
    def __init__(self, spec: dict[str, Any]):
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks inherited from ours
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_control_plane_main, args=(spec, child), name="edgeslm-controlplane", daemon=True)
        self.proc.start()
        if not self._conn.poll(120):
            raise EdgeslmError(f"the control plane did not start within 120 s; see {spec['log']}")
        hello = self._conn.recv()
        self.url, self.pid = hello["url"], hello["pid"]

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return self._conn.recv() if self._conn.poll(30) else {}

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self._conn.send("stop")
            except OSError:
                pass
            self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)

