"""Tier 2: the compressed intent encoder, told what the home holds. The slots come first (the home's
names found in the text); then the encoder's distribution over intents is conditioned on the intents
that fit them (tiers/fit.py): the most probable fitting intent wins, and its confidence is its
probability among the fitting ones."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.fit import IntentFit
from edgeslm.runtime.tiers.slots import HomeMatcher


class EncoderTier:
    name = "encoder"

    def __init__(self, engine: Any, matcher: HomeMatcher):
        """`engine`: an intent classifier with `labels` and `logits(texts)` (OnnxClassifier)."""
        self.engine, self.matcher = engine, matcher
        self.labels = list(engine.labels)
        self.fit = IntentFit(matcher.home)

    def answer(self, text: str, context: dict[str, Any] | None = None) -> Answer:
        logits = np.asarray(self.engine.logits([text])[0], dtype=np.float64)
        probs = np.exp(logits - logits.max())
        found = self.matcher.slots(text, None, context)
        probs = np.where(self.fit.mask(self.labels, found), probs, 0.0)
        i = int(probs.argmax())
        intent = self.labels[i]
        return Answer(intent, {**found, **self.matcher.number(text, intent)}, tier=self.name,
                      confidence=float(probs[i] / probs.sum()))
