"""The rollout gates as pure math: telemetry windows -> one measure per (device, version), then each gate compares
the canaries' new version with the previous version on the same devices. Orchestration (when to measure, what
to do when a gate fails) is fleet/rollout_engine.py's; nothing here reads a clock, a database or the network.

A comparison is paired: each canary is its own control, so a slow device type or a busy site does not pass for
a slow model. Ratios (p90 latency, joules per answer) are combined over canaries by their geometric mean, so one
device 2x faster and another 2x slower read as no change; rates (errors, escalations) are pooled over requests,
so a device serving ten times the traffic weighs ten times as much; accuracy drops are averaged over canaries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

GATES = ("probe_accuracy", "latency_p90", "error_rate", "escalation_rate", "joules_per_answer")


@dataclass(frozen=True)
class Window:
    """One telemetry window of one device running one version (the columns of the telemetry table we use)."""

    requests: int
    errors: int = 0
    escalations: int = 0
    latency_p90_ms: float | None = None
    joules_per_answer: float | None = None
    probe_accuracy: float | None = None
    window_end: float = 0.0


@dataclass(frozen=True)
class Measure:
    """One device on one version, over the windows observed."""

    requests: int
    errors: int
    escalations: int
    p90_ms: float | None  # request-weighted mean of the windows' p90 (a window's histogram is not sent)
    joules_per_answer: float | None  # weighted by the answers (requests without an error) of each window
    probe_accuracy: float | None  # the latest window's: it is measured once, when the version is activated

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def escalation_rate(self) -> float | None:
        return self.escalations / self.requests if self.requests else None


@dataclass(frozen=True)
class Thresholds:
    """What a canary may lose against the previous version before the rollout halts."""

    max_accuracy_drop: float = 0.01  # probe-set accuracy, absolute (0.01 = one point)
    max_p90_ratio: float = 1.5  # new p90 latency / previous p90 latency
    max_error_rate_increase: float = 0.01  # absolute: 0.01 = one more failed request in a hundred
    max_escalation_rate_increase: float = 0.05  # absolute share of requests sent past the first tier
    max_joules_ratio: float = 1.5  # new joules per answer / previous
    min_requests: int = 20  # per device and version before its latency, rates and energy count


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    candidate: float | None  # the canaries' combined value (a ratio gate: the combined ratio)
    baseline: float | None  # the previous version's combined value (a ratio gate: 1.0)
    threshold: float
    reason: str
    devices: int = 0  # canaries that entered the comparison


def aggregate(windows: Iterable[Window]) -> Measure:
    """One measure from a device's windows of one version (empty windows carry only the probe accuracy)."""
    rows = sorted(windows, key=lambda w: w.window_end)
    requests = sum(w.requests for w in rows)
    timed = [(w.requests, w.latency_p90_ms) for w in rows if w.requests and w.latency_p90_ms is not None]
    p90 = _weighted_mean(timed)
    answers = [(w.requests - w.errors, w.joules_per_answer) for w in rows
               if w.requests > w.errors and w.joules_per_answer is not None]
    accuracy = next((w.probe_accuracy for w in reversed(rows) if w.probe_accuracy is not None), None)
    return Measure(requests, sum(w.errors for w in rows), sum(w.escalations for w in rows), p90, _weighted_mean(answers),
                   accuracy)


def _weighted_mean(pairs: Sequence[tuple[int, float]]) -> float | None:
    weight = sum(n for n, _ in pairs)
    return sum(n * v for n, v in pairs) / weight if weight else None


def geometric_mean(values: Sequence[float]) -> float:
    """Of positive ratios [n]; a ratio of 0 (a free new version) counts as a tiny one rather than log(0)."""
    return math.exp(sum(math.log(max(v, 1e-9)) for v in values) / len(values))


Pairs = Mapping[str, tuple[Measure | None, Measure]]  # device id -> (previous version, new version)


def accuracy_gate(pairs: Pairs, max_drop: float) -> GateResult:
    """Mean over canaries of (previous accuracy - new accuracy) on each version's signed probe set."""
    drops = {d: b.probe_accuracy - c.probe_accuracy for d, (b, c) in pairs.items()
             if b is not None and b.probe_accuracy is not None and c.probe_accuracy is not None}
    name = "probe_accuracy"
    if not drops:
        return GateResult(name, True, _mean([c.probe_accuracy for _, c in pairs.values()]), None, max_drop,
                          "no canary had a probe accuracy for both versions (a first install): nothing to compare", 0)
    new = _mean([pairs[d][1].probe_accuracy for d in drops])
    old = _mean([pairs[d][0].probe_accuracy for d in drops])  # type: ignore[union-attr]
    drop = sum(drops.values()) / len(drops)
    worst = max(drops, key=lambda d: drops[d])
    passed = drop <= max_drop + 1e-12
    verdict = "within" if passed else "over"
    return GateResult(name, passed, new, old, max_drop,
                      f"probe accuracy {new:.3f} vs {old:.3f} on the previous version: a drop of {drop:.3f}, {verdict} the "
                      f"allowed {max_drop:.3f} (worst: {worst}, {drops[worst]:+.3f})", len(drops))


