"""Fixtures of the control plane's tests: a real PostgreSQL cluster started from Debian's binaries for the
session (initdb and pg_ctl in a temporary folder, a free port, stopped at the end), the registry on SQLite
and on PostgreSQL (the same tests run on both), bundles to publish, signing keys, and the real HTTP server
(uvicorn in a thread, on a free port) that the API tests talk to over sockets.

A missing PostgreSQL is installed here when this runs as root (as `make test` does); otherwise the
fixture fails with the command to run. It never skips."""

from __future__ import annotations

import glob
import http.client
import io
import itertools
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeslm.formats.archive import write_archive
from edgeslm.formats.writer import BundleWriter

PG_START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and os.geteuid() == 0:
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql",
                       shell=True, check=True, capture_output=True, timeout=900)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: run `make test` (it installs Debian's postgresql package) or "
                    "apt-get install -y postgresql", pytrace=False)
    return Path(found[-1]).parent


@dataclass
class PgCluster:
    port: int
    admin_url: str
    _names = itertools.count()

    def url(self, database: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + f"/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on the cluster; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster: postgres refuses to run as root, so as root it runs as the postgres user."""
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="edgeslm-pg-"))
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, env=env, timeout=PG_START_TIMEOUT_S)
    # fsync off: a test cluster that dies is thrown away anyway, and commits cost no disk flush on a shared 2-core box
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " \
              "-c full_page_writes=off -c max_connections=200"
    started = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                              "-w", "-t", str(PG_START_TIMEOUT_S), "start"], capture_output=True, env=env, text=True)
    if started.returncode != 0:
        log = (root / "log").read_text(errors="replace")[-2000:] if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {started.stderr[-1000:]} {log}", pytrace=False)
    try:
        yield PgCluster(port, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=PG_START_TIMEOUT_S)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same storage test on SQLite (a file) and on PostgreSQL (a fresh database of the session's cluster)."""
    if request.param == "sqlite":
        return str(tmp_path / "registry.sqlite")
    return request.getfixturevalue("pg_cluster").new_database()


@pytest.fixture
def registry(db_target: str, tmp_path: Path) -> Iterator[Any]:
    from edgeslm.fleet.registry import Registry, RegistryConfig

    with Registry.open(RegistryConfig(db=db_target, store=str(tmp_path / "store"), allow_unsigned=True)) as reg:
        yield reg


# --- bundles ------------------------------------------------------------------------------------------------

def make_decoder_bundle(out: Path, size: int = 4096, name: str = "tiny-decoder", seed: int = 0) -> Path:
    """A verified decoder bundle whose model file is `size` random bytes: the registry and the store never load
    a model, so any size is a test away (the full-disk test needs one larger than its disk)."""
    rng = __import__("random").Random(seed)
    with BundleWriter(Path(out)) as writer:
        writer.path("model.gguf").write_bytes(rng.randbytes(size))
        writer.finish(name=name, family="decoder", architecture="llama", task="text-generation", engine="llama.cpp",
                      model_file="model.gguf", provenance={"base_model": "none: random bytes (tests/fleet/conftest.py)"})
    return Path(out)


def archive_bytes(folder: Path) -> bytes:
    buf = io.BytesIO()
    write_archive(folder, buf)
    return buf.getvalue()


@pytest.fixture
def decoder_bundle(tmp_path: Path) -> Path:
    return make_decoder_bundle(tmp_path / "decoder")


@pytest.fixture(scope="session")
def make_bundle():
    """make_decoder_bundle(out, size=4096, name=..., seed=0): a test's own bundle (conftest is not importable)."""
    return make_decoder_bundle


@pytest.fixture(scope="session")
def archive_of():
    """archive_bytes(folder): the archive `edgeslm fleet publish` would upload for a bundle folder."""
    return archive_bytes


@dataclass(frozen=True)
class Keys:
    trust: Path  # the trusted .pub
    key: Path
    other_key: Path  # a key the control plane does not trust


@pytest.fixture(scope="session")
def fleet_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    from edgeslm.formats.signing import generate_keys

    folder = tmp_path_factory.mktemp("fleet-keys")
    good = generate_keys(folder / "trusted", "operator")
    bad = generate_keys(folder / "untrusted", "stranger")
    return Keys(good.public, good.private, bad.private)


# --- the real server ----------------------------------------------------------------------------------------

@dataclass
class Server:
    host: str
    port: int
    admin_token: str
    app: Any

    @property
    def registry(self) -> Any:
        return self.app.registry

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                token: str | None = None) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        out = resp.status, resp.headers, resp.read()
        conn.close()
        return out

    def json(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        status, _, raw = self.request(method, path, data, {"Content-Type": "application/json"}, token)
        return status, json.loads(raw)

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.json(method, path, body, self.admin_token)

    def enrol(self, **token_spec: Any) -> dict[str, Any]:
        """A new device, enrolled through the API; its credentials (device_id, secret, mqtt_*)."""
        status, tok = self.admin("POST", "/v1/enrolment-tokens", token_spec)
        assert status == 201, tok
        status, creds = self.json("POST", "/v1/enrol", {"token": tok["token"], "profile": "rpi4", "isa": ["neon"]})
        assert status == 201, creds
        return creds


def start_server(registry: Any, admin_token: str | None = None) -> tuple[Server, Any]:
    from edgeslm.fleet.api import FleetApp
    from edgeslm.fleet.server import uvicorn_server

    token = admin_token or secrets.token_urlsafe(32)
    app = FleetApp(registry, token)
    server = uvicorn_server(app.asgi(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the control plane did not start"
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return Server("127.0.0.1", port, token, app), stop


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The control plane over a SQLite registry that accepts unsigned bundles."""
    from edgeslm.fleet.registry import Registry, RegistryConfig

    with Registry.open(RegistryConfig(db=str(tmp_path / "registry.sqlite"), store=str(tmp_path / "store"),
                                      allow_unsigned=True)) as reg:
        running, stop = start_server(reg)
        yield running
        stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One control plane for a whole module (the fuzz tests send it thousands of requests)."""
    from edgeslm.fleet.registry import Registry, RegistryConfig

    root = tmp_path_factory.mktemp("fleet-module")
    with Registry.open(RegistryConfig(db=str(root / "registry.sqlite"), store=str(root / "store"),
                                      allow_unsigned=True)) as reg:
        running, stop = start_server(reg)
        yield running
        stop()


@pytest.fixture(scope="session")
def start_fleet_server():
    """start_server(registry, admin_token=None) -> (Server, stop): for a test that builds its own registry."""
    return start_server
