"""Engines are found by the manifest's `engine`; a new kind plugs in by registering, and the server
routes to it by what it can do."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeslm.errors import BundleError
from edgeslm.formats.reader import Bundle, open_bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.engines.registry import ENGINES, LoadSettings, engine_kind, load_engine, register
from edgeslm.runtime.governor import Governor
from edgeslm.runtime.profiles import DeviceProfile
from edgeslm.runtime.server.app import App, ModelEntry


class KeywordMatcher:
    """A template-matcher engine: the first label named in the text, else the first label."""

    def __init__(self, name: str, labels: list[str]):
        self.name, self.labels = name, labels

    def predict(self, texts: list[str]) -> list[dict]:
        return [{"label": next((lb for lb in self.labels if lb.lower() in t.lower()), self.labels[0]), "score": 1.0}
                for t in texts]

    def memory_bytes(self) -> int:
        return 1024

    def close(self) -> None:
        pass


@pytest.fixture
def keyword_engine():
    @register("keyword-matcher", {"classify"})
    def load(bundle, settings):
        return KeywordMatcher(bundle.manifest.name, bundle.manifest.labels)

    yield "keyword-matcher"
    del ENGINES["keyword-matcher"]


def with_engine(bundle: Bundle, engine: str) -> Bundle:
    """The bundle as if its manifest named another engine (the manifest format itself knows only two)."""
    return dataclasses.replace(bundle, manifest=dataclasses.replace(bundle.manifest, engine=engine))


def test_built_in_engines_and_what_they_can_do():
    assert engine_kind("onnxruntime").capabilities == {"classify"}
    assert engine_kind("llama.cpp").capabilities == {"chat", "complete"}


def test_the_registry_imports_no_runtime_until_a_bundle_loads():
    code = ("import sys, edgeslm.runtime.server.serve, edgeslm.runtime.engines.registry\n"
            "print(sorted(m for m in ('onnxruntime', 'llama_cpp', 'tokenizers', 'torch') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_the_manifest_engine_picks_the_loader(tiny_bundle):
    engine = load_engine(open_bundle(tiny_bundle), LoadSettings(threads=1))
    assert isinstance(engine, OnnxClassifier) and engine.name == "tiny-encoder"
    assert engine.session.get_session_options().intra_op_num_threads == 1
    assert engine.predict(["turn on the lamp"])[0]["label"] == "TurnOn"


def test_an_unknown_engine_is_a_clear_bundle_error(tiny_bundle, tiny_bundle_copy):
    with pytest.raises(BundleError, match=r"engine 'tvm' is not one this edgeslm can run; known engines: "
                                          r"llama\.cpp, onnxruntime, onnxruntime-early-exit"):
        load_engine(with_engine(open_bundle(tiny_bundle), "tvm"))
    manifest = tiny_bundle_copy / "manifest.json"  # on disk, the manifest format refuses it first
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "engine": "tvm"}))
    with pytest.raises(BundleError, match="runs on onnxruntime or onnxruntime-early-exit or onnxruntime-series, not 'tvm'"):
        open_bundle(tiny_bundle_copy)


def test_a_name_is_registered_once(keyword_engine):
    with pytest.raises(ValueError, match="already registered"):
        register(keyword_engine, {"classify"})(lambda bundle, settings: None)


def test_a_registered_engine_is_found_and_served_by_capability(tiny_bundle, keyword_engine):
    bundle = with_engine(open_bundle(tiny_bundle), keyword_engine)
    assert isinstance(load_engine(bundle), KeywordMatcher)
    profile = DeviceProfile(name="test", memory_budget_mb=64, cores=2, threads=1, watts_idle=1.0, watts_busy=2.0)
    governor = Governor(profile, lambda path, threads: load_engine(with_engine(open_bundle(Path(path)), keyword_engine)))
    governor.register("tiny-encoder", tiny_bundle)
    entry = ModelEntry("tiny-encoder", "encoder", "text-classification", engine_kind(keyword_engine).capabilities,
                       tuple(bundle.manifest.labels))
    app = App(governor, [entry], max_batch=4)
    try:
        classify = call(app, "/v1/classify", {"text": "what is the weather"})
        chat = call(app, "/v1/chat/completions", {"model": "tiny-encoder", "messages": [{"role": "user", "content": "hi"}]})
    finally:
        app.close()
    assert classify == (200, {"model": "tiny-encoder", "served_by": "tiny-encoder", "label": "Weather", "score": 1.0})
    assert chat[0] == 400 and "tiny-encoder cannot chat (it can classify)" in chat[1]["error"]["message"]


def call(app: App, path: str, body: dict) -> tuple[int, dict]:
    """One request through the app's ASGI stack, in-process (no socket: the routes are what is tested)."""
    data = json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-length", str(len(data)).encode())], "server": ("t", 80), "client": ("t", 1)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app.asgi()(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
