"""Pareto frontier and choice over accuracy (up) and p90, size, joules (down)."""

from types import SimpleNamespace

from edgeslm.select.pareto import choose, dominates, frontier, skip_dominated


def row(acc, p90, size=10.0, joules=0.01):
    return {"accuracy": acc, "p90_ms": p90, "size_mb": size, "joules": joules}


def test_dominance_needs_one_strict_improvement():
    assert dominates(row(0.99, 2), row(0.99, 3))
    assert not dominates(row(0.99, 2), row(0.99, 2))  # equal is not dominating
    assert not dominates(row(0.98, 1), row(0.99, 3))  # faster but less accurate


def test_frontier_keeps_the_trade_offs_and_drops_the_dominated():
    rows = [row(0.99, 3.0), row(0.98, 1.0), row(0.97, 2.0), row(0.99, 3.0, size=5.0), row(0.95, 0.5, joules=0.001)]
    assert frontier(rows) == [1, 3, 4]  # 0 loses to 3 on size; 2 loses to 1 everywhere


def test_choose_the_most_accurate_that_meets_then_the_fastest():
    rows = [row(0.99, 6.0), row(0.985, 2.0), row(0.985, 1.5), row(0.97, 1.0)]
    assert choose(rows, [False, True, True, True]) == 2
    assert choose(rows, [True, True, True, True]) == 0
    assert choose(rows, [False] * 4) is None


def _row(name, artefact, **predicted):
    return SimpleNamespace(name=name, artefact=artefact, predicted=predicted, status="pending", reason="")


def test_a_candidate_predicted_worse_on_every_cost_is_skipped_only_when_its_quality_is_no_better():
    costs = {"p90_ms": 10.0, "joules": 1.0, "size_mb": 20.0}
    fast, slow = _row("a@2t", "a", **costs), _row("a@1t", "a", **{**costs, "p90_ms": 20.0, "joules": 2.0})
    other = _row("b@2t", "b", **{k: 2 * v for k, v in costs.items()})
    close = _row("a@4t", "a", **{**costs, "p90_ms": 10.5, "joules": 1.05})  # within the margin: kept
    rows = [slow, fast, other, close]
    skip_dominated(rows, {"a": None, "b": None}, True, ("p90_ms", "joules"), 0.1, lambda r: r.name)
    # one artefact shares its quality, so costs decide; another artefact's quality is unknown: kept
    assert [r.status for r in rows] == ["skipped", "pending", "pending", "pending"] and slow.reason.endswith("a@2t")
    for higher, quality, skipped in ((True, {"a": 0.9, "b": 0.8}, "skipped"), (True, {"a": 0.8, "b": 0.9}, "pending"),
                                     (False, {"a": 9.0, "b": 10.0}, "skipped"), (False, {"a": 10.0, "b": 9.0}, "pending")):
        rows = [_row("a@2t", "a", **costs), _row("b@2t", "b", **{k: 2 * v for k, v in costs.items()})]
        skip_dominated(rows, quality, higher, ("p90_ms", "joules"), 0.1, lambda r: r.name)
        assert rows[1].status == skipped, (higher, quality)
    bigger = [_row("a", "a", **costs), _row("b", "b", **{**costs, "p90_ms": 50.0, "joules": 5.0, "size_mb": 19.0})]
    skip_dominated(bigger, {"a": 0.9, "b": 0.8}, True, ("p90_ms", "joules"), 0.1, lambda r: r.name)
    assert bigger[1].status == "pending"  # a smaller file is a trade-off between artefacts
