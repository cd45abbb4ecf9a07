"""POST /v1/stream on the real server over the real int8 ECG5000 bundle: readings fill each sensor's window,
a full window gets the engine's answer, and a bad push is a 4xx that loses nothing of any sensor's readings.
The serve settings (hop, sensor bound, ttl) each on a server of their own; GET /v1/sensors, /metrics and
/openapi.json show them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeslm.data.series import read_series_rows
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.runtime.server.serve import ServeConfig
from edgeslm.runtime.streams import SENSOR_ID
from edgeslm.train.run import RunFolder

from .conftest import start_server
from .scrape import parse


@pytest.fixture(scope="module")
def server(series_bundle):
    running, stop = start_server(ServeConfig(bundles=[str(series_bundle)], port=0, max_sensors=3))
    yield running
    stop()


@pytest.fixture(scope="module")
def rows(series_run, series_bundle):
    x, _ = read_series_rows(RunFolder(series_run).split("test"))
    engine = SeriesClassifier.from_bundle(open_bundle(series_bundle), threads=1)
    return x[:3, :, 0], [engine.predict([row])[0] for row in x[:3]]  # batch 1, as each window runs here


def push(server, sensor, values):
    return server.json("POST", "/v1/stream", {"sensor": sensor, "values": values})


def test_windows_fill_and_a_bad_push_loses_nothing(server, rows):
    x, expected = rows  # ECG5000: 140 readings a window, hop 140
    status, body = push(server, "ecg-1", x[0, :100].tolist())
    assert status == 200 and body["windows"] == [] and body["pending"] == 40
    status, body = push(server, "ecg-2", x[1, :70].tolist())
    assert status == 200 and body["pending"] == 70
    # bad pushes to the same and to other sensors: each a clear 4xx
    for sensor, values, code, message in [
        ("ecg-1", x[0, 100:139].tolist() + ["x"], 400, "values[39] must be a number"),
        ("ecg-1", x[0, 100:139].tolist() + [None], 400, "must be a number"),
        ("ecg-1", [[0.1, 0.2]] * 40, 400, "1 channel(s)"),
        ("ecg-1", [0.1] * 141, 400, "limit is 140"),
        ("ecg-2", [], 400, "non-empty list"),
        ("bad sensor!", [0.1], 400, "sensor must be"),
    ]:
        status, body = push(server, sensor, values)
        assert status == code and message in body["error"]["message"], body
    raw = '{"sensor": "ecg-1", "values": [' + ", ".join(["0.1"] * 39 + ["NaN"]) + "]}"
    assert server.request("POST", "/v1/stream", raw=raw.encode())[0] == 400
    assert server.json("POST", "/v1/stream", {"sensor": "ecg-1"})[0] == 400
    # nothing was lost: the rest of each series completes exactly the window /v1/classify would see
    status, body = push(server, "ecg-1", x[0, 100:].tolist())
    assert status == 200 and [w["end"] for w in body["windows"]] == [140] and body["pending"] == 140
    assert body["windows"][0]["label"] == expected[0]["label"]
    assert body["windows"][0]["score"] == pytest.approx(expected[0]["score"], abs=1e-5)
    status, body = push(server, "ecg-2", x[1, 70:].tolist())
    assert body["windows"][0]["label"] == expected[1]["label"] and body["served_by"] == "ecg5000-int8"


def test_sensors_past_the_limit_are_refused_and_the_rest_still_served(server, rows):
    x, expected = rows
    push(server, "ecg-1", [0.0])  # (the module's server holds at most 3 sensors)
    push(server, "ecg-3", x[2, :10].tolist())
    status, body = push(server, "ecg-4", [0.1])
    assert status == 409 and "limit of 3 sensors" in body["error"]["message"]
    status, body = push(server, "ecg-3", x[2, 10:].tolist())
    assert status == 200 and body["windows"][0]["label"] == expected[2]["label"]


@pytest.fixture(scope="module")
def engine(series_bundle):
    return SeriesClassifier.from_bundle(open_bundle(series_bundle), threads=1)


@pytest.fixture(scope="module")
def hop_server(series_bundle):
    running, stop = start_server(ServeConfig(bundles=[str(series_bundle)], port=0, stream_hop=70, max_sensors=2))
    yield running
    stop()


def test_a_shorter_hop_overlaps_windows_and_the_sensors_are_listed(hop_server, rows, engine):
    x, expected = rows
    status, body = push(hop_server, "pump-1", x[0].tolist())
    assert status == 200 and [w["end"] for w in body["windows"]] == [140] and body["pending"] == 70
    assert body["windows"][0]["label"] == expected[0]["label"]
    status, body = push(hop_server, "pump-1", x[1, :70].tolist())  # the window 71..210 straddles two series
    overlap = engine.predict([np.concatenate([x[0, 70:], x[1, :70]])])[0]
    assert [w["end"] for w in body["windows"]] == [210] and body["windows"][0]["label"] == overlap["label"]
    assert body["windows"][0]["score"] == pytest.approx(overlap["score"], abs=1e-5)

    status, listed = hop_server.json("GET", "/v1/sensors")
    assert status == 200 and len(listed["models"]) == 1
    model = listed["models"][0]
    assert {k: model[k] for k in ("model", "length", "channels", "hop", "max_sensors", "ttl_s", "count", "bytes")} == {
        "model": "ecg5000-int8", "length": 140, "channels": 1, "hop": 70, "max_sensors": 2, "ttl_s": None,
        "count": 1, "bytes": 140 * 4}
    (pump,) = model["sensors"]
    assert (pump["sensor"], pump["filled"], pump["pending"], pump["received"]) == ("pump-1", 140, 70, 210)
    assert pump["idle_s"] >= 0 and model["truncated"] is False

    push(hop_server, "pump-2", x[2, :10].tolist())
    model = hop_server.json("GET", "/v1/sensors?limit=1")[1]["models"][0]
    assert [s["sensor"] for s in model["sensors"]] == ["pump-2"] and model["count"] == 2 and model["truncated"]
    for bad in ("-1", "abc", "1001", "2.5", ""):
        status, body = hop_server.json("GET", f"/v1/sensors?limit={bad}")
        assert status == 400 and "limit must be a whole number from 0 to 1000" in body["error"]["message"]

    # the bound: a third sensor is refused, and the two held lose nothing
    status, body = push(hop_server, "pump-3", [0.1])
    assert status == 409 and "limit of 2 sensors" in body["error"]["message"]
    held = {s["sensor"]: (s["filled"], s["received"]) for s in hop_server.json("GET", "/v1/sensors")[1]["models"][0]["sensors"]}
    assert held == {"pump-1": (140, 210), "pump-2": (10, 10)}
    families = parse(hop_server.request("GET", "/metrics")[2].decode())
    assert families["edgeslm_stream_sensors"].value(model="ecg5000-int8") == 2
    assert families["edgeslm_stream_window_bytes"].value(model="ecg5000-int8") == 2 * 140 * 4


def test_openapi_describes_the_stream_routes_with_their_limits(hop_server):
    status, spec = hop_server.json("GET", "/openapi.json")
    route = spec["paths"]["/v1/stream"]["post"]
    schema = route["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["sensor", "values"] and schema["additionalProperties"] is False
    assert schema["properties"]["sensor"]["pattern"] == SENSOR_ID.pattern
    assert schema["properties"]["model"]["enum"] == ["ecg5000-int8"]
    assert "every 70 readings" in route["summary"] and "At most 2 sensors" in route["summary"]
    assert {"200", "400", "404", "409", "413", "503"} <= set(route["responses"])
    (limit,) = spec["paths"]["/v1/sensors"]["get"]["parameters"]
    assert limit["name"] == "limit" and limit["schema"]["maximum"] == 1000


@pytest.fixture(scope="module")
def ttl_server(series_bundle):
    running, stop = start_server(ServeConfig(bundles=[str(series_bundle)], port=0, max_sensors=1, sensor_ttl_s=0.2))
    yield running
    stop()


def test_a_sensor_silent_past_the_ttl_is_forgotten_and_frees_its_place(ttl_server, rows):
    """Sleeps only past the ttl, then checks what must hold by then: no assertion on how fast anything ran."""
    x, _ = rows
    assert push(ttl_server, "valve-1", x[0, :100].tolist())[1]["pending"] == 40
    time.sleep(0.6)
    status, body = push(ttl_server, "valve-2", x[1, :10].tolist())  # one sensor at most: only if valve-1 is gone
    assert status == 200, body
    model = ttl_server.json("GET", "/v1/sensors")[1]["models"][0]
    assert "valve-1" not in [s["sensor"] for s in model["sensors"]] and model["forgotten"] >= 1
    assert model["ttl_s"] == 0.2
    time.sleep(0.6)
    status, body = push(ttl_server, "valve-1", x[0, :10].tolist())
    assert status == 200 and body["pending"] == 130  # its old 100 readings were dropped: a fresh window
