"""Fixtures of the agent tests: a real Mosquitto (tests/fleet_broker.py), signed tiny bundles with a probe set,
their archives as the control plane publishes them, and a small HTTP server with Range support that stands in
for the control plane's archive endpoint."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgeslm.formats.archive import write_archive
from edgeslm.formats.reader import read_manifest
from edgeslm.formats.signing import generate_keys, sign_bundle
from edgeslm.formats.writer import BundleWriter

PROBE = [("turn on the kitchen lights", "TurnOn"), ("lights on please", "TurnOn"), ("turn the lamp on", "TurnOn"),
         ("turn off the lights", "TurnOff"), ("kitchen lamp off", "TurnOff"), ("turn the lights off please", "TurnOff"),
         ("what is the weather like", "Weather"), ("weather please", "Weather"), ("the weather", "Weather")]
SWAPPED = ("TurnOff", "TurnOn", "Weather")  # "on" now means TurnOff: a bundle whose probe accuracy drops to 1/3


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fleet_broker = _load("fleet_broker")


@pytest.fixture
def broker(tmp_path: Path):
    users = {name: secrets.token_urlsafe(18) for name in (fleet_broker.ADMIN, "dev-a", "dev-b")}
    with fleet_broker.Broker(tmp_path / "broker", users) as b:
        yield b


@dataclass(frozen=True)
class Keys:
    trust: Path  # the trusted .pub
    key: Path  # its private key
    other_key: Path  # a key the devices do not trust


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    good = generate_keys(folder / "trusted", "fleet")
    bad = generate_keys(folder / "untrusted", "stranger")
    return Keys(good.public, good.private, bad.private)


@dataclass(frozen=True)
class Archive:
    data: bytes
    sha256: str
    folder: Path

    @property
    def size(self) -> int:
        return len(self.data)


def make_archive(folder: Path) -> Archive:
    buf = io.BytesIO()
    write_archive(folder, buf)
    data = buf.getvalue()
    return Archive(data, hashlib.sha256(data).hexdigest(), folder)


def probe_bundle(make_tiny_bundle, out: Path, name: str, labels=("TurnOn", "TurnOff", "Weather")) -> Path:
    """A tiny bundle that ships its probe set (probe.jsonl, listed in the manifest and so signed)."""
    base = make_tiny_bundle(out.with_name(out.name + "-base"), labels=labels, name=name)
    manifest = read_manifest(base)
    fields = {k: v for k, v in manifest.to_dict().items()
              if k not in ("format", "format_version", "files", "created", "edgeslm_version")}
    with BundleWriter(out) as writer:
        writer.add(base / "tokenizer.json", "tokenizer.json")
        writer.add(base / "model.onnx", "model.onnx")
        writer.path("probe.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in PROBE))
        writer.finish(**fields)
    return out


@pytest.fixture(scope="session")
def archives(make_tiny_bundle, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Archive]:
    """v1, v2: good signed bundles; swapped: signed, but its probe accuracy is 1/3; stranger: signed by an
    untrusted key; unsigned: no signature at all."""
    folder = tmp_path_factory.mktemp("bundles")
    out = {}
    for name, labels, key in (("v1", None, keys.key), ("v2", None, keys.key), ("swapped", SWAPPED, keys.key),
                              ("stranger", None, keys.other_key), ("unsigned", None, None)):
        bundle = probe_bundle(make_tiny_bundle, folder / name, f"tiny-{name}", **({"labels": labels} if labels else {}))
        if key is not None:
            sign_bundle(bundle, key)
        out[name] = make_archive(bundle)
    return out


class ArchiveServer:
    """Serves archives at /v1/bundles/{sha256}/archive with HTTP Range, as the control plane does, and records
    every request. `stall_after` bytes into a response it waits for `release` (a download cut mid-way);
    `before_body` runs before the body is sent (to fill the device's disk mid-download)."""

    def __init__(self) -> None:
        self.archives: dict[str, bytes] = {}
        self.requests: list[dict[str, str | None]] = []
        self.stall_after: int | None = None
        self.release = threading.Event()
        self.before_body: Callable[[], None] | None = None
        self.honor_range = True  # False: answer every request with the whole archive (200), as some servers do
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: pytest shows failures, not access logs
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                        "authorization": self.headers.get("Authorization")})
                sha = self.path.split("/")[3] if self.path.count("/") == 4 else ""
                data = server.archives.get(sha)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range", "")
                if server.honor_range and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if server.before_body is not None:
                    server.before_body()
                body = data[start:]
                if server.stall_after is not None and server.stall_after < len(body):
                    self.wfile.write(body[:server.stall_after])
                    self.wfile.flush()
                    server.release.wait(30)
                    return  # the connection closes short: the client sees an incomplete body
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, archive: Archive) -> str:
        self.archives[archive.sha256] = archive.data
        return self.url(archive.sha256)

    def url(self, sha: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/bundles/{sha}/archive"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_server():
    server = ArchiveServer()
    yield server
    server.close()


class Observer:
    """The control plane's side of the broker for a test: every message on every device topic, in order."""

    def __init__(self, broker) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = fleet_broker.client(broker, fleet_broker.ADMIN)
        self.client.on_message = self._on_message
        result, _ = self.client.subscribe("edgeslm/v1/#", qos=1)
        assert result == 0
        time.sleep(0.2)  # the SUBACK: later publishes reach us

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[list], object], timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = predicate(self.messages)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = [t for t, _, _ in self.messages[-20:]]
                    raise AssertionError(f"timed out after {timeout} s; last topics seen: {topics}")
                self.cond.wait(left)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def observer(broker):
    obs = Observer(broker)
    yield obs
    obs.close()
