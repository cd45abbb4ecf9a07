"""Budget strings: what parses, and the message for each way one is wrong."""

import pytest

from edgeslm.errors import ConfigError
from edgeslm.select.budget import parse_budget


def test_the_issue_budget_parses():
    b = parse_budget("p90_ms<=5,ram_mb<=150,accuracy>=0.99*fp32")
    assert b.costs == {"p90_ms": 5.0, "ram_mb": 150.0}
    assert b.accuracy_share == 0.99 and b.accuracy is None
    assert b.accuracy_floor(0.9) == pytest.approx(0.891)


def test_absolute_accuracy_spaces_and_every_cost():
    b = parse_budget(" p50_ms <= 2.5 , size_mb<=30, joules<=0.05, ram_mb<200, accuracy >= 0.95 ")
    assert b.costs == {"p50_ms": 2.5, "size_mb": 30.0, "joules": 0.05, "ram_mb": 200.0}
    assert b.accuracy_floor(0.5) == 0.95


def test_violations_name_the_limit_and_honour_the_margin():
    b = parse_budget("p90_ms<=5,accuracy>=0.99*fp32")
    assert b.violations({"p90_ms": 6.0, "accuracy": 0.99}, fp32_accuracy=1.0) == ["p90_ms 6 > 5"]
    assert b.violations({"p90_ms": 6.0}, fp32_accuracy=1.0, margin=0.25) == []  # 6 <= 5 x 1.25
    assert b.violations({"accuracy": 0.98}, fp32_accuracy=1.0) == ["accuracy 0.9800 < 0.9900"]
    assert b.violations({"p90_ms": None}, fp32_accuracy=1.0) == []  # not measured: not judged


@pytest.mark.parametrize("text, message", [
    ("", "budget is empty"),
    ("latency<=5", "unknown metric 'latency'"),
    ("p90_ms=>5", "expected METRIC<=VALUE"),
    ("p90_ms<=fast", "is not a number"),
    ("p90_ms>=5", "p90_ms is a cost, write p90_ms<="),
    ("accuracy<=0.9", "accuracy is a floor"),
    ("accuracy>=99", "must be in \\(0, 1\\]"),
    ("accuracy>=1.2*fp32", "a share of fp32"),
    ("ram_mb<=0.5*fp32", "only accuracy can be a share of fp32"),
    ("p90_ms<=0", "the limit must be > 0"),
    ("p90_ms<=5,p90_ms<=6", "p90_ms is given twice"),
    ("accuracy>=0.9,accuracy>=0.95*fp32", "accuracy is given twice"),
    ("p90_ms<=5,", "expected METRIC<=VALUE"),
])
def test_bad_budgets_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_budget(text)
