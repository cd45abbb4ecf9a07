"""POST /v1/stream on the real server over the real int8 ECG5000 bundle: readings fill each sensor's window,
a full window gets the engine's answer, and a bad push is a 4xx that loses nothing of any sensor's readings."""

from __future__ import annotations

import pytest

from edgeslm.data.series import read_series_rows
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.runtime.server.serve import ServeConfig
from edgeslm.train.run import RunFolder

from .conftest import start_server


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
