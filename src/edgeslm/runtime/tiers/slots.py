"""Slots from the home, for tiers whose model gives only the intent: the home's entity, area and floor
names found in the text by fuzzy matching (so "the flor lamp" still finds "Floor Lamp"), a device
domain from the words for it when no entity is named, and the number a setting intent needs.

Values are spelled as the home spells them, as Home Assistant's recognizer would give them. This is
matching, not learning: a learned slot tagger is still to come (issue 12), and this is its fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Match:
    kind: str  # name | area | floor
    value: str  # as the home spells it
    score: float
    start: int  # word offsets in the normalized text
    end: int


class HomeMatcher:
    def __init__(self, home: Home, threshold: float = 85.0):
        from rapidfuzz import fuzz

        self._ratio = fuzz.ratio
        self.home, self.threshold = home, threshold
        self.names = [("name", e.name, normalize(e.name), e.domain) for e in home.entities]
        self.names += [("area", a.name, normalize(a.name), None) for a in home.areas]
        self.names += [("floor", f.name, normalize(f.name), None) for f in home.floors]
        self.domain_of = {e.name: e.domain for e in home.entities}

    def find(self, text: str) -> list[Match]:
        """Non-overlapping best matches, the longest names first."""
        words = normalize(text).split()
        found: list[Match] = []
        for kind, value, norm, _ in sorted(self.names, key=lambda n: -len(n[2])):
            size = len(norm.split())
            best = None
            for width in {size - 1, size, size + 1} - {0}:
                for i in range(0, len(words) - width + 1):
                    if any(i < m.end and m.start < i + width for m in found):
                        continue
                    score = self._ratio(" ".join(words[i:i + width]), norm)
                    if score >= self.threshold and (best is None or score > best.score):
                        best = Match(kind, value, score, i, i + width)
            if best is not None:
                found.append(best)
        return sorted(found, key=lambda m: m.start)

    def slots(self, text: str, intent: str | None, context: dict[str, Any] | None = None) -> dict[str, Any]:
        slots: dict[str, Any] = {}
        for m in self.find(text):
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
