"""What an answer may say, from Home Assistant's grammar and the home: the intents the grammar knows,
each intent's slots, and for each slot the values it can take (the home's entity, area and floor
names; numbers in the grammar's range; the grammar's fixed values; free text for wildcards). A tier
whose answer comes from outside the device (or from a generator) is checked against it, so an
invented intent, an unknown slot or a device the home does not have is refused, never acted on."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.tiers.home import Home

MAX_TEXT_SLOT = 200  # characters in a wildcard value (a message, a timer name, a list item)
_REF = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")
_RULE = re.compile(r"<([^>]+)>")


class InvalidAnswer(EdgeslmError):
    """An answer the grammar or the home rules out; `reason` names the kind, for counting."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class SlotRule:
    home: set[str] = field(default_factory=set)  # name | area | floor: spelled as the home spells them
    ranges: list[tuple[float, float]] = field(default_factory=list)
    values: set[Any] = field(default_factory=set)  # the grammar's fixed or listed values
    wildcard: bool = False


@lru_cache(maxsize=8)
def grammar_slots(language: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """intent -> slot -> the grammar lists (or "=value" for a fixed value) it is filled from."""
    try:
        import home_assistant_intents
    except ImportError:
        raise EdgeslmError("checking answers needs home-assistant-intents: pip install 'edgeslm[assist]'") from None
    data = home_assistant_intents.get_intents(language)
    if data is None:
        raise EdgeslmError(f"home-assistant-intents has no grammar for language {language!r}")
    rules = dict(data.get("expansion_rules", {}))
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for intent, body in data["intents"].items():
        slots: dict[str, set[str]] = {}
        for block in body.get("data", []):
            local = {**rules, **block.get("expansion_rules", {})}
            for sentence in block.get("sentences", []):
                for list_name, slot in _refs(sentence, local):
                    slots.setdefault(slot, set()).add(list_name)
            for slot, value in (block.get("slots") or {}).items():
                for v in value if isinstance(value, list) else [value]:
                    slots.setdefault(slot, set()).add(f"={v}")
        out[intent] = {slot: tuple(sorted(lists)) for slot, lists in slots.items()}
    return out


def _refs(template: str, rules: dict[str, str], depth: int = 0) -> list[tuple[str, str]]:
    found = [(m.group(1), m.group(2) or m.group(1)) for m in _REF.finditer(template)]
    if depth < 8:  # rules name rules; HA's grammar nests a few levels, never in a cycle
        for m in _RULE.finditer(template):
            if m.group(1) in rules:
                found += _refs(rules[m.group(1)], rules, depth + 1)
    return found


class AnswerCheck:
    """`check(intent, slots)` gives the slots as the home spells them, or raises InvalidAnswer."""

    def __init__(self, home: Home):
        import home_assistant_intents

        self.home = home
        self.intents = grammar_slots(home.language)
        lists = home_assistant_intents.get_intents(home.language).get("lists", {})
        names = {"name": {e.name for e in home.entities}, "area": {a.name for a in home.areas},
                 "floor": {f.name for f in home.floors}}
        self._spelling = {kind: {v.casefold(): v for v in values} for kind, values in names.items()}
        self.rules: dict[str, dict[str, SlotRule]] = {}
        for intent, slots in self.intents.items():
            self.rules[intent] = {slot: _rule(sources, lists, names) for slot, sources in slots.items()}

    def slot_names(self, intent: str) -> tuple[str, ...]:
        return tuple(sorted(self.intents.get(intent, {})))

    def check(self, intent: Any, slots: Any, restore: Any = None) -> dict[str, Any]:
        """`restore`: a function that puts redacted text back into a wildcard value (Redaction.restore)."""
        if not isinstance(intent, str) or intent not in self.rules:
            raise InvalidAnswer("unknown_intent", f"intent {str(intent)[:80]!r} is not one the grammar knows")
        if not isinstance(slots, dict):
            raise InvalidAnswer("bad_shape", f"slots must be an object, not {type(slots).__name__}")
        out: dict[str, Any] = {}
        for name, value in slots.items():
            rule = self.rules[intent].get(name)
            if rule is None:
                raise InvalidAnswer("unknown_slot", f"{intent} has no slot {str(name)[:40]!r} "
                                                    f"(it has {', '.join(self.slot_names(intent)) or 'none'})")
            out[name] = self._value(intent, name, value, rule, restore)
        return out

    def _value(self, intent: str, name: str, value: Any, rule: SlotRule, restore: Any) -> Any:
        if isinstance(value, str) and rule.home:
            spelled = self._spelling.get(name if name in self._spelling else "name", {}).get(value.strip().casefold())
            if spelled is not None and spelled in rule.home:
                return spelled
        if rule.ranges and (number := _number(value)) is not None:
            if any(lo <= number <= hi for lo, hi in rule.ranges):
                return int(number) if float(number).is_integer() else number
        if value in rule.values or (isinstance(value, str) and value in {str(v) for v in rule.values}):
            return next(v for v in rule.values if v == value or str(v) == value)
        if rule.wildcard and isinstance(value, str) and 0 < len(value.strip()) <= MAX_TEXT_SLOT:
            text = restore(value) if restore is not None else value
            if "<" in text and re.search(r"<(PERSON|PHONE|EMAIL|ADDRESS|CODE)>", text):
                raise InvalidAnswer("bad_slot", f"{intent}.{name}: a placeholder the command did not carry")
            return text
        raise InvalidAnswer("bad_slot", f"{intent}.{name}: {repr(value)[:80]} is not "
                                        f"{'a name this home has' if rule.home else 'a value this slot takes'}")


def _rule(sources: tuple[str, ...], lists: dict[str, Any], names: dict[str, set[str]]) -> SlotRule:
    rule = SlotRule()
    for source in sources:
        if source.startswith("="):
            rule.values.add(source[1:])
        elif source in names:
            rule.home |= names[source]
        elif (spec := lists.get(source)) is None:
            rule.wildcard = True  # a list HA fills at run time that a home file does not describe
        elif spec.get("wildcard"):
            rule.wildcard = True
        elif "range" in spec:
            r = spec["range"]
            lo, hi = float(r["from"]), float(r["to"])
            m = float(r.get("multiplier", 1))
            rule.ranges.append((min(lo * m, hi * m), max(lo * m, hi * m)))
        else:
            for v in spec.get("values", []):
                rule.values.add(v.get("out", v.get("in")) if isinstance(v, dict) else v)
    return rule


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None
