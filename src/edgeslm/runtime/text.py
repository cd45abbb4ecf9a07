"""What makes a request's text usable by every engine and tier: one set of rules, for the HTTP
schemas and for in-process callers (the assistant, replay) alike."""

from __future__ import annotations

import re

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str, limit: int) -> str | None:
    """None when `value` can be served; otherwise what is wrong with it, worded to follow its name."""
    if not value.strip():
        return "is empty"
    if len(value) > limit:
        return f"has {len(value)} characters; the limit is {limit}"
    if "\x00" in value:
        return "contains a NUL character"
    if _LONE_SURROGATE.search(value):  # JSON can spell them ("\\ud800"); no engine can encode one as UTF-8
        return "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None
