"""A device budget as the user writes it, `p90_ms<=5,ram_mb<=150,accuracy>=0.99*fp32` (an encoder) or
`tok_s>=40,ttft_ms<=200,ppl<=1.05*f16` (a decoder), parsed into limits that a candidate's metrics are
checked against. Costs have upper limits; accuracy and tokens/s lower ones; perplexity an upper one,
absolute or a share of the unquantized (F16) file's on the guard's held-out text."""

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
    "joules": "whole-device energy per answer, per generated token for a decoder (J)",
    "ttft_ms": "a decoder's time to first token on select's fixed prompt, cold prefill (ms)",
}
FLOORS = {"tok_s": "a decoder's generated tokens per second after the first"}
ACCURACY = "accuracy"
PPL = "ppl"  # a decoder's perplexity on the guard's held-out text; `ppl<=1.05*f16` is a share of the F16 file's
# the terms that mean something for one family only; the rest (ram_mb, size_mb, joules) apply to both
FAMILY_TERMS = {"encoder": ("p50_ms", "p90_ms", ACCURACY), "decoder": ("ttft_ms", "tok_s", PPL)}
_TERM = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*(.+?)\s*$")
_VALUE = re.compile(r"^([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)(\s*\*\s*(?:fp32|f16))?$")


@dataclass(frozen=True)
class Budget:
    """Upper limits on costs and a lower limit on accuracy; `accuracy_share` is set when the user
    wrote the floor as a share of fp32 (resolved against the run once its fp32 accuracy is known)."""

    text: str
    limits: tuple[tuple[str, float], ...]  # (cost metric, upper limit), in the order written
    accuracy: float | None = None  # absolute floor of validation accuracy
    accuracy_share: float | None = None  # floor as a share of fp32 validation accuracy
    floors: tuple[tuple[str, float], ...] = ()  # (metric, lower limit): tok_s
    ppl: float | None = None  # absolute perplexity ceiling
    ppl_share: float | None = None  # ceiling as a share of the F16 file's perplexity

    @property
    def terms(self) -> list[str]:
        names = [n for n, _ in self.limits] + [n for n, _ in self.floors]
        return names + ([ACCURACY] if self.accuracy is not None or self.accuracy_share is not None else []) + (
            [PPL] if self.ppl is not None or self.ppl_share is not None else [])

    def check_family(self, family: str) -> None:
        """ConfigError for a term that means nothing for this family's models (p90_ms on a decoder)."""
        others = {t for f, terms in FAMILY_TERMS.items() if f != family for t in terms}
        wrong = [t for t in self.terms if t in others]
        if wrong:
            mine = ", ".join(n for n in [*COSTS, *FLOORS, ACCURACY, PPL] if n not in others)
            a = "an" if family[0] in "aeiou" else "a"
            raise ConfigError(f"budget term(s) {', '.join(wrong)} do not apply to {a} {family}; {a} {family} budget "
                              f"takes {mine}")

    def ppl_ceiling(self, f16_ppl: float) -> float | None:
        return self.ppl_share * f16_ppl if self.ppl_share is not None else self.ppl

    @property
    def costs(self) -> dict[str, float]:
        return dict(self.limits)

    def accuracy_floor(self, fp32_accuracy: float) -> float | None:
        if self.accuracy_share is not None:
            return self.accuracy_share * fp32_accuracy
        return self.accuracy

    def violations(self, metrics: dict[str, Any], fp32_accuracy: float | None = None, margin: float = 0.0,
                   f16_ppl: float | None = None, exact: tuple[str, ...] = ()) -> list[str]:
        """Which limits `metrics` break, as `p90_ms 6.10 > 5`. `margin` widens the cost limits (a share:
        0.25 lets a predicted 6.2 ms pass a 5 ms limit, and a predicted 32 tok/s a 40 tok/s floor) so a
        prediction's error does not drop the winner; the metrics in `exact` are predicted exactly and get no
        margin (a GGUF file's size); a metric that is absent or None is not judged."""
        out = []
        for name, limit in self.limits:
            value = metrics.get(name)
            m = 0.0 if name in exact else margin
            if value is not None and value > limit * (1 + m):
                out.append(f"{name} {value:.3g} > {limit:g}" + (f" (+{m:.0%} margin)" if m else ""))
        for name, limit in self.floors:
            value = metrics.get(name)
            if value is not None and value < limit / (1 + margin):
                out.append(f"{name} {value:.3g} < {limit:g}" + (f" (-{margin:.0%} margin)" if margin else ""))
        ceiling = self.ppl_ceiling(f16_ppl) if f16_ppl is not None else self.ppl
        got = metrics.get(PPL)
        if ceiling is not None and got is not None and got > ceiling:
            out.append(f"ppl {got:.4g} > {ceiling:.4g}")
        floor = self.accuracy_floor(fp32_accuracy) if fp32_accuracy is not None else self.accuracy
        got = metrics.get(ACCURACY)
        if floor is not None and got is not None and got < floor:
            out.append(f"accuracy {got:.4f} < {floor:.4f}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "costs": self.costs, "accuracy": self.accuracy, "accuracy_share": self.accuracy_share,
                "floors": dict(self.floors), "ppl": self.ppl, "ppl_share": self.ppl_share}


