"""The compression tables and plot on known reports, including old or partial ones."""

from __future__ import annotations

import copy
import math

import pytest

from edgeslm.report.compare import compare_table, decoder_table, plot_tradeoffs

from .pngcheck import check_png


def encoder_report(recipe: str = "int8-dynamic") -> dict:
    """The shape compress.pipeline.measure_variant writes, with round numbers."""
    lat = lambda ours, fp32, ort: {recipe: {"p50_ms": ours}, "fp32": {"p50_ms": fp32},  # noqa: E731
                                   "ort-dynamic-int8": {"p50_ms": ort}}
    return {
        "recipe": recipe, "test": {"accuracy": 0.98, "macro_f1": 0.97, "n": 100},
        "fp32": {"test_accuracy": 0.99, "bytes": 88_000_000},
        "accuracy_kept": 0.9899, "bytes": 22_000_000, "size_ratio": 0.25, "sparsity": 0.0,
        "latency": {"batch1": lat(1.5, 3.0, 1.6), "batch32": lat(20.0, 60.0, 22.0)},
        "latency_ratio": {"batch1_vs_fp32": 0.5, "batch1_vs_ort_dynamic_int8": 0.9375, "batch32_vs_fp32": 0.333},
    }


def cells(table: str, row: int = 2) -> list[str]:
    """The cells of one line of a table whose cells hold no double spaces."""
    return [c.strip() for c in table.splitlines()[row].split("  ") if c.strip()]


def test_compare_table_on_a_known_report():
    text = compare_table([("intent-int8", encoder_report())])
    assert cells(text, 0) == ["bundle", "test acc", "fp32 acc", "kept", "MB", "size", "sparse", "b1 ms", "fp32 b1",
                              "ort-int8 b1", "vs ort-int8", "b32 ms", "fp32 b32"]
    assert cells(text) == ["intent-int8", "0.9800", "0.9900", "99.0%", "22.0", "25.0%", "0%", "1.50", "3.00", "1.60",
                           "0.94", "20.0", "60.0"]


def test_decoder_table_on_a_known_report():
    report = {"type": "Q4_K_M", "bytes_after": 105_500_000, "size_ratio": 0.3871, "perplexity_before": 12.345,
              "perplexity_after": 13.0, "ppl_ratio": 1.0531}
    assert cells(decoder_table([("smollm2-q4", report)])) == ["smollm2-q4", "Q4_K_M", "105.5", "38.7%", "12.35",
                                                              "13.00", "1.053"]


def test_a_report_without_a_baseline_shows_n_a_instead_of_failing():
    """Reports written before the ORT baseline was measured, or with a baseline that failed, have no
    such entries: `edgeslm compare` raised KeyError on them."""
    report = encoder_report()
    for size in ("batch1", "batch32"):
        del report["latency"][size]["ort-dynamic-int8"]
    del report["latency_ratio"]
    del report["sparsity"]
    row = cells(compare_table([("old", report)]))
    assert row == ["old", "0.9800", "0.9900", "99.0%", "22.0", "25.0%", "n/a", "1.50", "3.00", "n/a", "n/a", "20.0",
                   "60.0"]


@pytest.mark.parametrize("path, value", [(("accuracy_kept",), math.nan), (("size_ratio",), math.inf),
                                         (("latency", "batch1", "fp32", "p50_ms"), math.nan)])
def test_nan_and_infinite_numbers_are_n_a_not_nan_percent(path, value):
    report = encoder_report()
    node = report
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    text = compare_table([("x", report)])
    assert "nan" not in text and "inf" not in text and "n/a" in cells(text)


def test_a_decoder_report_with_a_zero_or_missing_perplexity_is_n_a():
    report = {"type": "Q8_0", "bytes_after": 1_000_000, "size_ratio": 0.5, "perplexity_before": 0.0,
              "perplexity_after": math.nan, "ppl_ratio": math.inf}
    assert cells(decoder_table([("q8", report)]))[-3:] == ["0.00", "n/a", "n/a"]


def test_the_tradeoff_plot_is_a_valid_png(tmp_path):
    rows = [("int8", encoder_report("int8")), ("int4", encoder_report("int4"))]
    assert check_png(plot_tradeoffs(rows, tmp_path / "plot.png")) == (1320, 550)  # 12x5 in at 110 dpi


def test_the_plot_skips_a_point_it_has_no_numbers_for(tmp_path):
    partial = copy.deepcopy(encoder_report("old"))
    del partial["latency"]
    partial["test"]["accuracy"] = math.nan
    check_png(plot_tradeoffs([("int8", encoder_report("int8")), ("old", partial)], tmp_path / "plot.png"))


def test_nothing_to_plot_is_an_error_that_says_so(tmp_path):
    with pytest.raises(ValueError, match="no compressed bundles"):
        plot_tradeoffs([], tmp_path / "plot.png")
    assert not (tmp_path / "plot.png").exists()
