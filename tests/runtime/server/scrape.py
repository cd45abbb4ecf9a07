"""Read a /metrics scrape with prometheus_client's own parser: what it cannot parse fails the test."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass
class Family:
    name: str
    type: str
    help: str
    samples: list[Sample] = field(default_factory=list)

    def value(self, suffix: str = "", **labels: str) -> float:
        """The sample `name + suffix` with exactly these labels (a histogram's `_count`, `_sum`...)."""
        wanted = self.name + suffix
        for s in self.samples:
            if s.name == wanted and s.labels == labels:
                return s.value
        raise KeyError(f"no sample {wanted}{labels}; have {[(s.name, s.labels) for s in self.samples][:8]}")


def parse(text: str) -> dict[str, Family]:
    """Families by the name dashboards query: a counter under its `_total` name, as exposed."""
    out: dict[str, Family] = {}
    for f in text_string_to_metric_families(text):
        name = f.name + "_total" if f.type == "counter" else f.name
        if name in out:
            raise AssertionError(f"metric {name} exposed twice")
        out[name] = Family(name, f.type, f.documentation, list(f.samples))
    return out
