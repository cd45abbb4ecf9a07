"""Reading LoadGen's logs, on text in LoadGen 6.0's own format: no LoadGen run needed."""

import pytest

from edgeslm.bench.logs import latency_ms, parse_accuracy, parse_detail, parse_verdict
from edgeslm.errors import EdgeslmError

INVALID_SERVER = """================================================
MLPerf Results Summary
================================================
SUT name : PySUT
Scenario : Server
Mode     : PerformanceOnly
Completed samples per second    : 18.89
Result is : INVALID
  Performance constraints satisfied : NO
  Min duration satisfied : Yes
  Min queries satisfied : Yes
  Early stopping satisfied: NO
Recommendations:
 * Reduce target QPS to improve latency.
Early Stopping Result:
 * Run unsuccessful.
 * Processed 12 queries.
 * Would need to run at least 447 more queries,
 with the run being successful if every additional
 query were under latency.

================================================
Additional Stats
"""


def test_verdict_names_every_failed_constraint():
    v = parse_verdict(INVALID_SERVER)
    assert v["result"] == "INVALID" and not v["valid"]
    assert v["constraints"] == {"latency_constraint": False, "min_duration": True, "min_queries": True,
                                "early_stopping": False}
    assert v["reasons"] == ["latency constraint not met", "early stopping not satisfied"]
    assert "Reduce target QPS" in v["recommendations"] and "447 more queries" in v["early_stopping"]
    valid = parse_verdict(INVALID_SERVER.replace("INVALID", "VALID").replace(": NO", ": Yes"))
    assert valid["valid"] and valid["reasons"] == []
    with pytest.raises(EdgeslmError, match="Result is"):
        parse_verdict("MLPerf Results Summary\n")


def test_detail_and_accuracy_records():
    detail = parse_detail(
        ':::MLLOG {"key": "result_50.00_percentile_latency_ns", "value": 1500000, "metadata": {}}\n'
        ':::MLLOG {"key": "result_99.90_percentile_latency_ns", "value": 9000000, "metadata": {}}\n'
        ':::MLLOG {"key": "result_first_token_50.00_percentile_latency_ns", "value": 2000000, "metadata": {}}\n'
        ':::MLLOG {"key": "oops", "value": "bad", "metadata": {"is_error": true}}\n'
        "not a record\n")
    assert latency_ms(detail) == {"p50_ms": 1.5, "p99.9_ms": 9.0}
    assert latency_ms(detail, "first_token") == {"p50_ms": 2.0}
    assert detail["errors"] == ["bad"]
    assert parse_accuracy('[\n{ "seq_id" : 0, "qsl_idx" : 7, "data" : "05000000" }\n]') == [(7, b"\x05\x00\x00\x00")]
