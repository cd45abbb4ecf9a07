"""A week of one household's commands for a home, with what Home Assistant would answer for each: the
stream `edgeslm replay` scores the tiers on. Routines repeat at their hour on their days (so habits
and the cache have something to learn), everything else is drawn at random through the day, a share
is made noisy (typos, fillers), and after a few days people start saying "the usual" and "do that
again". The phrasings are our own, written for this generator; they are not Home Assistant's test
sentences, which stay unseen.
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from typing import Any

from edgeslm.data.noise import add_noise

ON = ["turn on the {name}", "switch on the {name}", "{name} on please", "can you turn the {name} on",
      "put the {name} on", "turn the {name} on"]
OFF = ["turn off the {name}", "switch off the {name}", "{name} off please", "can you turn the {name} off",
       "shut off the {name}", "turn the {name} off"]
AREA_OFF = ["turn off the lights in the {area}", "lights off in the {area}", "switch off the {area} lights"]
AREA_ON = ["turn on the lights in the {area}", "lights on in the {area}", "switch on the {area} lights"]
HERE_ON = ["turn on the lights", "lights on please", "switch the lights on"]
DIM = ["set the {name} to {n}%", "dim the {name} to {n} percent", "set {name} brightness to {n}%"]
TEMP = ["what is the temperature in the {area}", "how warm is it in the {area}", "what's the {area} temperature"]
LOCK = ["lock the {name}", "please lock the {name}"]
USUAL, AGAIN = ["the usual", "the usual please", "do the usual"], ["do that again", "again please"]


@dataclass(frozen=True)
class Row:
    ts: int
    text: str
    label: str
    slots: dict[str, Any]
    context: dict[str, Any] | None = None
    noisy: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "label": self.label, "slots": self.slots, "ts": self.ts}
        if self.context:
            out["context"] = self.context
        return out


def week(home: Any, seed: int = 0, days: int = 7, per_day: int = 40, noisy_share: float = 0.15,
         start: tuple[int, int, int] = (2026, 11, 30)) -> list[Row]:
    """`days` days of commands for `home` (a runtime.tiers.home.Home), in time order."""
    rng = random.Random(seed)
    lights = [e for e in home.entities if e.domain == "light"]
    switches = [e for e in home.entities if e.domain in ("light", "switch", "fan")]
    locks = [e for e in home.entities if e.domain == "lock"]
    light_areas = sorted({e.area for e in lights if e.area})
    area_name = {a.id: a.name for a in home.areas}
    temp_areas = sorted({e.area for e in home.entities if e.attributes.get("device_class") == "temperature" and e.area})

    def command(kind: str) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
        if kind == "on" or kind == "off":
            e = rng.choice(switches)
            return rng.choice(ON if kind == "on" else OFF).format(name=e.name.lower()), \
                "HassTurnOn" if kind == "on" else "HassTurnOff", {"name": e.name}, None
        if kind in ("area_on", "area_off"):
            area = area_name[rng.choice(light_areas)]
            return rng.choice(AREA_ON if kind == "area_on" else AREA_OFF).format(area=area.lower()), \
                "HassTurnOn" if kind == "area_on" else "HassTurnOff", {"area": area, "domain": "light"}, None
        if kind == "here":
            area = area_name[rng.choice(light_areas)]
            return rng.choice(HERE_ON), "HassTurnOn", {"area": area, "domain": "light"}, {"area": area}
        if kind == "dim":
            e, n = rng.choice(lights), rng.choice([10, 20, 25, 30, 40, 50, 60, 75, 80, 100])
            return rng.choice(DIM).format(name=e.name.lower(), n=n), "HassLightSet", {"name": e.name, "brightness": n}, None
        if kind == "temp" and temp_areas:
            area = area_name[rng.choice(temp_areas)]
            return rng.choice(TEMP).format(area=area.lower()), "HassClimateGetTemperature", {"area": area}, None
        e = rng.choice(locks or switches)
        return rng.choice(LOCK).format(name=e.name.lower()), "HassTurnOn", {"name": e.name}, None

    kinds = ["on", "off", "on", "off", "area_on", "area_off", "here", "dim", "temp", "lock"]
    # Routines: the same command at about the same time on every weekday (or weekend day)
    routines = []
    for _ in range(5):
        text, label, slots, context = command(rng.choice(kinds[:8]))
        routines.append((rng.randint(6 * 60, 23 * 60), rng.random() < 0.7, text, label, slots, context))
    rows: list[Row] = []
    day0 = calendar.timegm((*start, 0, 0, 0))
    for day in range(days):
        base = day0 + day * 86_400
        weekend = (calendar.weekday(*start) + day) % 7 >= 5
        todays = []
        for minute, weekday_only, text, label, slots, context in routines:
            if weekday_only and weekend:
                continue
            at = base + 60 * (minute + rng.randint(-20, 20))
            said = rng.choice(USUAL) if day >= 4 and rng.random() < 0.5 else text
            todays.append((at, said, label, slots, context))
        for _ in range(per_day - len(todays)):
            at = base + 60 * rng.randint(6 * 60, 23 * 60 + 30)
            todays.append((at, *command(rng.choice(kinds))))
        todays.sort(key=lambda r: r[0])
        previous = None
        for at, text, label, slots, context in todays:
            if previous is not None and rng.random() < 0.04:  # "do that again", a minute later
                rows.append(Row(at - 60 if at - 60 > previous[0] else at, rng.choice(AGAIN), previous[1],
                                previous[2], previous[3]))
            noisy = text not in USUAL and rng.random() < noisy_share
            rows.append(Row(at, add_noise(text, rng) if noisy else text, label, slots, context, noisy))
            previous = (at, label, slots, context)
    rows.sort(key=lambda r: r.ts)
    return rows