def ratio_gate(pairs: Pairs, name: str, field: str, unit: str, max_ratio: float, min_requests: int) -> GateResult:
    """Geometric mean over canaries of new/previous for `field` (p90_ms, joules_per_answer)."""
    ratios: dict[str, float] = {}
    for device, (base, cand) in pairs.items():
        if base is None or base.requests < min_requests or cand.requests < min_requests:
            continue
        old, new = getattr(base, field), getattr(cand, field)
        if old is None or new is None or old <= 0:
            continue
        ratios[device] = new / old
    if not ratios:
        return GateResult(name, True, None, None, max_ratio, f"no canary served {min_requests} requests on both versions "
                          f"with a {unit} figure: nothing to compare", 0)
    ratio = geometric_mean(list(ratios.values()))
    new_mean = _mean([getattr(pairs[d][1], field) for d in ratios])
    old_mean = _mean([getattr(pairs[d][0], field) for d in ratios])  # type: ignore[arg-type]
    passed = ratio <= max_ratio
    verdict = "within" if passed else "over"
    return GateResult(name, passed, ratio, 1.0, max_ratio,
                      f"{unit} {new_mean:.4g} vs {old_mean:.4g} on the previous version: {ratio:.2f}x, {verdict} the allowed "
                      f"{max_ratio:.2f}x ({len(ratios)} canar{'y' if len(ratios) == 1 else 'ies'})", len(ratios))


def rate_gate(pairs: Pairs, name: str, count: str, what: str, max_increase: float, min_requests: int) -> GateResult:
    """New rate - previous rate, each pooled over the canaries' requests (`count`: errors or escalations)."""
    used = {d: (b, c) for d, (b, c) in pairs.items()
            if b is not None and b.requests >= min_requests and c.requests >= min_requests}
    if not used:
        return GateResult(name, True, None, None, max_increase,
                          f"no canary served {min_requests} requests on both versions: nothing to compare", 0)
    new = sum(getattr(c, count) for _, c in used.values()) / sum(c.requests for _, c in used.values())
    old = sum(getattr(b, count) for b, _ in used.values()) / sum(b.requests for b, _ in used.values())
    passed = new - old <= max_increase + 1e-12
    verdict = "within" if passed else "over"
    return GateResult(name, passed, new, old, max_increase,
                      f"{what} {new:.3f} vs {old:.3f} on the previous version: {new - old:+.3f}, {verdict} the allowed "
                      f"+{max_increase:.3f}", len(used))


def evaluate(pairs: Pairs, thresholds: Thresholds) -> list[GateResult]:
    """Every gate, in GATES order."""
    t = thresholds
    return [
        accuracy_gate(pairs, t.max_accuracy_drop),
        ratio_gate(pairs, "latency_p90", "p90_ms", "p90 latency (ms)", t.max_p90_ratio, t.min_requests),
        rate_gate(pairs, "error_rate", "errors", "error rate", t.max_error_rate_increase, t.min_requests),
        rate_gate(pairs, "escalation_rate", "escalations", "escalation rate", t.max_escalation_rate_increase, t.min_requests),
        ratio_gate(pairs, "joules_per_answer", "joules_per_answer", "joules per answer", t.max_joules_ratio, t.min_requests),
    ]


def enough_traffic(pairs: Pairs, min_requests: int) -> bool:
    """Every canary served `min_requests` on its new version (when to stop observing and judge)."""
    return all(c.requests >= min_requests for _, c in pairs.values())


def install_gate(failed: int, finished: int, max_failed_fraction: float, first_reason: str | None) -> GateResult:
    """Installs that failed (refused signature, tampered archive, failed probe floor) over the installs that finished."""
    share = failed / finished if finished else 0.0
    passed = share <= max_failed_fraction + 1e-12
    reason = (f"{failed} of {finished} install(s) failed" + (f": {first_reason}" if first_reason else "")
              if failed else f"{finished} install(s) succeeded")
    return GateResult("installs", passed, share, 0.0, max_failed_fraction, reason, finished)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None
