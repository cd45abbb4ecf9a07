"""The served encoder: real bundle, real server, real sockets."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.bundle.reader import open_bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.server.serve import ServeConfig

from .conftest import start_server

pytestmark = pytest.mark.model
TEXTS = ["turn on the kitchen lights", "what is the temperature in the bedroom", "set a timer for ten minutes",
         "open the garage door", "pause the music in the living room"]


def test_classify_matches_the_engine(encoder_server, session_bundle):
    engine = OnnxClassifier.from_bundle(open_bundle(session_bundle))
    expected = engine.predict(TEXTS)
    status, one = encoder_server.json("POST", "/v1/classify", {"text": TEXTS[0]})
    assert status == 200 and one["label"] == expected[0]["label"]
    assert one["score"] == pytest.approx(expected[0]["score"], abs=1e-5)
    status, many = encoder_server.json("POST", "/v1/classify", {"texts": TEXTS})
    assert status == 200 and [r["label"] for r in many["results"]] == [e["label"] for e in expected]


def test_concurrent_clients_are_batched_and_all_answered(encoder_server):
    def call(i: int) -> tuple[int, str]:
        status, body = encoder_server.json("POST", "/v1/classify", {"text": TEXTS[i % len(TEXTS)]})
        return status, body.get("label")

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(call, range(256)))
    assert all(s == 200 for s, _ in answers)
    assert len({label for _, label in answers[:5]}) >= 2
    _, _, metrics = encoder_server.request("GET", "/metrics")
    text = metrics.decode()
    total = float(next(line.split()[-1] for line in text.splitlines()
                       if line.startswith("edgeslm_batch_size_count")))
    texts = float(next(line.split()[-1] for line in text.splitlines() if line.startswith("edgeslm_batch_size_sum")))
    assert texts / total > 1.0  # some requests shared an engine call


def test_models_health_and_metrics(encoder_server, session_bundle):
    name = open_bundle(session_bundle).manifest.name
    status, models = encoder_server.json("GET", "/v1/models")
    assert status == 200 and models["data"][0]["id"] == name and models["data"][0]["resident"] is True
    assert models["data"][0]["labels"] == open_bundle(session_bundle).manifest.labels
    status, health = encoder_server.json("GET", "/healthz")
    assert status == 200 and health["status"] == "ok"
    encoder_server.json("POST", "/v1/classify", {"text": "lights off"})
    _, headers, body = encoder_server.request("GET", "/metrics")
    text = body.decode()
    assert headers["Content-Type"].startswith("text/plain")
    assert 'edgeslm_requests_total{route="/v1/classify",code="200"}' in text
    assert "edgeslm_request_duration_seconds_bucket" in text
    rss = float(next(line.split()[-1] for line in text.splitlines()
                     if line.startswith("edgeslm_process_resident_memory_bytes")))
    assert rss > 10 * 2**20
    assert float(next(line.split()[-1] for line in text.splitlines()
                      if line.startswith("edgeslm_energy_joules "))) > 0
    assert f'edgeslm_model_resident_bytes{{model="{name}"}}' in text


@pytest.mark.parametrize("body, code, words", [
    ({"texts": []}, 400, "non-empty"),
    ({"text": ""}, 400, "empty"),
    ({"text": "x" * 2001}, 400, "limit"),
    ({"text": 5}, 400, "string"),
    ({"text": "a", "texts": ["b"]}, 400, "exactly one"),
    ({"text": "a", "temperature": 1}, 400, "unknown field"),
    ({"texts": ["a"] * 65}, 400, "limit"),
    ({"text": "a", "model": "nope"}, 404, "not served"),
    ([1, 2], 400, "JSON object"),
])
def test_bad_classify_requests_are_4xx_with_a_reason(encoder_server, body, code, words):
    status, answer = encoder_server.json("POST", "/v1/classify", body)
    assert status == code and words in answer["error"]["message"]


def test_routes_methods_and_sizes(encoder_server):
    assert encoder_server.request("GET", "/nope")[0] == 404
    status, headers, _ = encoder_server.request("GET", "/v1/classify")
    assert status == 405 and headers["Allow"] == "POST"
    assert encoder_server.request("POST", "/v1/classify", raw=b'{"text": "' + b"a" * 70000 + b'"}')[0] == 413
    assert encoder_server.request("POST", "/v1/classify", raw=b'{"text": "\xff\xfe"}')[0] == 400
    assert encoder_server.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})[0] == 400


def test_full_queue_is_a_503_with_retry_after(encoder_server):
    governor = encoder_server.app.governor
    holds = [governor.admit() for _ in range(governor.profile.queue_limit)]
    for h in holds:
        h.__enter__()
    try:
        status, headers, body = encoder_server.request("POST", "/v1/classify", {"text": "lights on"})
    finally:
        for h in holds:
            h.__exit__(None, None, None)
    assert status == 503 and headers["Retry-After"] == "1"
    assert json.loads(body)["error"]["type"] == "overloaded"
    assert encoder_server.request("POST", "/v1/classify", {"text": "lights on"})[0] == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["text", "texts", "model", "x"]), inner, max_size=3), max_leaves=8))
def test_any_json_body_gets_200_or_4xx(encoder_server, body):
    status, _, _ = encoder_server.request("POST", "/v1/classify", body)
    assert status == 200 or 400 <= status < 500


def test_low_battery_switches_to_the_cheaper_variant(session_bundle, tmp_path):
    cheap = tmp_path / "cheap"
    shutil.copytree(session_bundle, cheap)
    manifest = json.loads((cheap / "manifest.json").read_text())
    manifest["name"] = "intent-cheap"
    (cheap / "manifest.json").write_text(json.dumps(manifest))
    battery = tmp_path / "capacity"
    battery.write_text("80\n")
    profile = tmp_path / "tiny.yaml"
    profile.write_text(f"name: tiny\nmemory_budget_mb: 512\ncores: 2\nthreads: 1\nwatts_idle: 2\nwatts_busy: 6\n"
                       f"battery: {{path: {battery}, low_threshold_percent: 20}}\n")
    name = manifest_name = json.loads((session_bundle / "manifest.json").read_text())["name"]
    running, stop = start_server(ServeConfig(bundles=[str(session_bundle), str(cheap)], profile=str(profile),
                                             port=0, cheaper=[f"{name}:intent-cheap"]))
    try:
        assert running.json("POST", "/v1/classify", {"text": "lights on", "model": manifest_name})[1]["served_by"] == name
        battery.write_text("12\n")
        deadline = time.monotonic() + 8  # the power reading is cached for 5 s, then the switch happens
        served = name
        while served == name and time.monotonic() < deadline:
            time.sleep(0.25)
            served = running.json("POST", "/v1/classify", {"text": "lights on", "model": name})[1]["served_by"]
        assert served == "intent-cheap"
        _, _, text = running.request("GET", "/metrics")
        assert 'edgeslm_governor_events{kind="switch"}' in text.decode()
    finally:
        stop()
