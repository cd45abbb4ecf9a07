"""Labelled text examples and the files that hold them (JSONL or CSV with `text` and `label`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeslm.errors import DataError

MAX_TEXT_CHARS = 2000


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    group: str = ""  # where it came from (a template id, a source); splits never share a group


def read_examples(path: Path, labels: Sequence[str] | None = None) -> list[Example]:
    """Read a JSONL or CSV file; every line must have a non-empty `text` and `label`.

    With `labels`, a label outside that set is an error naming the line, not a silent skip.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = list(_jsonl_rows(path, raw))
    elif suffix in (".csv", ".tsv"):
        rows = list(_csv_rows(path, raw, "\t" if suffix == ".tsv" else ","))
    else:
        raise DataError(f"{path}: unknown data format {suffix!r}; use .jsonl or .csv with columns text,label")
    if not rows:
        raise DataError(f"{path}: no examples")
    examples = [_example(path, line, row) for line, row in rows]
    if labels is not None:
        known = set(labels)
        for (line, _), ex in zip(rows, examples):
            if ex.label not in known:
                raise DataError(
                    f"{path}:{line}: unknown label {ex.label!r}; the model knows {len(known)} labels "
                    f"({', '.join(sorted(known)[:8])}{', ...' if len(known) > 8 else ''})"
                )
    return examples


def _jsonl_rows(path: Path, raw: str) -> Iterable[tuple[int, dict]]:
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected an object with text and label")
        yield number, row


def _csv_rows(path: Path, raw: str, delimiter: str) -> Iterable[tuple[int, dict]]:
    reader = csv.DictReader(raw.splitlines(), delimiter=delimiter)
    if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
        raise DataError(f"{path}: the header must name the columns text and label, got {reader.fieldnames}")
    for row in reader:
        yield reader.line_num, row


def _example(path: Path, line: int, row: dict) -> Example:
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{path}:{line}: missing or empty `text`")
    if not isinstance(label, str) or not label.strip():
        raise DataError(f"{path}:{line}: missing or empty `label` (labels are strings)")
    if len(text) > MAX_TEXT_CHARS:
        raise DataError(f"{path}:{line}: text is {len(text)} characters, the limit is {MAX_TEXT_CHARS}")
    return Example(text=text.strip(), label=label.strip(), group=str(row.get("group", "")))


def write_jsonl(path: Path, examples: Iterable[Example]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for ex in examples:
            row = {"text": ex.text, "label": ex.label}
            if ex.group:
                row["group"] = ex.group
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)  # readers never see a half-written file
    return path
