"""Pareto frontier and the choice, over measured candidates: accuracy (higher is better) against p90
latency, size and joules per answer (lower is better). Pure functions over metric dicts; and, before
anything is measured, the skipping of candidates another one is predicted to beat (encoders and decoders
alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

OBJECTIVES: tuple[tuple[str, bool], ...] = (("accuracy", True), ("p90_ms", False), ("size_mb", False), ("joules", False))


def dominates(a: dict[str, Any], b: dict[str, Any], objectives: Sequence[tuple[str, bool]] = OBJECTIVES) -> bool:
    """a is at least as good as b on every objective and better on one."""
    better = False
    for name, higher in objectives:
        x, y = a[name], b[name]
        if (x < y) if higher else (x > y):
            return False
        if x != y:
            better = True
    return better


def frontier(rows: Sequence[dict[str, Any]], objectives: Sequence[tuple[str, bool]] = OBJECTIVES) -> list[int]:
    """Indices of the rows no other row dominates, in input order."""
    return [i for i, r in enumerate(rows) if not any(dominates(o, r, objectives) for j, o in enumerate(rows) if j != i)]


def choose(rows: Sequence[dict[str, Any]], meets: Sequence[bool],
           objectives: Sequence[tuple[str, bool]] = OBJECTIVES) -> int | None:
    """The row to ship among those that meet the budget: best on the first objective (most accurate,
    lowest perplexity), ties broken by the next (fastest, smallest, least energy). None when no row meets it."""
    ok = [i for i, m in enumerate(meets) if m]
    if not ok:
        return None
    return min(ok, key=lambda i: tuple(-rows[i][n] if higher else rows[i][n] for n, higher in objectives))


def skip_dominated(rows: Sequence[Any], known: dict[str, float | None], higher: bool, costs: Sequence[str],
                   margin: float, name: Callable[[Any], str]) -> None:
    """Mark `skipped` each pending row (`.status`, `.artefact`, `.predicted`) that another pending row beats
    by `margin` on every predicted cost in `costs` (and on size_mb, between different artefacts) with a
    quality at least as good. Rows of one artefact share its quality; between artefacts both must be known:
    `known[artefact]` (None: not measured yet), higher better when `higher` (accuracy) else lower (perplexity)."""
    live = [r for r in rows if r.status == "pending"]
    for b in live:
        for a in live:
            if a is b or a.status != "pending":
                continue
            same = a.artefact == b.artefact
            qa, qb = known.get(a.artefact), known.get(b.artefact)
            if not same and (qa is None or qb is None or (qa < qb if higher else qa > qb)):
                continue
            every = tuple(costs) + (() if same else ("size_mb",))
            if all(a.predicted[c] * (1 + margin) <= b.predicted[c] for c in every):
                b.status, b.reason = "skipped", f"predicted dominated by {name(a)}"
                break
