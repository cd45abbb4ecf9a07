"""Plain-text tables for terminals and Markdown-free reports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MISSING = "n/a"


def table(rows: list[list[Any]], header: list[str]) -> str:
    for i, row in enumerate(rows, 1):
        if len(row) != len(header):  # zip would drop the extra cells silently
            raise ValueError(f"table: row {i} has {len(row)} cells for {len(header)} columns ({', '.join(header)})")
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def number(value: Any, spec: str) -> str:
    """`value` formatted with `spec`, or "n/a" where nothing was measured: absent, NaN or infinite
    (a ratio over a zero baseline). Reports outlive their format; an older one may lack a field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return MISSING
    return format(value, spec)


def dig(data: Any, *keys: str) -> Any:
    """data[k1][k2]..., or None where a level is missing."""
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data
