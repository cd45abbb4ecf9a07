"""The strict JSON rules every parser of outside input shares (formats/strict_json.py)."""

from __future__ import annotations

import pytest

from edgeslm.formats import strict_json


@pytest.mark.parametrize("raw", [b'{"a": 1, "a": 2}', b'{"a": NaN}', b"[Infinity]", b"[-Infinity]", b"{", b"[1,]"])
def test_loads_refuses_what_two_parsers_could_read_differently(raw: bytes) -> None:
    with pytest.raises(ValueError):
        strict_json.loads(raw)


def test_loads_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        strict_json.loads(b'"\xff"')


def test_depth_counts_nesting_without_recursion_and_can_stop_early() -> None:
    assert strict_json.depth(1) == 0 and strict_json.depth({}) == 1 and strict_json.depth({"a": [[1]]}) == 3
    deep: list = []
    for _ in range(100_000):  # far past the interpreter's recursion limit
        deep = [deep]
    assert strict_json.depth(deep) == 100_001
    assert strict_json.depth(deep, stop_past=8) == 9
