"""The demo report on known results: the numbers land in the markdown, the figures are valid PNGs,
and an empty evaluation set or a missing measurement does not break it."""

from __future__ import annotations

import math

import pytest

from edgeslm.report.demo import write_report

from .pngcheck import check_png
from .test_compare import encoder_report

BUNDLE = {"name": "intent-fp32", "labels": ["HassTurnOn", "HassTurnOff", "HassGetWeather"],
          "provenance": {"base_model": "minilm-l6", "export": {"opset": 17, "max_abs_diff": 2.5e-6, "compared_on": 64}}}


def result(accuracy: float, f1: float, n: int = 200) -> dict:
    return {"n": n, "accuracy": accuracy, "macro_f1": f1,
            "latency": {"batch": 1, "p50_ms": 1.234, "p90_ms": 2.5, "p99_ms": 4.0},
            "per_label": {"HassTurnOn": {"f1": 0.99}, "HassTurnOff": {"f1": 0.95}, "HassGetWeather": {"f1": 0.5}},
            "confusions": [{"true": "HassTurnOff", "predicted": "HassTurnOn", "count": 3}]}


def test_the_report_holds_the_numbers_and_a_valid_figure(tmp_path):
    out = write_report(tmp_path, BUNDLE, {"test": result(0.99, 0.98), "test-noisy": result(0.9, 0.85)}, "make demo")
    md = out["markdown"].read_text()
    assert "| test | 200 | 0.9900 | 0.9800 | 1.23 | 2.50 | 4.00 |" in md
    assert "| test-noisy | 200 | 0.9000 | 0.8500 | 1.23 | 2.50 | 4.00 |" in md
    assert "| test | HassTurnOff | HassTurnOn | 3 |" in md
    assert "max |Δlogit| vs PyTorch 2.5e-06 on 64 sentences" in md
    assert "Reproduce: `make demo`" in md and "## Compressed variants" not in md
    assert check_png(out["plot"]) == (1430, 770)  # 13x7 in at 110 dpi


def test_the_compression_section_brings_its_table_and_figure(tmp_path):
    write_report(tmp_path, BUNDLE, {"test": result(0.99, 0.98)}, "make demo",
                 compressed=[("int8-dynamic", encoder_report())])
    md = (tmp_path / "report.md").read_text()
    assert "## Compressed variants" in md
    row = next(line for line in md.splitlines() if line.startswith("int8-dynamic "))
    assert row.split()[:4] == ["int8-dynamic", "0.9800", "0.9900", "99.0%"]
    check_png(tmp_path / "compression.png")


def test_an_empty_evaluation_set_is_reported_as_n_a(tmp_path):
    """evaluate_classifier on no rows gives n=0 and no latency percentiles: the report raised KeyError."""
    empty = {"n": 0, "accuracy": 0.0, "macro_f1": 0.0, "latency": {"batch": 1}, "per_label": {}, "confusions": []}
    out = write_report(tmp_path, BUNDLE, {"test": result(0.99, 0.98), "home-commands": empty}, "make demo")
    assert "| home-commands | 0 | 0.0000 | 0.0000 | n/a | n/a | n/a |" in out["markdown"].read_text()
    check_png(out["plot"])


def test_a_nan_score_is_n_a_and_not_taken_for_the_hardest_set(tmp_path):
    out = write_report(tmp_path, BUNDLE, {"test": result(0.99, 0.98), "broken": result(math.nan, math.nan),
                                          "noisy": result(0.9, 0.85)}, "make demo")
    md = out["markdown"].read_text()
    assert "| broken | 200 | n/a | n/a |" in md and "nan" not in md
    check_png(out["plot"])


def test_no_results_is_an_error_that_says_so(tmp_path):
    with pytest.raises(ValueError, match="no evaluation results"):
        write_report(tmp_path, BUNDLE, {}, "make demo")
