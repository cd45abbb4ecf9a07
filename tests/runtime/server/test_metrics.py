"""/metrics as Prometheus sees it: scraped from the real server and parsed by prometheus_client's own
parser. The names, types and labels are the ones dashboards were built on before the move to
prometheus_client; they must not change."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.runtime.server.metrics import LATENCY_BUCKETS, LiveGauge, Metrics

from .scrape import parse

# name -> (type, label names) as exposed before prometheus_client: the dashboard contract
CONTRACT = {
    "edgeslm_requests_total": ("counter", {"route", "code"}),
    "edgeslm_server_errors_total": ("counter", set()),
    "edgeslm_request_duration_seconds": ("histogram", {"route"}),
    "edgeslm_inference_duration_seconds": ("histogram", {"model"}),
    "edgeslm_batch_size": ("histogram", {"model"}),
    "edgeslm_generated_tokens_total": ("counter", {"model"}),
    "edgeslm_assist_answers_total": ("counter", {"tier"}),  # new with /v1/assist (issue 12)
    "edgeslm_queue_depth": ("gauge", set()),
    "edgeslm_process_resident_memory_bytes": ("gauge", set()),
    "edgeslm_model_resident_bytes": ("gauge", {"model"}),
    "edgeslm_memory_budget_bytes": ("gauge", set()),
    "edgeslm_governor_events": ("gauge", {"kind"}),
    "edgeslm_energy_joules": ("gauge", set()),
    "edgeslm_energy_joules_per_inference": ("gauge", set()),
    "edgeslm_stream_sensors": ("gauge", {"model"}),  # new with /v1/stream's serve settings (issue 14)
    "edgeslm_stream_window_bytes": ("gauge", {"model"}),
    "edgeslm_assist_tier_loaded": ("gauge", {"tier"}),  # serve --idle-release (issue 12)
    "edgeslm_assist_residency_events": ("gauge", {"tier", "kind"}),
}


def test_the_server_exposes_every_metric_with_its_old_name_type_and_labels(tiny_server):
    status, _ = tiny_server.json("POST", "/v1/classify", {"text": "turn on the light"})
    assert status == 200
    status, headers, body = tiny_server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = parse(body.decode())
    for name, (kind, labels) in CONTRACT.items():
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    # the generated-tokens counter has no series until a decoder answers: it is declared all the same
    assert set(families) == set(CONTRACT)
    assert not any(s.name.endswith("_created") for f in families.values() for s in f.samples)


def test_unlabelled_counters_start_at_zero_and_buckets_are_cumulative():
    m = Metrics([])
    for v in (0.0001, 0.003, 0.003, 7.0, 100.0):
        m.latency.labels("/a").observe(v)
    f = parse(m.render().decode())
    assert f["edgeslm_server_errors_total"].value() == 0  # exposed before its first increment (rate() needs it)
    lat = f["edgeslm_request_duration_seconds"]
    assert lat.value("_count", route="/a") == 5 and lat.value("_sum", route="/a") == pytest.approx(107.0061)
    counts = [lat.value("_bucket", route="/a", le=_le(b)) for b in LATENCY_BUCKETS] + [
        lat.value("_bucket", route="/a", le="+Inf")]
    assert counts == sorted(counts) and counts[-1] == 5 and counts[0] == 1


def _le(bound: float) -> str:
    return str(float(bound))


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=30))
def test_label_values_round_trip_through_the_parser(value):
    m = Metrics([LiveGauge("edgeslm_model_resident_bytes", "bytes", lambda: [((value,), 1.0)], ("model",))])
    assert parse(m.render().decode())["edgeslm_model_resident_bytes"].value(model=value) == 1.0


@pytest.mark.parametrize("value", [0.0, -1.5, 1e300, math.inf, -math.inf])
def test_gauge_values_survive_the_exposition(value):
    m = Metrics([LiveGauge("edgeslm_queue_depth", "depth", lambda: [((), value)])])
    assert parse(m.render().decode())["edgeslm_queue_depth"].value() == value


def test_a_nan_gauge_keeps_the_scrape_parseable():
    m = Metrics([LiveGauge("edgeslm_queue_depth", "depth", lambda: [((), math.nan)])])
    assert math.isnan(parse(m.render().decode())["edgeslm_queue_depth"].value())


def test_counters_only_go_up():
    m = Metrics([])
    with pytest.raises(ValueError):
        m.tokens.labels("x").inc(-1)


def test_threads_incrementing_give_exact_totals():
    m = Metrics([])

    def work():
        for _ in range(2000):
            m.requests.labels("/v1/classify", "200").inc()
            m.batch_size.labels("x").observe(3)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    f = parse(m.render().decode())
    assert f["edgeslm_requests_total"].value(route="/v1/classify", code="200") == 16_000
    assert f["edgeslm_batch_size"].value("_count", model="x") == 16_000
    assert f["edgeslm_batch_size"].value("_sum", model="x") == 48_000


def test_two_servers_in_one_process_keep_their_own_series():
    a, b = Metrics([]), Metrics([])
    a.server_errors.inc()
    assert parse(a.render().decode())["edgeslm_server_errors_total"].value() == 1
    assert parse(b.render().decode())["edgeslm_server_errors_total"].value() == 0
