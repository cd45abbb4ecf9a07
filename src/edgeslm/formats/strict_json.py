"""JSON from untrusted bytes, strictly: a repeated key, NaN or Infinity is an error, and nesting is measured without
recursion. The one owner of these rules for every parser of outside input (MQTT payloads in agent/protocol.py,
signature files in formats/signing.py, manifests in formats/reader.py)."""

from __future__ import annotations

import json
from typing import Any


def loads(raw: bytes) -> Any:
    """Parse UTF-8 JSON bytes. Raises UnicodeDecodeError (not UTF-8), ValueError (bad JSON, a repeated key, NaN or
    Infinity, an int past Python's digit limit) or RecursionError (arrays nested past the stack); callers turn these
    into their own clear errors."""
    return json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant)


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: two parsers that keep different copies of a repeated key would act on different data
    (a different command, a different signature)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"field {key[:40]!r} appears twice")
        out[key] = value
    return out


def no_constant(name: str) -> Any:
    """parse_constant: NaN, Infinity and -Infinity are not numbers JSON allows."""
    raise ValueError(f"{name} is not a number JSON allows")


def depth(data: Any, stop_past: int | None = None) -> int:
    """How deeply lists and objects nest in parsed JSON (a scalar: 0); iterative, so any depth is safe to measure.
    With `stop_past`, it returns as soon as the depth exceeds it (a caller that only compares saves the walk)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            if stop_past is not None and deepest > stop_past:
                return deepest
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest
