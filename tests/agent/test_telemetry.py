"""Telemetry windows: percentiles from a fixed histogram within its stated error, bounded memory whatever the
request count, tier names capped, rates and energy per answer, and a fresh window after each snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from edgeslm.agent.protocol import MAX_TIERS, encode
from edgeslm.agent.telemetry import BUCKETS, GROWTH, MIN_MS, TelemetryWindow, bucket_of, bucket_value, percentile


def test_bucket_value_is_within_the_growth_of_any_latency_in_it():
    for ms in np.geomspace(MIN_MS * 1.01, 500_000, 2000):
        assert abs(bucket_value(bucket_of(ms)) / ms - 1) <= GROWTH - 1
    assert bucket_of(0.0) == 0 and bucket_of(float("nan")) == 0 and bucket_of(1e12) == BUCKETS - 1


def test_percentiles_match_numpy_within_the_histogram_error():
    rng = np.random.default_rng(0)
    latencies_ms = rng.lognormal(mean=2.0, sigma=0.8, size=20_000)  # a long-tailed latency distribution
    counts = [0] * BUCKETS
    for ms in latencies_ms:
        counts[bucket_of(ms)] += 1
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(latencies_ms, q, method="inverted_cdf"))
        assert percentile(counts, q) == pytest.approx(exact, rel=GROWTH - 1)


def test_window_aggregates_and_resets():
    now = [100.0]
    window = TelemetryWindow(clock=lambda: now[0])
    for i in range(1000):
        window.record(0.010 if i % 10 else 0.100, "encoder" if i % 4 else "cache", error=i % 50 == 0,
                      escalated=i % 20 == 0, joules=0.2)
    size_after_1000 = (len(window._counts), len(window._tiers))
    for _ in range(10_000):
        window.record(0.005, "encoder")
    assert (len(window._counts), len(window._tiers)) == size_after_1000  # memory does not grow with requests
    now[0] = 160.0
    t = window.snapshot("dev-a", None, 0.95)
    encode(t)  # a valid message
    assert t.window_start == 100.0 and t.window_end == 160.0 and t.requests == 11_000
    assert t.errors == 20 and t.escalations == 50 and t.error_rate == 20 / 11_000
    assert t.tier_shares == {"cache": 250 / 11_000, "encoder": 10_750 / 11_000}
    assert t.joules_per_answer == pytest.approx(0.2)  # failed requests are no answer
    assert t.latency_ms.p50_ms == pytest.approx(5.0, rel=0.04) and t.latency_ms.p99_ms == pytest.approx(10.0, rel=0.04)
    assert t.probe_accuracy == 0.95
    empty = window.snapshot("dev-a", None, None)
    assert empty.window_start == 160.0 and empty.requests == 0 and empty.latency_ms is None and empty.tier_shares == {}


def test_tier_names_are_capped_and_never_free_text():
    window = TelemetryWindow()
    for i in range(100):
        window.record(0.001, f"tier-{i}")
    window.record(0.001, "turn on the kitchen lights")  # not a name: a caller passed text by mistake
    t = window.snapshot("dev-a", None, None)
    assert len(t.tier_shares) == MAX_TIERS and "other" in t.tier_shares
    assert not any(" " in name for name in t.tier_shares)
