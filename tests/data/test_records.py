import csv
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.data.records import MAX_TEXT_CHARS, Example, read_examples, write_jsonl
from edgeslm.errors import DataError, EdgeslmError


def test_jsonl_and_csv_round_trip(tmp_path):
    rows = [Example("turn on the lamp", "HassTurnOn"), Example("what time is it", "HassGetCurrentTime")]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    assert read_examples(path) == rows
    csv = tmp_path / "d.csv"
    csv.write_text('text,label\n"turn on the lamp, please",HassTurnOn\n', encoding="utf-8")
    assert read_examples(csv) == [Example("turn on the lamp, please", "HassTurnOn")]


def test_broken_line_is_located(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid JSON"):
        read_examples(path)


def test_missing_fields_and_non_strings(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "hello"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="label"):
        read_examples(path)
    path.write_text(json.dumps({"text": "hello", "label": 3}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="label"):
        read_examples(path)
    path.write_text(json.dumps(["hello", "x"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="object"):
        read_examples(path)


def test_unknown_label_names_line_and_label(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [Example("a", "HassTurnOn"), Example("b", "HassMakeCoffee")])
    with pytest.raises(DataError, match=r"d.jsonl:2: unknown label 'HassMakeCoffee'"):
        read_examples(path, labels=["HassTurnOn", "HassTurnOff"])


def test_non_utf8_empty_and_unknown_format(tmp_path):
    bad = tmp_path / "d.jsonl"
    bad.write_bytes(b'{"text": "caf\xe9", "label": "x"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_examples(bad)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no examples"):
        read_examples(empty)
    with pytest.raises(DataError, match="unknown data format"):
        (tmp_path / "d.txt").write_text("x", encoding="utf-8")
        read_examples(tmp_path / "d.txt")
    with pytest.raises(DataError, match="no such data file"):
        read_examples(tmp_path / "missing.jsonl")


def test_csv_needs_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sentence,intent\nhi,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="header"):
        read_examples(path)


def test_long_texts_are_read_whole(tmp_path):
    # Training files may hold long texts: the trainer truncates to the model's window, not the reader.
    rows = [Example("turn on the lamp " * 1000, "a"), Example("x" * 50_000, "b")]
    rows = [Example(r.text.strip(), r.label) for r in rows]
    assert read_examples(write_jsonl(tmp_path / "d.jsonl", rows)) == rows


def test_absurd_text_is_refused_naming_the_line(tmp_path):
    rows = [Example("fine", "a"), Example("x" * (MAX_TEXT_CHARS + 1), "a")]
    with pytest.raises(DataError, match=r"d.jsonl:2: text is 1000001 characters"):
        read_examples(write_jsonl(tmp_path / "d.jsonl", rows))


# Every character str.splitlines() breaks on, besides \n itself.
LINE_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_line_separators_inside_a_text_read_back_from_jsonl(tmp_path, brk):
    rows = [Example(f"turn on{brk}the lamp", "HassTurnOn"), Example("what time is it", "HassGetCurrentTime")]
    assert read_examples(write_jsonl(tmp_path / "d.jsonl", rows)) == rows


@pytest.mark.parametrize("brk", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_line_separators_inside_a_text_read_back_from_csv(tmp_path, brk):
    rows = [Example(f"turn on{brk}the lamp", "HassTurnOn"), Example("what time is it", "HassGetCurrentTime")]
    assert read_examples(write_csv(tmp_path / "d.csv", rows)) == rows


def test_windows_line_endings_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a", "label": "x"}\r\n{"text": "b", "label": "y"}\r\n')
    assert read_examples(path) == [Example("a", "x"), Example("b", "y")]
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbftext,label\r\n"two\r\nlines",x\r\nb,y\r\n')
    assert read_examples(path) == [Example("two\r\nlines", "x"), Example("b", "y")]


@pytest.mark.parametrize("line, message", [
    ('{"text": "a", "label": "x", "group": ' + "1" * 5000 + "}", "d.jsonl:1: not valid JSON"),  # int over 4300 digits
    ('{"text": "a", "label": "x", "group": ' + "[" * 100_000 + "]" * 100_000 + "}", "d.jsonl:1: not valid JSON"),
    ('{"text": "caf\\udce9", "label": "x"}', "d.jsonl:1: .*not valid Unicode"),  # a lone surrogate escape
])
def test_hostile_json_lines_are_data_errors(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_examples(path)


def test_csv_field_over_the_csv_module_limit_names_the_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nshort,a\n" + "x" * 200_000 + ",a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d.csv:3: .*JSONL"):
        read_examples(path)


def test_writing_a_text_that_is_not_unicode_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="example 2: .*not valid Unicode"):
        write_jsonl(tmp_path / "d.jsonl", [Example("fine", "a"), Example("caf\udce9", "a")])
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .tmp


def write_csv(path, rows, delimiter=","):
    """The way a user writes CSV: the csv module, quoting what needs it."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["text", "label", "group"])
        writer.writerows([r.text, r.label, r.group] for r in rows)
    return path


# Property: whatever is written reads back (texts and labels stripped, as the reader promises),
# and whatever bytes a file holds, reading it returns examples or raises one of our own errors.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=[]), max_size=40)  # lone surrogates too
EXAMPLES = st.lists(st.builds(Example, TEXT, TEXT, TEXT), min_size=1, max_size=8)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def expected(rows):
    """What the reader must give back for `rows`, or None when it must refuse them."""
    if any(not r.text.strip() or not r.label.strip() for r in rows):
        return None
    return [Example(r.text.strip(), r.label.strip(), r.group) for r in rows]


def check_round_trip(path, rows, write):
    path.unlink(missing_ok=True)  # replacing a file in place costs ext4 a flush (auto_da_alloc): 2 ms, not 0.1
    check_reads_back(write(path, rows), rows)


def check_reads_back(path, rows):
    want = expected(rows)
    try:
        got = read_examples(path)
    except DataError:
        assert want is None, rows
    else:
        assert got == want


def check_any_bytes(path, blob):
    path.unlink(missing_ok=True)
    path.write_bytes(blob)
    try:
        rows = read_examples(path)
    except EdgeslmError:
        return
    assert rows and all(isinstance(r, Example) and r.text and r.label for r in rows)


def check_any_text_writes(path, rows):
    path.unlink(missing_ok=True)
    try:
        write_jsonl(path, rows)
    except DataError:
        assert any(not _is_unicode(s) for r in rows for s in (r.text, r.label, r.group))
        return
    check_reads_back(path, rows)


def _is_unicode(s):
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


ROWS_ANY_TEXT = st.lists(st.builds(Example, ANY_TEXT, ANY_TEXT, ANY_TEXT), min_size=1, max_size=4)
DELIMITERS = st.sampled_from([",", "\t"])
BLOBS = st.binary(max_size=300)
SUFFIXES = st.sampled_from([".jsonl", ".csv", ".tsv"])


def check_csv_round_trip(tmp_path, rows, delimiter):
    check_round_trip(tmp_path / ("d.tsv" if delimiter == "\t" else "d.csv"), rows,
                     lambda p, r: write_csv(p, r, delimiter))


@FAST
@given(rows=EXAMPLES)
def test_property_jsonl_round_trip(tmp_path, rows):
    check_round_trip(tmp_path / "d.jsonl", rows, write_jsonl)


@FAST
@given(rows=EXAMPLES, delimiter=DELIMITERS)
def test_property_csv_round_trip(tmp_path, rows, delimiter):
    check_csv_round_trip(tmp_path, rows, delimiter)


@FAST
@given(rows=ROWS_ANY_TEXT)
def test_property_any_python_text_writes_or_is_refused(tmp_path, rows):
    check_any_text_writes(tmp_path / "d.jsonl", rows)


@FAST
@given(blob=BLOBS, suffix=SUFFIXES)
def test_property_any_bytes_read_or_refused(tmp_path, blob, suffix):
    check_any_bytes(tmp_path / f"d{suffix}", blob)


@pytest.mark.slow
@SLOW
@given(rows=EXAMPLES)
def test_property_jsonl_round_trip_slow(tmp_path, rows):
    check_round_trip(tmp_path / "d.jsonl", rows, write_jsonl)


@pytest.mark.slow
@SLOW
@given(rows=EXAMPLES, delimiter=DELIMITERS)
def test_property_csv_round_trip_slow(tmp_path, rows, delimiter):
    check_csv_round_trip(tmp_path, rows, delimiter)


@pytest.mark.slow
@SLOW
@given(rows=ROWS_ANY_TEXT)
def test_property_any_python_text_writes_or_is_refused_slow(tmp_path, rows):
    check_any_text_writes(tmp_path / "d.jsonl", rows)


@pytest.mark.slow
@SLOW
@given(blob=BLOBS, suffix=SUFFIXES)
def test_property_any_bytes_read_or_refused_slow(tmp_path, blob, suffix):
    check_any_bytes(tmp_path / f"d{suffix}", blob)
