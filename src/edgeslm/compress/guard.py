"""The quality guard. An attempt is measured on validation data; below the bar, the cheapest repair
that still applies is made and the attempt measured again; when no repair is left, the compression
is refused with its shortfall and nothing is written.

Encoders are held to a floor of validation accuracy (a share of fp32's), decoders to a ceiling of
perplexity (a multiple of F16's). The repairs are small objects with a name and a cost, tried in
order of cost:

    cost 1  re-quantize                     per-channel int8 scales; GGUF output/embeddings at Q8_0
    cost 2  re-quantize after a scan        keep the 2, 4, 8, 16 most sensitive MatMuls in fp32
    cost 3  retrain and re-export           more distillation steps (recipes that retrain)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgeslm.errors import EdgeslmError

FINAL, STUDENT = "final", "student"  # what an attempt measured: the model to ship, or the torch student before quantization


class GuardError(EdgeslmError):
    """The compressed model missed its bar even after repair; no bundle was written."""


@dataclass(frozen=True)
class Bar:
    """What an attempt must reach: accuracy >= limit, or perplexity <= limit."""

    metric: str
    limit: float
    higher_is_better: bool
    rule: str  # how the limit was set, for messages: "97% of fp32 0.9412"

    @property
    def kind(self) -> str:
        return "floor" if self.higher_is_better else "ceiling"

    def met(self, value: float) -> bool:
        return value >= self.limit if self.higher_is_better else value <= self.limit

    def shortfall(self, value: float) -> float:
        return self.limit - value if self.higher_is_better else value - self.limit


@dataclass
class Outcome:
    stage: str  # FINAL or STUDENT
    value: float
    record: dict[str, Any]  # the attempt's row in the report
    result: Any = None  # what the caller ships when the bar is met


class Repair:
    """One repair: `applies` says whether it can still change anything, `apply` changes the state
    and says what it did."""

    name = "repair"
    cost = 1
    stages: frozenset[str] = frozenset({FINAL})  # the failed measurements it can fix

    def applies(self, state: Any) -> bool:
        raise NotImplementedError

    def apply(self, state: Any) -> str:
        raise NotImplementedError


# ---- encoder repairs (state: compress.pipeline.EncoderState) ----------------------------------


class PerChannelScales(Repair):
    """Per-tensor int8 weight scales run ~10% faster in ONNX Runtime's integer kernels, so recipes
    start there; one scale per output channel is the first repair."""

    name, cost = "per-channel-scales", 1

    def applies(self, state: Any) -> bool:
        q = state.qcfg
        return q is not None and q.scheme.startswith("int8") and not q.per_channel

    def apply(self, state: Any) -> str:
        state.qcfg = dataclasses.replace(state.qcfg, per_channel=True)
        return "per-channel weight scales"


@dataclass(frozen=True)
class KeepFp32(Repair):
    """Keep the `n` MatMuls that quantization damages most in fp32 (at most the recipe's
    repair_keep_fp32); their ranking costs one quantize-and-measure pass per MatMul group."""

    n: int
    cost = 2

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"keep-{self.n}-fp32"

    def _count(self, state: Any) -> int:
        return min(self.n, state.qcfg.repair_keep_fp32) if state.qcfg is not None else 0

    def applies(self, state: Any) -> bool:
        return len(state.keep) < self._count(state)

    def apply(self, state: Any) -> str:
        state.keep = state.sensitive()[: self._count(state)]
        return f"keeping the {len(state.keep)} most quantization-sensitive MatMuls in fp32"


class MoreDistillation(Repair):
    """The recipe's torch repair, once: `repair_steps` more distillation of the student, which is then
    exported and quantized again from scratch. Also fixes a student that missed the bar before
    quantization (quantization cannot give back what pruning or distillation lost)."""

    name, cost = "more-distillation", 3
    stages = frozenset({FINAL, STUDENT})

    def applies(self, state: Any) -> bool:
        return state.stepper is not None and not state.retrained and state.stepper.config.repair_steps > 0

    def apply(self, state: Any) -> str:
        state.retrained = True
        state.student = state.stepper.repair(state.student, state.ctx)
        state.exported, state.keep = None, []
        return f"{state.stepper.config.repair_steps} more distillation steps"


ENCODER_REPAIRS: tuple[Repair, ...] = (PerChannelScales(), KeepFp32(2), KeepFp32(4), KeepFp32(8), KeepFp32(16),
                                       MoreDistillation())


@dataclass
class Guard:
    bar: Bar
    repairs: tuple[Repair, ...]
    what: str  # "recipe int8-static", for messages
    say: Callable[[str], Any] = field(default=lambda _: None)

    def __post_init__(self) -> None:
        self.repairs = tuple(sorted(self.repairs, key=lambda r: r.cost))  # stable: ties keep their order

    def run(self, state: Any, attempt: Callable[[Any], Outcome]) -> tuple[Outcome, list[dict[str, Any]]]:
        """Measure `attempt(state)` and repair until the bar is met; the met outcome and every
        attempt's record, or GuardError. An attempt returns a STUDENT outcome only when the student
        missed the bar; with no repair for that, the guard sets `state.student_checked` and goes on
        to quantize it."""
        attempts: list[dict[str, Any]] = []
        while True:
            outcome = attempt(state)
            if outcome.stage == FINAL:
                attempts.append(outcome.record)
                self.say(f"attempt {len(attempts)}: {self.bar.metric} {outcome.value:.4f} "
                         f"({self.bar.kind} {self.bar.limit:.4f})")
                if self.bar.met(outcome.value):
                    return outcome, attempts
            repair = next((r for r in self.repairs if outcome.stage in r.stages and r.applies(state)), None)
            if repair is None and outcome.stage == STUDENT:
                state.student_checked = True
                continue
            if repair is None:
                raise GuardError(
                    f"{self.what} missed its {self.bar.kind}: {self.bar.metric} "
                    f"{outcome.value:.4f} {'<' if self.bar.higher_is_better else '>'} {self.bar.limit:.4f} ({self.bar.rule}), "
                    f"short by {self.bar.shortfall(outcome.value):.4f} after {len(attempts)} attempt(s); no bundle written")
            if outcome.stage == STUDENT:
                attempts.append(outcome.record)
            self.say(f"repair: {repair.apply(state)}")
