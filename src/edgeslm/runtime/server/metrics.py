"""Prometheus metrics in the text exposition format, written by hand: three small types are all the
server needs, and the client library would be one more dependency on the device."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence

# Seconds: 0.5 ms to 30 s covers a cached classify through a long generation.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    escaped = (str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped, strict=True)) + "}"


class _Metric:
    kind = ""

    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()):
        # Checked here, not at scrape time: a bad name would make every scrape unparseable.
        if not _NAME.fullmatch(name):
            raise ValueError(f"metric name {name!r} is not valid in Prometheus ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        for label in labels:
            if not _LABEL.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"{name}: label name {label!r} is not valid ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)")
        self.name, self.help, self.label_names = name, help_, tuple(labels)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        help_ = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {help_}", f"# TYPE {self.name} {self.kind}"]

    def _check(self, labels: tuple[str, ...]) -> None:
        if len(labels) != len(self.label_names):  # a short key would render a series with labels missing
            raise ValueError(f"{self.name} takes {len(self.label_names)} label value(s) "
                             f"({', '.join(self.label_names) or 'none'}), got {len(labels)}")


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()):
        super().__init__(name, help_, labels)
        # Without labels the one series exists from the start: a scrape shows 0, not an absent metric
        # (rate() and alerts need the zero before the first increment).
        self._values: dict[tuple[str, ...], float] = {} if self.label_names else {(): 0.0}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._check(labels)
        if not amount >= 0 or math.isinf(amount):  # `not >=` also refuses NaN
            raise ValueError(f"{self.name}: a counter only goes up; amount must be finite and >= 0, got {amount}")
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read when scraped (RSS, queue depth), so it is never stale."""

    kind = "gauge"

    def __init__(self, name: str, help_: str, read: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
                 labels: Sequence[str] = ()):
        super().__init__(name, help_, labels)
        self._read = read

    def render(self) -> list[str]:
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in self._read()]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_: str, buckets: Sequence[float], labels: Sequence[str] = ()):
        super().__init__(name, help_, labels)
        if "le" in self.label_names:
            raise ValueError(f"{name}: 'le' is the bucket label of a histogram; name the label otherwise")
        bounds = tuple(sorted(buckets))
        if not bounds or len(set(bounds)) != len(bounds) or not all(math.isfinite(b) for b in bounds):
            raise ValueError(f"{name}: buckets must be distinct finite bounds (+Inf is always added), got {buckets}")
        self.buckets = bounds
        self._series: dict[tuple[str, ...], list[float]] = {}  # per-bucket counts, then sum, count

    def observe(self, value: float, *labels: str) -> None:
        self._check(labels)
        with self._lock:
            series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
                    break
            series[-2] += value
            series[-1] += 1

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for key, series in items:
            cumulative = 0.0
            for bound, n in zip(self.buckets, series, strict=False):  # series ends with sum and count
                cumulative += n
                lines.append(f"{self.name}_bucket{_labels(self.label_names + ('le',), key + (_num(bound),))} "
                             f"{_num(cumulative)}")
            lines.append(f"{self.name}_bucket{_labels(self.label_names + ('le',), key + ('+Inf',))} {_num(series[-1])}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(series[-2])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {_num(series[-1])}")
        return lines


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        if any(m.name == metric.name for m in self.metrics):
            raise ValueError(f"a metric named {metric.name} is already registered")
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        return "\n".join(line for m in self.metrics for line in m.render()) + "\n"


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"  # Go's spelling; Python's "nan" is not a valid sample value
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))
