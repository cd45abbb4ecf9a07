"""The metrics registry on its own: what it renders must parse as Prometheus text, strictly, and say
what happened (monotonic counters, cumulative buckets, exact totals under concurrency)."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.runtime.server.metrics import (
    LATENCY_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    Registry,
)

from .promtext import FormatError, parse


def registry_with(*metrics) -> Registry:
    r = Registry()
    for m in metrics:
        r.add(m)
    return r


def test_a_full_registry_renders_strictly_valid_text():
    c = Counter("app_requests_total", "Requests by route and code", ("route", "code"))
    h = Histogram("app_latency_seconds", "Latency", LATENCY_BUCKETS, ("route",))
    g = Gauge("app_queue", "Queue depth", lambda: [((), 3)])
    e = Counter("app_errors_total", "Never incremented")
    c.inc("/a", "200")
    c.inc("/a", "200")
    c.inc("/b", "404", amount=2.5)
    for v in (0.0001, 0.003, 0.003, 7.0, 100.0):
        h.observe(v, "/a")
    families = parse(registry_with(c, h, g, e).render())
    assert families["app_requests_total"].type == "counter"
    assert families["app_requests_total"].value(route="/a", code="200") == 2
    assert families["app_requests_total"].value(route="/b", code="404") == 2.5
    assert families["app_queue"].value() == 3
    assert families["app_errors_total"].value() == 0  # exposed before its first increment
    assert families["app_errors_total"].help == "Never incremented"
    lat = families["app_latency_seconds"]
    assert lat.type == "histogram"
    assert lat.value("_count", route="/a") == 5
    assert lat.value("_sum", route="/a") == pytest.approx(107.0061)


def test_the_parser_is_strict_enough_to_fail():
    """Guards the guard: the helper refuses the mistakes the tests below rely on it to catch."""
    for bad in ['# TYPE x counter\nx{a="1} 1\n', "# TYPE x counter\nx nan\n", '# TYPE x counter\nx{a="\\t"} 1\n',
                "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n", "# TYPE x gauge\nx 1", "# TYPE x counter\nx -1\n",
                '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
                "# HELP x two\nlines\n# TYPE x gauge\nx 1\n"]:
        with pytest.raises(FormatError):
            parse(bad)


def test_histogram_buckets_are_cumulative_and_inf_equals_count():
    h = Histogram("h_seconds", "h", (0.1, 1.0, 10.0))
    values = [0.05, 0.1, 0.5, 1.0, 1.5, 9.9, 10.0, 11.0, 1e9]
    for v in values:
        h.observe(v)
    fam = parse(registry_with(h).render())["h_seconds"]
    for le, expected in (("0.1", 2), ("1", 4), ("10", 7)):
        assert fam.value("_bucket", le=le) == expected
    assert fam.value("_bucket", le="+Inf") == fam.value("_count") == len(values)
    assert fam.value("_sum") == pytest.approx(sum(values))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=40),
       st.lists(st.floats(min_value=1e-4, max_value=1e4), min_size=1, max_size=8, unique=True))
def test_histogram_counts_every_value_in_the_right_buckets(values, bounds):
    h = Histogram("h", "h", bounds)
    for v in values:
        h.observe(v)
    fam = parse(registry_with(h).render())["h"]
    if not values:
        assert fam.samples == []  # no series until something is observed
        return
    for _, labels, count in (s for s in fam.samples if s[0] == "h_bucket"):
        le = float(labels["le"])
        assert count == sum(v <= le for v in values)
    assert fam.value("_sum") == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("value", ['say "hi"', "back\\slash", "two\nlines", 'all \\" of\n them\\n', "ünï ✓", ""])
def test_label_values_are_escaped_and_round_trip(value):
    c = Counter("c_total", "c", ("v",))
    c.inc(value)
    assert parse(registry_with(c).render())["c_total"].value(v=value) == 1


def test_help_text_is_escaped():
    c = Counter("c_total", "what a\\b means,\nsecond line")
    assert parse(registry_with(c).render())["c_total"].help == "what a\\b means,\nsecond line"


@pytest.mark.parametrize("value, text", [(math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
                                          (3.0, "3"), (0.25, "0.25"), (-2, "-2")])
def test_gauge_values_render_as_prometheus_floats(value, text):
    g = Gauge("g", "g", lambda: [((), value)])
    rendered = registry_with(g).render()
    assert rendered.splitlines()[-1] == f"g {text}"
    parse(rendered)


def test_a_nan_observation_keeps_the_histogram_parseable():
    h = Histogram("h", "h", (1.0,))
    h.observe(math.nan)
    fam = parse(registry_with(h).render())["h"]
    assert fam.value("_count") == 1 and math.isnan(fam.value("_sum"))


def test_counters_only_go_up():
    c = Counter("c_total", "c")
    c.inc(amount=2)
    for bad in (-1, math.nan, -math.inf):
        with pytest.raises(ValueError, match="amount"):
            c.inc(amount=bad)
    assert c.value() == 2


def test_a_counter_is_monotonic_across_scrapes():
    c = Counter("c_total", "c", ("k",))
    r = registry_with(c)
    last = 0.0
    for i in range(20):
        c.inc("x", amount=i % 3)
        now = parse(r.render())["c_total"].value(k="x")
        assert now >= last
        last = now
    assert last == sum(i % 3 for i in range(20))


def test_wrong_label_count_is_refused_not_rendered_short():
    c = Counter("c_total", "c", ("route", "code"))
    with pytest.raises(ValueError, match="route, code"):
        c.inc("/only-route")
    h = Histogram("h", "h", (1.0,), ("model",))
    with pytest.raises(ValueError, match="model"):
        h.observe(0.5)
    assert parse(registry_with(c, h).render())["c_total"].samples == []


@pytest.mark.parametrize("make", [
    lambda: Counter("bad name", "x"), lambda: Counter("9lives", "x"), lambda: Counter("ok", "x", ("bad-label",)),
    lambda: Counter("ok", "x", ("__reserved",)), lambda: Histogram("ok", "x", (1.0,), ("le",)),
    lambda: Histogram("ok", "x", (1.0, 1.0)), lambda: Histogram("ok", "x", (1.0, math.inf)),
    lambda: Histogram("ok", "x", ()),
])
def test_metrics_that_could_not_render_validly_are_refused_when_made(make):
    with pytest.raises(ValueError):
        make()


def test_two_metrics_of_one_name_are_refused():
    r = Registry()
    r.add(Counter("c_total", "c"))
    with pytest.raises(ValueError, match="c_total"):
        r.add(Counter("c_total", "again"))


def test_threads_incrementing_give_exact_totals():
    c = Counter("c_total", "c", ("k",))
    h = Histogram("h", "h", (0.5,), ("k",))
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        for i in range(5000):
            c.inc(str(i % 2))
            c.inc("amount", amount=0.5)
            h.observe((i % 2) * 1.0, "x")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    scrapes = []
    while any(t.is_alive() for t in threads):  # render while they write: every scrape must parse
        scrapes.append(parse(registry_with(c, h).render()))
    for t in threads:
        t.join()
    fam = parse(registry_with(c, h).render())
    assert fam["c_total"].value(k="0") == fam["c_total"].value(k="1") == 8 * 2500
    assert fam["c_total"].value(k="amount") == 8 * 5000 * 0.5
    assert fam["h"].value("_count", k="x") == 8 * 5000
    assert fam["h"].value("_bucket", k="x", le="0.5") == 8 * 2500
    assert fam["h"].value("_sum", k="x") == 8 * 2500
    assert scrapes  # at least one scrape raced the writers
