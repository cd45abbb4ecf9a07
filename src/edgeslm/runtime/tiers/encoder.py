"""Tier 2: the compressed intent encoder, told what the home holds. The slots come first (the home's
names found in the text); then the encoder's distribution over intents is conditioned on the intents
that fit them (tiers/fit.py): the most probable fitting intent wins, and its confidence is its
probability among the fitting ones.

With an early-exit engine the first segment's pass also gives the embedding the semantic cache looks
up (`probe`); the answer then goes on from that same pass, so nothing is computed twice.

A bundle with an n-gram head (formats/ngram_head.py) also gives `quick`: the intent from the command's
character and word n-grams, conditioned on the home the same way, with the slots of the home matcher's
scan: no model runs. The router takes it before the encoder when it is sure enough (Policy.ngrams_from)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import context_key, normalize
from edgeslm.runtime.tiers.fit import IntentFit
from edgeslm.runtime.tiers.slots import HomeMatcher

# The intents handed to a later tier that can search only those (the templates). On the validation weeks'
# commands the encoder was unsure of, hassil over its 3 likeliest intents was right 230 times of 326,
# over every intent 232, at 0.39x the CPU (2-core EPYC).
CANDIDATES = 3
# Intents that act on something the command must name (or the room it is said in): the n-gram head leaves
# them to the encoder when the home matcher's scan found no target, for its slot tagger finds badly typed
# names the scan misses ("switch on te desl lam").
TARGETED = ("HassTurnOn", "HassTurnOff", "HassToggle", "HassLightSet", "HassSetPosition")
TARGETS = ("name", "area", "floor", "domain")


class EncoderTier:
    name = "encoder"

    def __init__(self, engine: Any, matcher: HomeMatcher):
        """`engine`: an intent classifier with `labels` and `logits(texts)` (OnnxClassifier); one with
        `first(texts, embed=True)` and `go_on(pass)` (EarlyExitClassifier) also gives embeddings for the semantic
        cache from the first segment, and goes on from there only when the answer is needed."""
        self.engine, self.matcher = engine, matcher
        self.labels = list(engine.labels)
        self.fit = IntentFit(matcher.home)
        self.embeds = bool(getattr(engine, "embeds", False))
        self.tags = self.embeds and getattr(engine, "tagger", None) is not None  # a learned slot tagger rides the same pass
        self.quick_head = getattr(engine, "ngrams", None)  # the bundle's n-gram head, when it has one
        # entity names that hold an area's name ("Living Room Temperature"): the scan reads them as the entity,
        # Home Assistant's templates may read the area ("what's the living room temperature"); the n-gram head
        # leaves commands naming them to the tiers after it
        home = matcher.home
        self.ambiguous = {e.name for e in home.entities
                          if any(f" {normalize(a.name)} " in f" {normalize(e.name)} " for a in home.areas)}
        # the probe kept for its answer, per thread: the server answers commands in two threads
        self._local = threading.local()

    def probe(self, text: str, context: dict[str, Any] | None = None) -> tuple[Any, np.ndarray | None, dict[str, Any]]:
        """(the pass so far, embedding or None, the home's names found) for one command, kept for its
        answer. With an early-exit engine only the first segment has run: a semantic cache hit on its
        embedding costs nothing more, and `answer` goes on from it."""
        key = (text, context_key(context))
        memo = getattr(self._local, "memo", None)
        if memo is None or memo[0] != key:
            tagged: Any = ()
            if self.embeds:
                start = self.engine.first([text], embed=True, spans=self.tags)
                embedding, tagged = start.embedding[0], (start.spans[0] if start.spans else ())
            else:
                start, embedding = None, None
            memo = self._local.memo = (key, start, embedding, self.matcher.slots(text, None, context, tagged))
        return memo[1], memo[2], memo[3]

    def quick(self, text: str, context: dict[str, Any] | None = None, raw: bool = False) -> Answer | None:
        """The n-gram head's answer (tier "ngrams") with the home matcher's scan for slots: about a tenth of
        the first segment's CPU. None without a head, for an intent that acts on something when the scan
        found nothing it could act on (TARGETED), when the name found could be read as an area, or when it is less
        sure than the head's own floor (set where it was fitted, on the run's validation split). `raw`: its answer
        whatever it is (the head measured alone)."""
        if self.quick_head is None:
            return None
        found = self.matcher.slots(text, None, context)
        probs = np.where(self.fit.mask(self.labels, found), self.quick_head.probs(text), 0.0)
        i = int(probs.argmax())
        intent, confidence = self.labels[i], float(probs[i] / probs.sum())
        if not raw and (confidence < self.quick_head.head.floor or found.get("name") in self.ambiguous
                        or (intent in TARGETED and not any(k in found for k in TARGETS))):
            return None
        return Answer(intent, {**found, **self.matcher.number(text, intent)}, tier="ngrams", confidence=confidence)

    def answer(self, text: str, context: dict[str, Any] | None = None) -> Answer:
        start, _, found = self.probe(text, context)
        self._local.memo = None  # a command is answered once; the next one with the same text is a new request
        out = self.engine.go_on(start).logits[0] if start is not None else self.engine.logits([text])[0]
        logits = np.asarray(out, dtype=np.float64)
        probs = np.exp(logits - logits.max())
        probs = np.where(self.fit.mask(self.labels, found), probs, 0.0)
        i = int(probs.argmax())
        intent = self.labels[i]
        top = [self.labels[k] for k in np.argsort(-probs)[:CANDIDATES] if probs[k] > 0]
        return Answer(intent, {**found, **self.matcher.number(text, intent)}, tier=self.name,
                      confidence=float(probs[i] / probs.sum()), candidates=tuple(top))