def parse_budget(text: str) -> Budget:
    """`metric<=value` terms joined by commas; ConfigError naming the term that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"budget is empty; write terms like p90_ms<=5,ram_mb<=150,accuracy>=0.99*fp32 "
                          f"or tok_s>=40,ppl<=1.05*f16 (costs: {', '.join(COSTS)}; floors: accuracy, tok_s; and ppl)")
    limits: dict[str, float] = {}
    floors: dict[str, float] = {}
    accuracy = share = ppl = ppl_share = None
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            raise ConfigError(f"budget term {term.strip()!r}: expected METRIC<=VALUE or accuracy>=VALUE")
        name, op, raw = m.groups()
        if name not in COSTS and name not in FLOORS and name not in (ACCURACY, PPL):
            raise ConfigError(f"budget term {term.strip()!r}: unknown metric {name!r}; known: "
                              f"{', '.join([*COSTS, ACCURACY, *FLOORS, PPL])}")
        if (name in limits or name in floors or (name == ACCURACY and (accuracy is not None or share is not None))
                or (name == PPL and (ppl is not None or ppl_share is not None))):
            raise ConfigError(f"budget: {name} is given twice")
        v = _VALUE.match(raw.replace(" ", ""))
        if not v:
            raise ConfigError(f"budget term {term.strip()!r}: {raw!r} is not a number"
                              + (" (or a share of fp32, like 0.99*fp32)" if name == ACCURACY else ""))
        value, of = float(v.group(1)), (v.group(2) or "").replace(" ", "").lstrip("*")
        of_fp32 = of == "fp32"
        if not math.isfinite(value):
            raise ConfigError(f"budget term {term.strip()!r}: the value must be finite")
        if of and (name, of) not in ((ACCURACY, "fp32"), (PPL, "f16")):
            raise ConfigError(f"budget term {term.strip()!r}: only accuracy can be a share of fp32 (and ppl of f16)")
        if name == PPL:
            if op not in ("<=", "<"):
                raise ConfigError(f"budget term {term.strip()!r}: ppl is a ceiling, write ppl<=1.05*f16 or ppl<=VALUE")
            if value <= (1 if of else 0):
                raise ConfigError(f"budget term {term.strip()!r}: a perplexity ceiling must be > "
                                  + ("1x f16 (quantizing never lowers it by design)" if of else "0"))
            ppl, ppl_share = (None, value) if of else (value, None)
            continue
        if name in FLOORS:
            if op not in (">=", ">"):
                raise ConfigError(f"budget term {term.strip()!r}: {name} is a floor, write {name}>=...")
            if value <= 0:
                raise ConfigError(f"budget term {term.strip()!r}: the limit must be > 0")
            floors[name] = value
            continue
        if name == ACCURACY:
            if op not in (">=", ">"):
                raise ConfigError(f"budget term {term.strip()!r}: accuracy is a floor, write accuracy>=...")
            if not 0 < value <= 1:
                raise ConfigError(f"budget term {term.strip()!r}: accuracy {value:g} must be in (0, 1]"
                                  + (" (a share of fp32's)" if of_fp32 else " (0.99 is 99%)"))
            share, accuracy = (value, None) if of_fp32 else (None, value)
            continue
        if op not in ("<=", "<"):
            raise ConfigError(f"budget term {term.strip()!r}: {name} is a cost, write {name}<=...")
        if value <= 0:
            raise ConfigError(f"budget term {term.strip()!r}: the limit must be > 0")
        limits[name] = value
    return Budget(text.strip(), tuple(limits.items()), accuracy, share, tuple(floors.items()), ppl, ppl_share)
