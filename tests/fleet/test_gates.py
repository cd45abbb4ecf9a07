"""The rollout gates' math (fleet/gates.py): paired comparisons of the canaries' new version with their previous one."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.fleet import gates
from edgeslm.fleet.gates import GATES, Measure, Thresholds, Window


def measure(requests=100, errors=0, escalations=0, p90=10.0, joules=1.0, accuracy=0.9) -> Measure:
    return Measure(requests, errors, escalations, p90, joules, accuracy)


def test_aggregate_weights_windows_by_their_requests_and_keeps_the_latest_accuracy():
    m = gates.aggregate([Window(10, 1, 2, 10.0, 2.0, 0.8, window_end=1), Window(30, 3, 0, 20.0, 4.0, None, window_end=3),
                         Window(0, 0, 0, None, None, 0.9, window_end=2)])
    assert (m.requests, m.errors, m.escalations) == (40, 4, 2)
    assert m.p90_ms == pytest.approx((10 * 10 + 30 * 20) / 40)
    assert m.joules_per_answer == pytest.approx((9 * 2 + 27 * 4) / 36)  # weighted by answers (requests - errors)
    assert m.probe_accuracy == 0.9  # the latest window that carries one
    assert m.error_rate == pytest.approx(0.1) and m.escalation_rate == pytest.approx(0.05)


def test_aggregate_of_nothing_has_no_figures():
    m = gates.aggregate([])
    assert (m.requests, m.p90_ms, m.joules_per_answer, m.probe_accuracy, m.error_rate) == (0, None, None, None, None)


def test_accuracy_gate_fails_past_the_allowed_drop_and_names_the_worst_canary():
    pairs = {"a": (measure(accuracy=0.95), measure(accuracy=0.90)), "b": (measure(accuracy=0.95), measure(accuracy=0.95))}
    result = gates.accuracy_gate(pairs, 0.01)
    assert not result.passed and result.devices == 2
    assert result.candidate == pytest.approx(0.925) and result.baseline == pytest.approx(0.95)
    assert "drop of 0.025" in result.reason and "worst: a" in result.reason
    assert gates.accuracy_gate(pairs, 0.03).passed


def test_accuracy_gate_passes_a_first_install_with_the_reason():
    result = gates.accuracy_gate({"a": (None, measure(accuracy=0.5))}, 0.01)
    assert result.passed and result.devices == 0 and "first install" in result.reason


def test_p90_gate_fails_a_three_times_slower_version():
    pairs = {"a": (measure(p90=4.0), measure(p90=12.0)), "b": (measure(p90=5.0), measure(p90=15.0))}
    result = gates.ratio_gate(pairs, "latency_p90", "p90_ms", "p90 latency (ms)", 1.5, 20)
    assert not result.passed and result.candidate == pytest.approx(3.0)
    assert "3.00x" in result.reason and "over" in result.reason


def test_ratio_gate_is_a_geometric_mean_over_canaries():
    # one canary twice as fast, the other twice as slow: no change overall
    pairs = {"a": (measure(p90=10.0), measure(p90=20.0)), "b": (measure(p90=10.0), measure(p90=5.0))}
    result = gates.ratio_gate(pairs, "latency_p90", "p90_ms", "ms", 1.5, 20)
    assert result.passed and result.candidate == pytest.approx(1.0)


def test_ratio_gate_ignores_canaries_below_min_requests():
    pairs = {"a": (measure(requests=5, p90=1.0), measure(p90=100.0)), "b": (measure(p90=10.0), measure(requests=19, p90=100.0))}
    result = gates.ratio_gate(pairs, "latency_p90", "p90_ms", "ms", 1.5, 20)
    assert result.passed and result.devices == 0 and "nothing to compare" in result.reason


def test_rate_gate_pools_over_requests():
    pairs = {"a": (measure(requests=100, errors=0), measure(requests=900, errors=45)),
             "b": (measure(requests=100, errors=0), measure(requests=100, errors=0))}
    result = gates.rate_gate(pairs, "error_rate", "errors", "error rate", 0.01, 20)
    assert result.candidate == pytest.approx(45 / 1000) and result.baseline == 0.0
    assert not result.passed and "+0.045" in result.reason
    assert gates.rate_gate(pairs, "error_rate", "errors", "error rate", 0.05, 20).passed


def test_evaluate_runs_every_gate_in_order():
    same = {"a": (measure(), measure())}
    results = gates.evaluate(same, Thresholds())
    assert [r.gate for r in results] == list(GATES)
    assert all(r.passed for r in results)


def test_escalation_and_energy_gates():
    pairs = {"a": (measure(escalations=5, joules=1.0), measure(escalations=30, joules=2.0))}
    by = {r.gate: r for r in gates.evaluate(pairs, Thresholds())}
    assert not by["escalation_rate"].passed and by["escalation_rate"].candidate == pytest.approx(0.3)
    assert not by["joules_per_answer"].passed and by["joules_per_answer"].candidate == pytest.approx(2.0)
    assert by["latency_p90"].passed and by["error_rate"].passed


def test_enough_traffic_and_install_gate():
    assert gates.enough_traffic({"a": (None, measure(requests=20))}, 20)
    assert not gates.enough_traffic({"a": (None, measure(requests=20)), "b": (None, measure(requests=3))}, 20)
    failed = gates.install_gate(1, 4, 0.0, "d1: signed by an untrusted key")
    assert not failed.passed and failed.candidate == 0.25 and "untrusted" in failed.reason
    assert gates.install_gate(1, 4, 0.25, "x").passed
    assert gates.install_gate(0, 3, 0.0, None).reason == "3 install(s) succeeded"


positive = st.floats(min_value=0.01, max_value=1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(positive, positive, st.floats(0, 1), st.integers(20, 10_000)), min_size=1, max_size=8))
def test_a_version_identical_to_the_previous_passes_every_gate(devices):
    pairs = {f"d{i}": (measure(n, 0, 0, p90, joules, acc), measure(n, 0, 0, p90, joules, acc))
             for i, (p90, joules, acc, n) in enumerate(devices)}
    assert all(r.passed for r in gates.evaluate(pairs, Thresholds()))


@settings(max_examples=200, deadline=None)
@given(st.lists(positive, min_size=1, max_size=8), st.floats(1.51, 50))
def test_every_canary_slower_by_more_than_the_threshold_fails_the_p90_gate(p90s, factor):
    pairs = {f"d{i}": (measure(p90=p), measure(p90=p * factor)) for i, p in enumerate(p90s)}
    result = gates.ratio_gate(pairs, "latency_p90", "p90_ms", "ms", 1.5, 20)
    assert not result.passed and math.isclose(result.candidate, factor, rel_tol=1e-6)
