"""Reading LoadGen's own outputs: the verdict from mlperf_log_summary.txt, the numbers from
mlperf_log_detail.txt (one `:::MLLOG {json}` record a line), the responses from mlperf_log_accuracy.json.
Pure functions over text, so they are tested without running LoadGen."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeslmError

SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
ACCURACY = "mlperf_log_accuracy.json"
PERCENTILES = ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")
# summary line -> the constraint it reports (LoadGen 6.0's wording)
CONSTRAINTS = {
    "Performance constraints satisfied": "latency_constraint",
    "Min duration satisfied": "min_duration",
    "Min queries satisfied": "min_queries",
    "Early stopping satisfied": "early_stopping",
}


def parse_detail(text: str) -> dict[str, Any]:
    """key -> value of every MLLOG record (the last one wins; errors and warnings are kept apart)."""
    out: dict[str, Any] = {"errors": [], "warnings": []}
    for line in text.splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        record = json.loads(line[len(":::MLLOG "):])
        meta = record.get("metadata", {})
        if meta.get("is_error"):
            out["errors"].append(str(record["value"]))
        elif meta.get("is_warning"):
            out["warnings"].append(str(record["value"]))
        out[record["key"]] = record["value"]
    return out


def parse_verdict(summary: str) -> dict[str, Any]:
    """VALID/INVALID, each constraint's yes/no, and LoadGen's own words for what failed."""
    result = re.search(r"^Result is : (VALID|INVALID)\s*$", summary, re.M)
    if result is None:
        raise EdgeslmError("LoadGen's summary has no 'Result is' line: the run did not finish")
    constraints = {}
    for line in summary.splitlines():
        name, _, value = line.strip().partition(":")
        if name.strip() in CONSTRAINTS:
            constraints[CONSTRAINTS[name.strip()]] = value.strip() == "Yes"
    failed = [name for name, ok in constraints.items() if not ok]
    reasons = []
    for name in failed:
        words = {"min_duration": "min duration not reached", "min_queries": "min query count not reached",
                 "early_stopping": "early stopping not satisfied",
                 "latency_constraint": "latency constraint not met"}[name]
        reasons.append(words)
    advice = _section(summary, "Recommendations:")
    early = "\n".join(s for s in (_section(summary, "Early Stopping Result:"),
                                  _section(summary, "TTFT Early Stopping Result:"),
                                  _section(summary, "TPOT Early Stopping Result:")) if s)
    return {"result": result.group(1), "valid": result.group(1) == "VALID", "constraints": constraints,
            "reasons": reasons, "recommendations": advice, "early_stopping": early}


def _section(summary: str, title: str) -> str:
    """The ` * ...` lines under a title, up to the next title or blank line."""
    lines = summary.splitlines()
    try:
        start = [line.strip() for line in lines].index(title) + 1
    except ValueError:
        return ""
    body = []
    for line in lines[start:]:
        if not line.strip() or (line.strip().endswith(":") and not line.startswith(" ")):
            break
        body.append(line.strip())
    return " ".join(body)


def latency_ms(detail: dict[str, Any], kind: str = "") -> dict[str, float]:
    """LoadGen's latency statistics in ms. kind: "" per sample, "per_query" (multi-stream: a query's
    latency is its slowest sample's), "first_token" (TTFT), "time_per_output_token" (TPOT)."""
    pattern, extremes = {
        "": ("result_{}_percentile_latency_ns", "result_{}_latency_ns"),
        "per_query": ("result_{}_percentile_per_query_latency_ns", "result_{}_query_latency_ns"),
        "first_token": ("result_first_token_{}_percentile_latency_ns", "result_first_token_{}_latency_ns"),
        "time_per_output_token": ("result_time_per_output_token_{}_percentile_ns", "result_time_to_output_token_{}"),
    }[kind]
    keys = {f"p{p.rstrip('0').rstrip('.')}_ms": pattern.format(p) for p in PERCENTILES}
    keys.update({f"{x}_ms": extremes.format(x) for x in ("mean", "min", "max")})
    return {name: round(float(detail[key]) / 1e6, 4) for name, key in keys.items() if key in detail}


def throughput(detail: dict[str, Any]) -> dict[str, float]:
    """The samples (and tokens) per second LoadGen reports for the scenario that ran."""
    names = {"result_samples_per_second": "samples_per_s",  # offline
             "result_completed_samples_per_sec": "completed_samples_per_s",  # server
             "result_scheduled_samples_per_sec": "scheduled_samples_per_s",  # server
             "result_qps_with_loadgen_overhead": "qps_with_loadgen_overhead",  # single-stream
             "result_qps_without_loadgen_overhead": "qps_without_loadgen_overhead",
             "result_completed_tokens_per_second": "completed_tokens_per_s"}
    return {ours: round(float(detail[key]), 2) for key, ours in names.items() if key in detail}


def parse_accuracy(text: str) -> list[tuple[int, bytes]]:
    """(qsl_idx, response bytes) for each logged response, in LoadGen's order."""
    return [(int(e["qsl_idx"]), bytes.fromhex(e["data"])) for e in json.loads(text or "[]")]


def read_run(folder: Path) -> dict[str, Any]:
    """Everything we take from one LoadGen run's folder."""
    summary = (folder / SUMMARY).read_text()
    detail = parse_detail((folder / DETAIL).read_text())
    if detail["errors"]:
        raise EdgeslmError(f"LoadGen reported errors in {folder / DETAIL}: {'; '.join(detail['errors'][:3])}")
    return {"verdict": parse_verdict(summary), "detail": detail, "summary_text": summary}
