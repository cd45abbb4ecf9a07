"""Start the control plane: open the registry (migrating it), read or create the admin token, write the
broker's files when asked, and serve the API with uvicorn under the device server's HTTP limits
(runtime/server/protocol.py: header deadline, header size and count caps)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.fleet.api import MAX_JSON_BYTES, FleetApp
from edgeslm.fleet.credentials import load_or_create_admin_token
from edgeslm.fleet.registry import DEFAULT_MAX_BUNDLE_BYTES, Registry, RegistryConfig

log = logging.getLogger(__name__)

STATE_ENV = "EDGESLM_FLEET_STATE"
DEFAULT_STATE = "fleet-state"
DB_FILE, STORE_DIR = "registry.sqlite", "bundles"


def default_state() -> str:
    return os.environ.get(STATE_ENV, DEFAULT_STATE)


@dataclass(frozen=True)
class FleetServerConfig(Config):
    state: str = DEFAULT_STATE  # the admin token, the broker's password, and by default the database and the store
    db: str | None = None  # a SQLite path or a postgresql:// URL; default STATE/registry.sqlite
    store: str | None = None  # the bundle store's folder; default STATE/bundles
    trust: str | None = None  # the public key(s) bundles and policies must be signed by
    allow_unsigned: bool = False
    host: str = "127.0.0.1"
    port: int = 8700
    max_json_bytes: int = MAX_JSON_BYTES
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    mosquitto_dir: str | None = None  # write passwd and acl here for the broker
    mosquitto_pid_file: str | None = None  # and SIGHUP this Mosquitto after each change
    broker: str | None = None  # HOST:PORT of the MQTT broker: carry rollouts out (fleet/rollout_engine.py); None: API only
    public_url: str | None = None  # where devices download bundles; default http://HOST:PORT of this server

    def validate(self) -> None:
        if not self.state:
            raise ConfigError("FleetServerConfig.state: the control plane's folder")
        if not 0 <= self.port <= 65535:
            raise ConfigError("FleetServerConfig.port must be in 0..65535 (0 picks a free port)")
        if not 1 << 10 <= self.max_json_bytes <= 16 << 20:
            raise ConfigError("FleetServerConfig.max_json_bytes must be between 1 KiB and 16 MiB")
        if self.mosquitto_pid_file is not None and self.mosquitto_dir is None:
            raise ConfigError("--mosquitto-pid-file needs --mosquitto-dir (where the broker's files are written)")
        if self.trust is None and not self.allow_unsigned:
            raise ConfigError("give the public key(s) bundles must be signed by (--trust KEYS, from `edgeslm keys new`), "
                              "or --allow-unsigned for a test fleet")
        self.registry_config()  # its own checks (db URL scheme, bundle size cap)
        if self.broker is not None:
            from edgeslm.agent.config import parse_broker

            parse_broker(self.broker)
            if self.public_url is None and self.host in ("0.0.0.0", "::", ""):
                raise ConfigError(f"--host {self.host} listens on every address: give --public-url, the address devices "
                                  "download bundles from")

    def registry_config(self) -> RegistryConfig:
        state = Path(self.state)
        return RegistryConfig(db=self.db or str(state / DB_FILE), store=self.store or str(state / STORE_DIR),
                              trust=self.trust, allow_unsigned=self.allow_unsigned, max_bundle_bytes=self.max_bundle_bytes)


def open_state(state: str) -> Path:
    path = Path(state)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the control plane's folder {path}: {exc.strerror}") from None
    return path


def build(config: FleetServerConfig) -> FleetApp:
    """The registry and the app, ready to serve; the caller closes app.registry."""
    state = open_state(config.state)
    token = load_or_create_admin_token(state)
    registry = Registry.open(config.registry_config())
    try:
        if config.mosquitto_dir is not None:
            from edgeslm.fleet.broker import BrokerFiles

            files = BrokerFiles(Path(config.mosquitto_dir), state,
                                Path(config.mosquitto_pid_file) if config.mosquitto_pid_file else None)
            files.write(registry)
            registry.on_credentials_changed.append(files)
        return FleetApp(registry, token, config.max_json_bytes)
    except BaseException:
        registry.close()
        raise


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM/SIGINT stop the server gracefully and serve() returns, so the process exits 0 (uvicorn would
        re-raise the signal, which a service manager reads as a crash). A second Ctrl-C stops waiting."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def uvicorn_server(asgi: Any, host: str, port: int) -> uvicorn.Server:
    """uvicorn with the device server's protocol limits; no access log (a URL is harmless, but a log that never
    sees requests cannot leak one), no server header, X-Forwarded-* not trusted."""
    from edgeslm.runtime.server.protocol import protocol_class

    config = uvicorn.Config(asgi, host=host, port=port, http=protocol_class(10.0), loop="asyncio", lifespan="off",
                            ws="none", access_log=False, server_header=False, timeout_keep_alive=30, backlog=2048,
                            log_config=None, proxy_headers=False, timeout_graceful_shutdown=5)
    return _Server(config)


def serve(config: FleetServerConfig, ready: Callable[[str, int, Path], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. `ready(host, port, admin_token_path)` once listening."""
    app = build(config)
    server = uvicorn_server(app.asgi(), config.host, config.port)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                try:
                    await task
                except SystemExit:
                    pass
                raise ConfigError(f"could not listen on {config.host}:{config.port}; see the log above")
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        log.info("control plane listening on %s:%d", host, port)
        if config.broker is not None:
            rollouts.append(_start_rollouts(app, config, host, port))
        if ready:
            ready(host, port, Path(config.state) / "admin-token")
        await task

    rollouts: list[Any] = []
    try:
        asyncio.run(main())
    finally:
        for service in rollouts:
            service.stop()
        app.registry.close()


def _start_rollouts(app: FleetApp, config: FleetServerConfig, host: str, port: int) -> Any:
    from edgeslm.agent.config import parse_broker
    from edgeslm.fleet.broker import control_plane_password
    from edgeslm.fleet.link import LinkConfig
    from edgeslm.fleet.rollout_engine import EngineConfig, start_rollouts

    broker_host, broker_port = parse_broker(config.broker or "")
    url = config.public_url or f"http://{host}:{port}"
    return start_rollouts(app.registry, LinkConfig(broker_host=broker_host, broker_port=broker_port),
                          control_plane_password(Path(config.state)), EngineConfig(public_url=url))
