"""Slots from the home, for tiers whose model gives only the intent: the home's entity, area and floor
names found in the text by fuzzy matching (so "the flor lamp" still finds "Floor Lamp"), a device
domain from the words for it when no entity is named, and the number a setting intent needs.

Values are spelled as the home spells them, as Home Assistant's recognizer would give them. The blind
scan over word n-grams at a strict threshold comes first. Then, where the encoder's learned slot tagger
(runtime/engines/slot_tagger.py) marks words the scan left as a name, area or floor, they are matched to
the home's names at a lower threshold (`tagged_threshold`): the tagger says a name is there, so a badly
typed one is still found. The tagger only adds a kind of slot the scan did not find: trusted before the
scan, its spans lost clean commands ("the living room lights" marked as one name matched a speaker).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeslm.runtime.tiers.cache import normalize
from edgeslm.runtime.tiers.home import Home

# Words people use for a domain, when they name no device ("turn off the lights in the kitchen").
DOMAIN_WORDS = {
    "light": ("light", "lights", "lamp", "lamps", "lighting"),
    "fan": ("fan", "fans"),
    "cover": ("blind", "blinds", "shade", "shades", "curtain", "curtains", "shutter", "shutters", "garage door"),
    "lock": ("lock", "locks"),
    "switch": ("plug", "plugs", "outlet", "socket"),  # not "switch": it is the verb far more often
    "media_player": ("tv", "speaker", "music", "radio"),
}
NUMBER_SLOTS = {"HassLightSet": "brightness", "HassClimateSetTemperature": "temperature",
                "HassSetVolume": "volume_level", "HassSetPosition": "position", "HassFanSetSpeed": "percentage",
                "HassStartTimer": None}
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)")
TAGGED_THRESHOLD = 70.0  # rapidfuzz ratio inside a tagged span; measured in benchmarks/slot_tagger.py


@dataclass(frozen=True)
class Match:
    kind: str  # name | area | floor
    value: str  # as the home spells it
    score: float
    start: int  # word offsets in the normalized text
    end: int
    tagged: bool = False  # inside a span the slot tagger marked


class HomeMatcher:
    def __init__(self, home: Home, threshold: float = 85.0, tagged_threshold: float = TAGGED_THRESHOLD):
        from rapidfuzz import fuzz, process

        self._ratio, self._partial, self._cdist = fuzz.ratio, fuzz.partial_ratio, process.cdist
        self.home, self.threshold, self.tagged_threshold = home, threshold, tagged_threshold
        self.names = [("name", e.name, normalize(e.name), e.domain) for e in home.entities]
        self.names += [("area", a.name, normalize(a.name), None) for a in home.areas]
        self.names += [("floor", f.name, normalize(f.name), None) for f in home.floors]
        self.domain_of = {e.name: e.domain for e in home.entities}
        # The scan's order, longest names first; and each name's word count, for the widths it is compared at.
        self._scan = sorted(self.names, key=lambda n: -len(n[2]))
        self._scan_norms = [n[2] for n in self._scan]
        self._scan_sizes = np.array([len(n[2].split()) for n in self._scan])
        self._widest = int(self._scan_sizes.max()) + 1 if self._scan else 0
        self._last: tuple[tuple[str, ...], list[Match]] = ((), [])  # the router scans a command twice (guard, slots)

    def find(self, text: str, tagged: Sequence[Any] = ()) -> list[Match]:
        """Non-overlapping best matches: the blind scan, the longest names first; then in the tagger's spans
        (`tagged`: objects with kind, start and end character offsets) over the words left, for the kinds
        of slot still missing."""
        words = normalize(text).split()
        last = self._last  # read once: the server answers commands in two threads, each may replace it
        if tuple(words) != last[0]:
            last = self._last = (tuple(words), self._blind_scan(words))
        found = list(last[1])
        scanned = {m.kind for m in found}
        for span in tagged:
            m = self._in_span(words, len(normalize(text[:span.start]).split()), len(normalize(text[:span.end]).split()),
                              span.kind, found)
            if m is not None and m.kind not in scanned and all(m.value != f.value for f in found):
                found.append(m)
        return sorted(found, key=lambda m: m.start)

    def _blind_scan(self, words: list[str]) -> list[Match]:
        """Each name, longest first, at its best place among the word n-grams one word shorter, as long or
        one word longer than it, not overlapping a name found before it. Every name against every n-gram
        is one rapidfuzz call (C++): the same scores as a loop of ratio() calls, at a sixth of the CPU of
        that Python loop (0.6 ms a command for the example homes' 60-odd names, 2-core EPYC)."""
        grams = [(i, w) for w in range(1, min(self._widest, len(words)) + 1) for i in range(len(words) - w + 1)]
        if not grams or not self._scan:
            return []
        # [names, n-grams]; below the threshold reads 0. Columns ordered by width, then position: the
        # first best column is the one the loop over widths and positions kept.
        scores = self._cdist(self._scan_norms, [" ".join(words[i:i + w]) for i, w in grams],
                             scorer=self._ratio, score_cutoff=self.threshold, dtype=np.float64)
        starts = np.array([i for i, _ in grams])
        widths = np.array([w for _, w in grams])
        taken = np.zeros(len(words) + 1, dtype=np.int64)  # cumulative count of words taken by a found name
        found: list[Match] = []
        for row in np.flatnonzero(scores.max(axis=1) >= self.threshold):  # the longest names first, as sorted
            size = self._scan_sizes[row]
            ok = (np.abs(widths - size) <= 1) & (scores[row] >= self.threshold)
            ok &= taken[starts + widths] == taken[starts]  # no word of the n-gram taken
            if not ok.any():
                continue
            col = int(np.flatnonzero(ok)[np.argmax(scores[row][ok])])
            kind, value, _, _ = self._scan[row]
            found.append(Match(kind, value, float(scores[row, col]), int(starts[col]), int(starts[col] + widths[col])))
            taken[starts[col] + 1:] += np.minimum(np.arange(1, len(words) + 1 - starts[col]), widths[col])
        return found

    def _in_span(self, words: list[str], i: int, j: int, kind: str, found: list[Match]) -> Match | None:
        """The home's best name in the tagged words [i, j), or in a window one word wider or narrower (the
        tagger's edges may be off by a word), at the tagged threshold. Any kind: on held-out names the tagger
        places a span far better than it names its kind (a floor taken for an area); the home's names
        decide, and `kind` only breaks ties. The tagged words themselves must also be like part of the name
        (partial ratio at the same threshold), so that a neighbour added by the wider window cannot carry a
        match alone ("quick question lights" matched "String Lights" through "lights")."""
        tagged = " ".join(words[i:j])
        if j <= i or len(tagged) < 3:
            return None
        best = None
        for lo in range(max(0, i - 1), i + 2):
            for hi in range(max(lo + 1, j - 1), min(len(words), j + 1) + 1):
                if hi <= i or lo >= j or any(lo < m.end and m.start < hi for m in found):
                    continue
                piece = " ".join(words[lo:hi])
                if len(piece) < 3:
                    continue
                for k, value, norm, _ in self.names:
                    score = self._ratio(piece, norm)
                    if score < self.tagged_threshold or self._partial(tagged, norm) < self.tagged_threshold:
                        continue
                    if best is None or (score, k == kind) > (best.score, best.kind == kind):
                        best = Match(k, value, score, lo, hi, True)
        return best

    def slots(self, text: str, intent: str | None, context: dict[str, Any] | None = None,
              tagged: Sequence[Any] = ()) -> dict[str, Any]:
        """`tagged`: the slot tagger's spans for this text, when the engine has one."""
        slots: dict[str, Any] = {}
        for m in self.find(text, tagged):
            slots.setdefault(m.kind, m.value)
        if "name" not in slots:
            words = f" {normalize(text)} "
            for domain, terms in DOMAIN_WORDS.items():
                if any(f" {t} " in words for t in terms) and self._has_domain(domain):
                    slots["domain"] = domain
                    break
            area = (context or {}).get("area")
            if "area" not in slots and "floor" not in slots and isinstance(area, str):
                slots["area"] = area  # "turn on the lights" said in a room: that room
        return {**slots, **self.number(text, intent)}

    @staticmethod
    def number(text: str, intent: str | None) -> dict[str, Any]:
        """The setting a number intent needs ("dim it to 40 percent" -> brightness 40)."""
        slot = NUMBER_SLOTS.get(intent or "")
        numbers = _NUMBER.findall(normalize(text))
        if not slot or not numbers:
            return {}
        value = float(numbers[-1])
        return {slot: int(value) if value.is_integer() else value}

    def _has_domain(self, domain: str) -> bool:
        return any(e.domain == domain for e in self.home.entities)
