"""Labelled text examples and the files that hold them (JSONL or CSV with `text` and `label`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeslm.errors import DataError

# Not a model limit (the trainer truncates to the model's token window and reports how many it cut):
# a guard against a runaway file, whose one "text" the tokenizer would otherwise encode whole.
MAX_TEXT_CHARS = 1_000_000


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
        raw = path.read_bytes().decode("utf-8-sig")  # a byte order mark (Excel's UTF-8 CSV) is not text
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
        for (line, _), ex in zip(rows, examples, strict=True):
            if ex.label not in known:
                raise DataError(
                    f"{path}:{line}: unknown label {ex.label!r}; the model knows {len(known)} labels "
                    f"({', '.join(sorted(known)[:8])}{', ...' if len(known) > 8 else ''})"
                )
    return examples


def _jsonl_rows(path: Path, raw: str) -> Iterable[tuple[int, dict]]:
    # JSON lines end at "\n" only: str.splitlines() would also cut at U+2028, U+0085 and other
    # characters that json.dumps leaves unescaped inside a text.
    for number, line in enumerate(raw.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # an int over 4300 digits, arrays nested past the stack
            raise DataError(f"{path}:{number}: not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected an object with text and label")
        yield number, row


def _csv_rows(path: Path, raw: str, delimiter: str) -> Iterable[tuple[int, dict]]:
    # newline="" as the csv module asks: rows end at \r or \n outside quotes only, so a quoted text
    # keeps its line breaks and U+2028, U+0085 and friends are ordinary characters.
    reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter=delimiter)
    try:
        if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
            raise DataError(f"{path}: the header must name the columns text and label, got {reader.fieldnames}")
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:  # the csv module caps a field at 131072 characters
        raise DataError(f"{path}:{reader.reader.line_num}: {exc}; use JSONL for texts this long") from None


def _example(path: Path, line: int, row: dict) -> Example:
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{path}:{line}: missing or empty `text`")
    if not isinstance(label, str) or not label.strip():
        raise DataError(f"{path}:{line}: missing or empty `label` (labels are strings)")
    if len(text) > MAX_TEXT_CHARS:
        raise DataError(f"{path}:{line}: text is {len(text)} characters, the limit is {MAX_TEXT_CHARS}")
    group = str(row.get("group", ""))
    if not all(map(_is_unicode, (text, label, group))):
        raise DataError(f"{path}:{line}: not valid Unicode (a lone surrogate escape such as \\udce9)")
    return Example(text=text.strip(), label=label.strip(), group=group)


def _is_unicode(text: str) -> bool:
    """False for a str holding a lone surrogate (JSON's "\\ud800" gives one): no file or tokenizer takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def write_jsonl(path: Path, examples: Iterable[Example]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for number, ex in enumerate(examples, 1):
                row = {"text": ex.text, "label": ex.label}
                if ex.group:
                    row["group"] = ex.group
                try:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                except UnicodeEncodeError:
                    raise DataError(f"{path}: example {number}: not valid Unicode (a lone surrogate)") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)  # readers never see a half-written file
    return path
