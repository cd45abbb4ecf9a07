"""Pareto frontier and choice over accuracy (up) and p90, size, joules (down)."""

from edgeslm.select.pareto import choose, dominates, frontier


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
