"""Plain-text tables: aligned columns, and a row that does not fit the header is an error."""

import math

import pytest

from edgeslm.report.text import number, table


def test_columns_are_aligned_to_the_widest_cell():
    text = table([["int8", 0.5, 12], ["fp32-long-name", 1, 3]], ["bundle", "x", "ms"])
    assert text.splitlines() == [
        "bundle          x    ms",
        "--------------  ---  --",
        "int8            0.5  12",
        "fp32-long-name  1    3",
    ]


def test_no_rows_is_a_header_alone():
    assert table([], ["a", "bb"]).splitlines() == ["a  bb", "-  --"]


@pytest.mark.parametrize("row", [["only-one"], ["a", "b", "c"]])
def test_a_row_that_does_not_fit_the_header_is_refused(row):
    # A short row raised IndexError; a long one lost its extra cells without a word.
    with pytest.raises(ValueError, match="row 2 has"):
        table([["x", "y"], row], ["first", "second"])


@pytest.mark.parametrize("value, spec, text", [
    (0.98765, ".4f", "0.9877"), (0.5, ".1%", "50.0%"), (3, ".2f", "3.00"), (0, ".0%", "0%"),
    (None, ".4f", "n/a"), (math.nan, ".1%", "n/a"), (math.inf, ".2f", "n/a"), (-math.inf, ".1%", "n/a"),
    ("7", ".2f", "n/a"), (True, ".2f", "n/a"),
])
def test_number_writes_what_was_measured_and_n_a_for_what_was_not(value, spec, text):
    assert number(value, spec) == text
