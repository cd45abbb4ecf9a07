"""The server's Prometheus metrics, kept by prometheus_client (the reference implementation) in a
registry of the App's own, so that two servers in one process never share a series.

Names, labels and help texts are those the hand-written exposition had, so dashboards keep working.
Gauges are read when scraped (RSS, queue depth, resident models), so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds: 0.5 ms to 30 s covers a cached classify through a long generation.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Without this every counter and histogram gets a `_created` series too: one more series per label
# set that no dashboard of ours reads, and a change in what /metrics shows.
disable_created_metrics()

Read = Callable[[], Iterable[tuple[tuple[str, ...], float]]]


@dataclass(frozen=True)
class LiveGauge:
    """A gauge computed at scrape time: `read` gives (label values, value) pairs."""

    name: str
    help: str
    read: Read
    labels: tuple[str, ...] = ()


class _LiveGauges(Collector):
    def __init__(self, gauges: list[LiveGauge]):
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for g in self.gauges:
            family = GaugeMetricFamily(g.name, g.help, labels=list(g.labels))
            for values, value in g.read():
                family.add_metric(list(values), value)
            yield family


class Metrics:
    """What the server counts. Counters and histograms are prometheus_client's own (thread-safe);
    `render` is the exposition /metrics serves."""

    def __init__(self, gauges: list[LiveGauge]):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("edgeslm_requests_total", "HTTP requests by route and status", ("route", "code"),
                                registry=r)
        self.server_errors = Counter("edgeslm_server_errors_total",
                                     "Requests the server failed: 500 answers, and streams cut short by an error "
                                     "event after their 200", registry=r)
        self.latency = Histogram("edgeslm_request_duration_seconds", "Request latency, whole answers", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("edgeslm_inference_duration_seconds", "Engine time per batch", ("model",),
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("edgeslm_batch_size", "Texts per engine call", ("model",), buckets=BATCH_BUCKETS,
                                    registry=r)
        self.tokens = Counter("edgeslm_generated_tokens_total", "Tokens generated", ("model",), registry=r)
        self.assist = Counter("edgeslm_assist_answers_total", "/v1/assist answers by the tier that gave them",
                              ("tier",), registry=r)
        r.register(_LiveGauges(gauges))

    def render(self) -> bytes:
        return generate_latest(self.registry)
