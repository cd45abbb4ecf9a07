"""The served encoder: real bundles, real server, real sockets. Most tests use the tiny synthetic
encoder, whose fixed weights make every answer predictable (tests/tiny_bundle.py); the trained one
checks that the server answers what its engine answers."""

from __future__ import annotations

import itertools
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.server.serve import ServeConfig

from .conftest import start_server
from .requests_spec import tiny_answer
from .scrape import parse

TEXTS = ["turn on the kitchen lights", "what is the temperature in the bedroom", "set a timer for ten minutes",
         "open the garage door", "pause the music in the living room"]


def expected(text: str) -> tuple[str, float]:
    answer = tiny_answer(text)
    assert answer is not None
    return answer


def distinct_texts(n: int) -> list[str]:
    """n texts whose expected answers differ pairwise: a swapped answer cannot go unnoticed."""
    texts, seen = [], set()
    for on, off, weather, filler in itertools.product(range(5), range(5), range(4), range(4)):
        words = ["on"] * on + ["off"] * off + ["weather"] * weather + ["lamp"] * filler
        if not words:
            continue
        answer = expected(" ".join(words))
        key = (answer[0], round(answer[1], 6))
        if key not in seen:
            seen.add(key)
            texts.append(" ".join(words))
    assert len(texts) >= n, f"only {len(texts)} distinct answers"
    return texts[:n]


@pytest.mark.model
def test_classify_matches_the_engine(encoder_server, session_bundle):
    engine = OnnxClassifier.from_bundle(open_bundle(session_bundle))
    expected = engine.predict(TEXTS)
    status, one = encoder_server.json("POST", "/v1/classify", {"text": TEXTS[0]})
    assert status == 200 and one["label"] == expected[0]["label"]
    assert one["score"] == pytest.approx(expected[0]["score"], abs=1e-5)
    status, many = encoder_server.json("POST", "/v1/classify", {"texts": TEXTS})
    assert status == 200 and [r["label"] for r in many["results"]] == [e["label"] for e in expected]


def test_concurrent_clients_each_get_the_answer_for_their_own_text(tiny_server):
    texts = distinct_texts(128)
    queries = [texts[i % len(texts)] for i in range(256)]  # each text twice, from different clients

    def call(text: str) -> tuple[int, dict]:
        return tiny_server.json("POST", "/v1/classify", {"text": text})

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(call, queries))
    for text, (status, body) in zip(queries, answers, strict=True):
        label, score = expected(text)
        assert status == 200, body
        assert (body["label"], body["score"]) == (label, pytest.approx(score, abs=1e-5)), text
    metrics = parse(tiny_server.request("GET", "/metrics")[2].decode())
    sizes = metrics["edgeslm_batch_size"]
    assert sizes.value("_sum", model="tiny-encoder") / sizes.value("_count", model="tiny-encoder") > 1.0  # shared calls


def test_a_list_of_texts_is_answered_in_its_own_order(tiny_server):
    texts = distinct_texts(64)
    status, body = tiny_server.json("POST", "/v1/classify", {"texts": texts})
    assert status == 200
    assert len(body["results"]) == len(texts)
    for text, result in zip(texts, body["results"], strict=True):
        label, score = expected(text)
        assert (result["label"], result["score"]) == (label, pytest.approx(score, abs=1e-5)), text


def test_models_health_and_metrics(tiny_server, tiny_bundle):
    name = open_bundle(tiny_bundle).manifest.name
    status, models = tiny_server.json("GET", "/v1/models")
    assert status == 200 and models["data"][0]["id"] == name and models["data"][0]["resident"] is True
    assert models["data"][0]["labels"] == open_bundle(tiny_bundle).manifest.labels
    status, health = tiny_server.json("GET", "/healthz")
    assert status == 200 and health["status"] == "ok"
    tiny_server.json("POST", "/v1/classify", {"text": "lights off"})
    _, headers, body = tiny_server.request("GET", "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    metrics = parse(body.decode())
    assert metrics["edgeslm_requests_total"].value(route="/v1/classify", code="200") >= 1
    assert metrics["edgeslm_request_duration_seconds"].value("_count", route="/v1/classify") >= 1
    assert metrics["edgeslm_process_resident_memory_bytes"].value() > 10 * 2**20
    assert metrics["edgeslm_energy_joules"].value() > 0
    assert metrics["edgeslm_model_resident_bytes"].value(model=name) > 0
    assert metrics["edgeslm_server_errors_total"].value() == 0


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
def test_bad_classify_requests_are_4xx_with_a_reason(tiny_server, body, code, words):
    status, answer = tiny_server.json("POST", "/v1/classify", body)
    assert status == code and words in answer["error"]["message"]


def test_routes_methods_and_sizes(tiny_server):
    assert tiny_server.request("GET", "/nope")[0] == 404
    status, headers, _ = tiny_server.request("GET", "/v1/classify")
    assert status == 405 and headers["Allow"] == "POST"
    assert tiny_server.request("POST", "/v1/classify", raw=b'{"text": "' + b"a" * 70000 + b'"}')[0] == 413
    assert tiny_server.request("POST", "/v1/classify", raw=b'{"text": "\xff\xfe"}')[0] == 400
    assert tiny_server.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})[0] == 400


def test_full_queue_is_a_503_with_retry_after(tiny_server):
    governor = tiny_server.app.governor
    holds = [governor.admit() for _ in range(governor.profile.queue_limit)]
    for h in holds:
        h.__enter__()
    try:
        status, headers, body = tiny_server.request("POST", "/v1/classify", {"text": "lights on"})
    finally:
        for h in holds:
            h.__exit__(None, None, None)
    assert status == 503 and headers["Retry-After"] == "1"
    assert json.loads(body)["error"]["type"] == "overloaded"
    assert tiny_server.request("POST", "/v1/classify", {"text": "lights on"})[0] == 200


def test_low_battery_switches_to_the_cheaper_variant(tiny_bundle, tmp_path):
    cheap = tmp_path / "cheap"
    shutil.copytree(tiny_bundle, cheap)
    manifest = json.loads((cheap / "manifest.json").read_text())
    manifest["name"] = "intent-cheap"
    (cheap / "manifest.json").write_text(json.dumps(manifest))
    battery = tmp_path / "capacity"
    battery.write_text("80\n")
    profile = tmp_path / "tiny.yaml"
    profile.write_text(f"name: tiny\nmemory_budget_mb: 512\ncores: 2\nthreads: 1\nwatts_idle: 2\nwatts_busy: 6\n"
                       f"battery: {{path: {battery}, low_threshold_percent: 20}}\n")
    name = manifest_name = json.loads((tiny_bundle / "manifest.json").read_text())["name"]
    running, stop = start_server(ServeConfig(bundles=[str(tiny_bundle), str(cheap)], profile=str(profile),
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


def test_a_failure_inside_the_server_is_a_500_counted_by_route(tiny_bundle_copy):
    """A bundle damaged after the server started (warm=False: it loads on the first request) fails to
    load: the client gets a 500, and /metrics counts it under its route like every other answer."""
    running, stop = start_server(ServeConfig(bundles=[str(tiny_bundle_copy)], port=0, warm=False))
    try:
        (tiny_bundle_copy / "model.onnx").write_bytes(b"not a model")
        status, answer = running.json("POST", "/v1/classify", {"text": "lights on"})
        assert status == 500 and answer["error"]["type"] == "server_error"
        metrics = parse(running.request("GET", "/metrics")[2].decode())
        assert metrics["edgeslm_requests_total"].value(route="/v1/classify", code="500") == 1
        assert metrics["edgeslm_server_errors_total"].value() == 1
    finally:
        stop()
