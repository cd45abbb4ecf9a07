"""A device budget as the user writes it, `p90_ms<=5,ram_mb<=150,accuracy>=0.99*fp32`, parsed into
limits that a candidate's metrics are checked against. Costs have upper limits, accuracy a lower one
(absolute, or a share of the fp32 model's validation accuracy)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from edgeslm.errors import ConfigError

# metric -> what it means; costs are bounded above, accuracy below
COSTS = {
    "p50_ms": "median batch-1 latency, tokenization included (ms)",
    "p90_ms": "90th percentile batch-1 latency (ms)",
    "ram_mb": "resident memory the model adds (MiB)",
    "size_mb": "model file size (MB)",
    "joules": "whole-device energy per answer (J)",
}
ACCURACY = "accuracy"
_TERM = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*(.+?)\s*$")
_VALUE = re.compile(r"^([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)(\s*\*\s*fp32)?$")


@dataclass(frozen=True)
class Budget:
    """Upper limits on costs and a lower limit on accuracy; `accuracy_share` is set when the user
    wrote the floor as a share of fp32 (resolved against the run once its fp32 accuracy is known)."""

    text: str
    limits: tuple[tuple[str, float], ...]  # (cost metric, upper limit), in the order written
    accuracy: float | None = None  # absolute floor of validation accuracy
    accuracy_share: float | None = None  # floor as a share of fp32 validation accuracy

    @property
    def costs(self) -> dict[str, float]:
        return dict(self.limits)

    def accuracy_floor(self, fp32_accuracy: float) -> float | None:
        if self.accuracy_share is not None:
            return self.accuracy_share * fp32_accuracy
        return self.accuracy

    def violations(self, metrics: dict[str, Any], fp32_accuracy: float, margin: float = 0.0) -> list[str]:
        """Which limits `metrics` break, as `p90_ms 6.10 > 5`. `margin` widens the cost limits (a share:
        0.25 lets a predicted 6.2 ms pass a 5 ms limit) so a prediction's error does not drop the winner;
        a metric that is absent or None is not judged."""
        out = []
        for name, limit in self.limits:
            value = metrics.get(name)
            if value is not None and value > limit * (1 + margin):
                out.append(f"{name} {value:.3g} > {limit:g}" + (f" (+{margin:.0%} margin)" if margin else ""))
        floor = self.accuracy_floor(fp32_accuracy)
        got = metrics.get(ACCURACY)
        if floor is not None and got is not None and got < floor:
            out.append(f"accuracy {got:.4f} < {floor:.4f}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "costs": self.costs, "accuracy": self.accuracy, "accuracy_share": self.accuracy_share}


def parse_budget(text: str) -> Budget:
    """`metric<=value` terms joined by commas; ConfigError naming the term that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"budget is empty; write terms like p90_ms<=5,ram_mb<=150,accuracy>=0.99*fp32 "
                          f"(costs: {', '.join(COSTS)}; and accuracy)")
    limits: dict[str, float] = {}
    accuracy = share = None
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            raise ConfigError(f"budget term {term.strip()!r}: expected METRIC<=VALUE or accuracy>=VALUE")
        name, op, raw = m.groups()
        if name not in COSTS and name != ACCURACY:
            raise ConfigError(f"budget term {term.strip()!r}: unknown metric {name!r}; known: {', '.join([*COSTS, ACCURACY])}")
        if name in limits or (name == ACCURACY and (accuracy is not None or share is not None)):
            raise ConfigError(f"budget: {name} is given twice")
        v = _VALUE.match(raw.replace(" ", ""))
        if not v:
            raise ConfigError(f"budget term {term.strip()!r}: {raw!r} is not a number"
                              + (" (or a share of fp32, like 0.99*fp32)" if name == ACCURACY else ""))
        value, of_fp32 = float(v.group(1)), bool(v.group(2))
        if not math.isfinite(value):
            raise ConfigError(f"budget term {term.strip()!r}: the value must be finite")
        if name == ACCURACY:
            if op not in (">=", ">"):
                raise ConfigError(f"budget term {term.strip()!r}: accuracy is a floor, write accuracy>=...")
            if not 0 < value <= 1:
                raise ConfigError(f"budget term {term.strip()!r}: accuracy {value:g} must be in (0, 1]"
                                  + (" (a share of fp32's)" if of_fp32 else " (0.99 is 99%)"))
            share, accuracy = (value, None) if of_fp32 else (None, value)
            continue
        if of_fp32:
            raise ConfigError(f"budget term {term.strip()!r}: only accuracy can be a share of fp32")
        if op not in ("<=", "<"):
            raise ConfigError(f"budget term {term.strip()!r}: {name} is a cost, write {name}<=...")
        if value <= 0:
            raise ConfigError(f"budget term {term.strip()!r}: the limit must be > 0")
        limits[name] = value
    return Budget(text.strip(), tuple(limits.items()), accuracy, share)
