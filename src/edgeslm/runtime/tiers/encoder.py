"""Tier 2: the compressed intent encoder (any engine that can classify), with slots from the home."""

from __future__ import annotations

from typing import Any

from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.slots import HomeMatcher


class EncoderTier:
    name = "encoder"

    def __init__(self, engine: Any, matcher: HomeMatcher):
        self.engine, self.matcher = engine, matcher

    def answer(self, text: str, context: dict[str, Any] | None = None) -> Answer:
        best = self.engine.predict([text])[0]
        return Answer(best["label"], self.matcher.slots(text, best["label"], context), tier=self.name,
                      confidence=float(best["score"]))
