"""Telemetry over a window: counters and a fixed log-spaced latency histogram, so a device's memory stays
the same whatever its request rate. Only counts and rates leave the device: `record` takes no text at all.
"""

from __future__ import annotations

import math
import threading
import time

from edgeslm.agent.protocol import MAX_TIERS, NAME, PROTOCOL_VERSION, Latency, Telemetry

# Buckets grow by 4%: a percentile is reported within 2% of the true latency (the bucket's geometric middle),
# over 0.01 ms to 10 min in 457 buckets (3.6 KiB of counts).
MIN_MS = 0.01
MAX_MS = 600_000.0
GROWTH = 1.04
BUCKETS = math.ceil(math.log(MAX_MS / MIN_MS) / math.log(GROWTH)) + 1
OTHER_TIER = "other"  # where tiers past MAX_TIERS, or with names no topic may carry, are counted


def bucket_of(ms: float) -> int:
    """Histogram bucket of a latency in ms: 0 holds everything up to MIN_MS, the last everything past MAX_MS."""
    if not ms > MIN_MS:  # (NaN lands here too)
        return 0
    return min(BUCKETS - 1, 1 + int(math.log(ms / MIN_MS) / math.log(GROWTH)))


def bucket_value(index: int) -> float:
    """The latency (ms) a bucket stands for: the geometric middle of its bounds."""
    if index == 0:
        return MIN_MS
    return MIN_MS * GROWTH ** (index - 0.5)


def percentile(counts: list[int], q: float) -> float:
    """The q-th quantile (0 < q <= 1) of a histogram [BUCKETS] with at least one count: the value of the
    first bucket at which the running count reaches q of the total."""
    total = sum(counts)
    rank = max(1, math.ceil(q * total))
    running = 0
    for index, count in enumerate(counts):
        running += count
        if running >= rank:
            return bucket_value(index)
    return bucket_value(len(counts) - 1)


class TelemetryWindow:
    """Thread-safe aggregates of the requests since the last `snapshot`; O(BUCKETS + MAX_TIERS) memory."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._reset(clock())

    def _reset(self, start: float) -> None:
        self._start = start
        self._counts = [0] * BUCKETS
        self._requests = self._errors = self._escalations = 0
        self._answered = 0  # requests with an energy estimate
        self._joules = 0.0
        self._tiers: dict[str, int] = {}

    def record(self, latency_s: float, tier: str, error: bool = False, escalated: bool = False,
               joules: float | None = None) -> None:
        """One request: how long it took, which tier answered it, whether it failed or went past the first tier,
        and the device energy it cost (runtime/energy.py)."""
        if not isinstance(tier, str) or not NAME.fullmatch(tier):
            tier = OTHER_TIER
        with self._lock:
            self._requests += 1
            self._errors += bool(error)
            self._escalations += bool(escalated)
            self._counts[bucket_of(latency_s * 1000.0)] += 1
            if tier not in self._tiers and len(self._tiers) >= MAX_TIERS - 1:
                tier = OTHER_TIER  # one slot stays free for "other"
            self._tiers[tier] = self._tiers.get(tier, 0) + 1
            if joules is not None and math.isfinite(joules) and joules >= 0 and not error:
                self._answered += 1
                self._joules += joules

    def snapshot(self, device_id: str, active: str | None, probe_accuracy: float | None) -> Telemetry:
        """The window so far as a Telemetry message; the next window starts now."""
        with self._lock:
            now = max(self._clock(), self._start)
            n = self._requests
            message = Telemetry(
                v=PROTOCOL_VERSION, device_id=device_id, active=active, window_start=self._start, window_end=now,
                requests=n, errors=self._errors, escalations=self._escalations,
                error_rate=self._errors / n if n else 0.0, escalation_rate=self._escalations / n if n else 0.0,
                latency_ms=(Latency(*(percentile(self._counts, q) for q in (0.5, 0.9, 0.99))) if n else None),
                tier_shares={tier: count / n for tier, count in sorted(self._tiers.items())},
                joules_per_answer=self._joules / self._answered if self._answered else None,
                probe_accuracy=probe_accuracy,
            )
            self._reset(now)
        return message
