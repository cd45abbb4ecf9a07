"""POST /v1/classify with {"series": [...]}: the real server over the real int8 ECG5000 bundle, beside a text
encoder. Good series get the engine's answer; bad ones a 4xx that says why, and the next request is unharmed."""

from __future__ import annotations

import pytest

from edgeslm.data.series import read_series_rows
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.runtime.server.serve import ServeConfig
from edgeslm.train.run import RunFolder

from .conftest import start_server


@pytest.fixture(scope="module")
def server(series_bundle, tiny_bundle):
    running, stop = start_server(ServeConfig(bundles=[str(series_bundle), str(tiny_bundle)], port=0,
                                             max_body_bytes=1 << 20))
    yield running
    stop()


@pytest.fixture(scope="module")
def series(series_run):
    x, labels = read_series_rows(RunFolder(series_run).split("test"))
    return x[:12], labels[:12]


def test_good_series_get_the_engines_answer(server, series, series_bundle):
    x, _ = series
    engine = SeriesClassifier.from_bundle(open_bundle(series_bundle), threads=1)
    expected = [engine.predict([row])[0] for row in x]  # batch 1, as each request runs here
    for i in range(len(x)):
        status, body = server.json("POST", "/v1/classify", {"model": "ecg5000-int8", "series": x[i, :, 0].tolist()})
        assert status == 200, body
        assert body["label"] == expected[i]["label"] and body["score"] == pytest.approx(expected[i]["score"], abs=1e-5)
        assert body["served_by"] == "ecg5000-int8"
    # one channel written as time steps of one value each: the multivariate form
    status, body = server.json("POST", "/v1/classify", {"model": "ecg5000-int8", "series": x[0].tolist()})
    assert status == 200 and body["label"] == expected[0]["label"]
    # the only series model here: no need to name it
    assert server.json("POST", "/v1/classify", {"series": x[1, :, 0].tolist()})[1]["label"] == expected[1]["label"]


def test_openapi_and_models_list_it(server):
    status, spec = server.json("GET", "/openapi.json")
    schema = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "series" in schema["properties"] and "ecg5000-int8" in schema["properties"]["model"]["enum"]
    models = {m["id"]: m for m in server.json("GET", "/v1/models")[1]["data"]}
    assert models["ecg5000-int8"]["task"] == "series-classification"


@pytest.mark.parametrize(("series", "status", "message"), [
    ([0.5] * 139, 400, "140 time steps x 1 channel"),
    ([[0.5, 0.1]] * 140, 400, "140 time steps x 1 channel"),
    ([0.5] * 139 + ["x"], 400, r"series[139] must be a number"),
    ([0.5] * 139 + [None], 400, "must be a number"),
    ([0.5] * 139 + [True], 400, "must be a number"),
    ([0.5] * 139 + [1e39], 400, "float32"),
    ([], 400, "non-empty list"),
    ("0.5, 0.1", 400, "non-empty list"),
    ([0.5] * 70_000, 400, "limit is 65536"),
])
def test_bad_series_get_a_clear_4xx(server, series, status, message):
    got, body = server.json("POST", "/v1/classify", {"model": "ecg5000-int8", "series": series})
    assert got == status and message in body["error"]["message"], body


def test_nan_and_oversized_bodies_are_refused_before_the_model(server, series):
    raw = ('{"model": "ecg5000-int8", "series": [' + ", ".join(["0.1"] * 139 + ["NaN"]) + "]}").encode()
    status, _, body = server.request("POST", "/v1/classify", raw=raw)
    assert status == 400 and b"NaN" in body
    # a body past the server's limit is refused from its Content-Length, before it is read
    reply = server.send_raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n[0.1, ")
    assert reply.startswith(b"HTTP/1.1 413") and b"exceeds the limit" in reply
    # and the model still answers
    assert server.json("POST", "/v1/classify", {"series": series[0][0, :, 0].tolist()})[0] == 200


def test_text_and_series_do_not_cross(server, series):
    status, body = server.json("POST", "/v1/classify", {"model": "ecg5000-int8", "text": "turn on the lights"})
    assert status == 400 and "cannot classify" in body["error"]["message"]
    tiny = [m for m in server.app.models if m != "ecg5000-int8"][0]
    status, body = server.json("POST", "/v1/classify", {"model": tiny, "series": series[0][0, :, 0].tolist()})
    assert status == 400 and "cannot classify-series" in body["error"]["message"]
    status, body = server.json("POST", "/v1/classify", {"model": "ecg5000-int8", "series": [1.0], "text": "x"})
    assert status == 400 and "exactly one of" in body["error"]["message"]
