"""Choosing early-exit thresholds, pure numpy: the exit confidences that spend the least encoder
compute on a validation split while its accuracy stays within `max_drop` of the full-depth model's.

Shapes: N validation samples, E exits, K labels. A sample leaves at the first exit whose softmax
maximum reaches that exit's threshold; one that reaches none is answered by the full model.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeslm.errors import ConfigError

NEVER = None  # a threshold that no sample reaches: the exit is skipped
MAX_COMBINATIONS = 20000  # thresholds tried jointly; 2 exits get a grid of 141 values each


def softmax(logits: np.ndarray) -> np.ndarray:
    """[N, K] logits -> [N, K] probabilities."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class ExitOutcome:
    """What a choice of thresholds does on the split."""

    thresholds: tuple[float | None, ...]  # [E]
    accuracy: float
    shares: tuple[float, ...]  # [E + 1] share of samples answered at each exit, the full model last
    cost: float  # expected encoder compute per sample, as a share of the full model's


def route(confidence: np.ndarray, thresholds: Sequence[float | None]) -> np.ndarray:
    """[E, N] exit confidences -> [N] index of the exit each sample leaves at (E: the full model)."""
    exits, n = confidence.shape
    where = np.full(n, exits)
    for e in reversed(range(exits)):  # the first exit reached wins, so walk back to front
        t = thresholds[e]
        if t is not NEVER:
            where[confidence[e] >= t] = e
    return where


def outcome(confidence: np.ndarray, predictions: np.ndarray, truth: np.ndarray, costs: Sequence[float],
            thresholds: Sequence[float | None]) -> ExitOutcome:
    """`predictions` [E + 1, N]: each exit's label, the full model's last; `costs` [E + 1]: compute of
    each segment as a share of the whole."""
    where = route(confidence, thresholds)
    answer = predictions[where, np.arange(len(truth))]
    shares = np.bincount(where, minlength=len(costs)) / max(1, len(truth))
    reached = 1.0 - np.concatenate([[0.0], np.cumsum(shares)[:-1]])  # share of samples that run each segment
    return ExitOutcome(tuple(thresholds), float((answer == truth).mean()), tuple(float(s) for s in shares),
                       float(np.dot(reached, costs)))


def candidates(confidence: np.ndarray, size: int) -> list[float | None]:
    """[N] confidences of one exit -> up to `size` thresholds at its quantiles, plus NEVER. Each lies
    midway between two neighbouring confidences (the lowest at half the smallest), never on one, so
    the float noise between batch shapes cannot move a sample across it."""
    c = np.unique(confidence)  # sorted
    out: list[float | None] = []
    for k in np.unique(np.linspace(0, len(c), max(2, size - 1)).round().astype(int)):
        if k < len(c):
            out.append(float(c[0] / 2 if k == 0 else (c[k - 1] + c[k]) / 2))
    return out + [NEVER]


def choose_thresholds(logits: Sequence[np.ndarray], final: np.ndarray, truth: np.ndarray, costs: Sequence[float],
                      max_drop: float) -> ExitOutcome:
    """The cheapest thresholds whose accuracy is at least the full model's minus `max_drop`.

    logits: E arrays [N, K], the exit heads'; final: [N] the full model's labels; truth: [N] labels;
    costs: [E + 1] per segment. Every combination on a quantile grid is tried (MAX_COMBINATIONS in
    all); among the cheapest, the most accurate wins. All exits NEVER always qualifies."""
    if not 0.0 <= max_drop < 1.0:
        raise ConfigError(f"max_drop must be in [0, 1), got {max_drop}")
    if len(costs) != len(logits) + 1 or min(costs) < 0:
        raise ConfigError("costs: one non-negative cost per segment (exits + the full model)")
    probs = [softmax(np.asarray(x, dtype=np.float64)) for x in logits]
    confidence = np.stack([p.max(axis=-1) for p in probs])  # [E, N]
    predictions = np.stack([p.argmax(axis=-1) for p in probs] + [np.asarray(final)])  # [E + 1, N]
    truth = np.asarray(truth)
    total = float(sum(costs))
    costs = [c / total for c in costs] if total > 0 else list(costs)
    floor = float((predictions[-1] == truth).mean()) - max_drop
    grid = max(2, int(MAX_COMBINATIONS ** (1.0 / max(1, len(logits)))))
    best = outcome(confidence, predictions, truth, costs, [NEVER] * len(logits))
    for thresholds in itertools.product(*(candidates(c, grid) for c in confidence)):
        got = outcome(confidence, predictions, truth, costs, thresholds)
        if got.accuracy >= floor - 1e-12 and (got.cost, -got.accuracy) < (best.cost, -best.accuracy):
            best = got
    return best
