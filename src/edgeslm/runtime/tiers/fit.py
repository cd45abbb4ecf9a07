"""Which intents can apply to what a command names, in this home. The encoder knows language, not the
home: "what is the soil probe's level" reads like a climate question to it, but the soil probe is a
sensor, and a sensor has a state, not a temperature set point or an on switch. Given the slots the
home matcher found, an intent stays possible only if something it could act on is there: a named
entity of a domain the intent takes, or (when no device is named) such an entity in the named area,
floor or home. The rules are Home Assistant's own (which domains each intent's grammar targets,
data/ha_slots.py), not tuned to any home.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeslm.data.ha_slots import NAME_DOMAINS_BY_INTENT
from edgeslm.runtime.tiers.home import Entity, Home

SWITCHING = ("HassTurnOn", "HassTurnOff", "HassToggle")  # need a device that can be switched
READ_ONLY = ("sensor", "binary_sensor", "weather")


class IntentFit:
    def __init__(self, home: Home):
        self.home = home
        self.area_of_floor = {f.name: {a.id for a in home.areas if a.floor == f.id} for f in home.floors}
        self.area_id = {a.name: a.id for a in home.areas}

    def targets(self, slots: dict[str, Any]) -> list[Entity]:
        """The entities a command with these slots could be about."""
        entities = list(self.home.entities)
        if isinstance(slots.get("name"), str):
            return [e for e in entities if e.name == slots["name"]]
        if isinstance(slots.get("area"), str) and slots["area"] in self.area_id:
            entities = [e for e in entities if e.area == self.area_id[slots["area"]]]
        elif isinstance(slots.get("floor"), str) and slots["floor"] in self.area_of_floor:
            entities = [e for e in entities if e.area in self.area_of_floor[slots["floor"]]]
        if isinstance(slots.get("domain"), str):
            entities = [e for e in entities if e.domain == slots["domain"]]
        return entities

    def fits(self, intent: str, targets: list[Entity]) -> bool:
        domains = NAME_DOMAINS_BY_INTENT.get(intent)
        if domains is not None:
            return any(e.domain in domains and self._measures(intent, e) for e in targets)
        if intent in SWITCHING:
            return any(e.domain not in READ_ONLY for e in targets)
        return True  # no device constraint (timers, state questions, the time, ...)

    def mask(self, labels: list[str], slots: dict[str, Any]) -> np.ndarray:
        """bool [labels]: the intents that fit; all of them when none does (the slots were wrong)."""
        targets = self.targets(slots)
        keep = np.array([self.fits(label, targets) for label in labels], dtype=bool)
        return keep if keep.any() else np.ones(len(labels), dtype=bool)

    @staticmethod
    def _measures(intent: str, entity: Entity) -> bool:
        if intent == "HassClimateGetTemperature" and entity.domain == "sensor":
            return entity.attributes.get("device_class") == "temperature"
        return True
