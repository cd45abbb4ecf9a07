import json

import pytest

from edgeslm.data.records import Example, read_examples, write_jsonl
from edgeslm.errors import DataError


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


def test_oversized_text_rejected(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [Example("x" * 5000, "a")])
    with pytest.raises(DataError, match="limit"):
        read_examples(path)
