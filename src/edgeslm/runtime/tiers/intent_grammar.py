"""The intent schema (which slots each of Home Assistant's intents takes, and what each slot may hold),
read from HA's own intent grammars, and the GBNF grammar made from it and a home, under which a
decoder can only write `{"intent": "<a known intent>", "slots": {<that intent's slots>}}` with entity,
area and floor names spelled exactly as the home spells them.

Pure functions: the schema from HA's intents data (`home_assistant_intents.get_intents(language)`),
the grammar from the schema and the home. Slot names are the ones hassil's recognizer gives
(`{timer_minutes:minutes}` is the slot `minutes`), so every tier answers alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgeslm.runtime.tiers.home import Home

HOME_LISTS = ("name", "area", "floor")  # slot lists whose values are the home's names
# Slots first in this order, then the rest as HA's grammar first mentions them: one order for the
# few-shot examples and the grammar, so the model is never asked to choose an order.
SLOT_ORDER = ("name", "area", "floor", "domain", "device_class", "state")
MAX_DIGITS = 5  # color_temperature goes to 10000


@dataclass
class SlotValues:
    """What a slot may hold: some of the home's name lists, fixed words, a number, or free text.
    `name_domains`: the entity domains HA's sentences ask of a `{name}` here; None: any entity."""

    home: set[str] = field(default_factory=set)  # of HOME_LISTS
    words: set[str] = field(default_factory=set)
    number: bool = False
    text: bool = False
    name_domains: set[str] | None = field(default_factory=set)


@dataclass
class IntentSpec:
    """An intent's slots (in SLOT_ORDER), and the entity domains its sentences require anywhere
    (empty: none, as for timers; HassGetWeather requires a weather entity)."""

    slots: dict[str, SlotValues]
    domains: set[str] = field(default_factory=set)


Schema = dict[str, IntentSpec]


def for_home(schema: Schema, home: Home) -> Schema:
    """The intents that can act in this home: one whose sentences all ask for devices of domains the
    home does not have (a lawn mower, a vacuum) cannot, and is left out of the grammar."""
    domains = {e.domain for e in home.entities}
    return {name: spec for name, spec in schema.items() if not spec.domains or spec.domains & domains}


def intent_schema(data: dict[str, Any]) -> Schema:
    """Every intent of HA's intents data, with the slots its sentences capture (expansion rules
    followed) and the fixed slots its sentences set (HassTurnOn's `domain: light`)."""
    from hassil import Intents
    from hassil.expression import Group, ListReference, RuleReference, Sentence

    intents = Intents.from_dict(data)
    lists = data.get("lists", {})

    def refs(expr: Any, rules: dict[str, Sentence], seen: frozenset[str]) -> list[ListReference]:
        if isinstance(expr, Sentence):
            return refs(expr.expression, rules, seen)
        if isinstance(expr, ListReference):
            return [expr]
        if isinstance(expr, RuleReference):
            rule = rules.get(expr.rule_name)
            if rule is None or expr.rule_name in seen:
                return []
            return refs(rule, rules, seen | {expr.rule_name})
        if isinstance(expr, Group):
            return [r for item in expr.items for r in refs(item, rules, seen)]
        return []

    schema: Schema = {}
    for name, intent in sorted(intents.intents.items()):
        slots: dict[str, SlotValues] = {}
        needs: set[str] = set()
        for data_item in intent.data:
            rules = {**intents.expansion_rules, **data_item.expansion_rules}
            item_domains = _domains((data_item.requires_context or {}).get("domain"))
            item_domains |= _domains((data_item.slots or {}).get("domain"))
            needs |= item_domains
            for sentence in data_item.sentences:
                for ref in refs(sentence, rules, frozenset()):
                    values = slots.setdefault(ref.slot_name, SlotValues())
                    _add_list(values, ref.list_name, lists)
                    if ref.list_name == "name" and values.name_domains is not None:
                        values.name_domains = values.name_domains | item_domains if item_domains else None
            for slot, value in (data_item.slots or {}).items():
                values = slots.setdefault(slot, SlotValues())
                for v in value if isinstance(value, list) else [value]:
                    values.words.add(str(v))
        schema[name] = IntentSpec(_ordered(slots), needs)
    return schema


def _domains(value: Any) -> set[str]:
    return set() if value is None else {value} if isinstance(value, str) else {str(v) for v in value}


def _add_list(values: SlotValues, list_name: str, lists: dict[str, Any]) -> None:
    if list_name in HOME_LISTS:
        values.home.add(list_name)
        return
    spec = lists.get(list_name)
    if not isinstance(spec, dict) or spec.get("wildcard"):
        values.text = True  # a wildcard, or a list HA fills at run time
    elif "range" in spec:
        values.number = True
    else:
        for v in spec.get("values", []):
            out = v.get("out", v.get("in")) if isinstance(v, dict) else v
            if isinstance(out, int | float) and not isinstance(out, bool):
                values.number = True
            elif out is not None:
                values.words.add(str(out))


def _ordered(slots: dict[str, SlotValues]) -> dict[str, SlotValues]:
    first = [s for s in SLOT_ORDER if s in slots]
    return {s: slots[s] for s in first + [s for s in slots if s not in SLOT_ORDER]}


# -- the grammar ----------------------------------------------------------------------------------
def intent_grammar(schema: Schema, home: Home, lead: str = '{"intent": ') -> str:
    """GBNF for one answer. Slots appear at most once each, in the schema's order, any of them
    optional (HA's answers name only what the command said). `lead`: what the answer starts with
    before the intent's quoted name (a prompt that already ends in `{"intent":` leaves " "). Rules for a slot and its values, and
    for a run of optional slots, are shared between intents, so a home of a hundred devices still
    makes a grammar of a few thousand characters."""
    names = {"name": sorted({e.name for e in home.entities}), "area": sorted({a.name for a in home.areas}),
             "floor": sorted({f.name for f in home.floors})}
    domains = {e.domain for e in home.entities}
    schema = for_home(schema, home)
    lines = [f'root ::= {_literal(lead)} answer "}}"', "answer ::= " + " | ".join(
        f"i{i}" for i in range(len(schema)))]
    for kind, values in names.items():
        if values:
            lines.append(f"home-{kind} ::= " + " | ".join(_literal(json.dumps(v, ensure_ascii=False)) for v in values))
    name_rules: dict[frozenset[str], str] = {}

    def home_names(only: set[str] | None) -> str | None:
        """The rule for the entity names of these domains (None: all of them)."""
        if only is None or not names["name"]:
            return "home-name" if names["name"] else None
        chosen = sorted({e.name for e in home.entities if e.domain in only})
        if not chosen:
            return None
        key = frozenset(chosen)
        if key not in name_rules:
            name_rules[key] = f"names{len(name_rules)}"
            lines.append(f"{name_rules[key]} ::= " + " | ".join(_literal(json.dumps(v, ensure_ascii=False)) for v in chosen))
        return name_rules[key]
    lines.append(f'number ::= "-"? ("0" | [1-9] [0-9]{{0,{MAX_DIGITS - 1}}}) ("." [0-9])?')  # JSON: no leading 0
    lines.append('text ::= "\\"" [^"\\\\\\x00-\\x1f]{1,80} "\\""')
    pair_rules: dict[str, str] = {}  # the rule's body -> its name
    tail_rules: dict[tuple[str, ...], str] = {}

    def pair(slot: str, values: SlotValues) -> str | None:
        words = set(values.words) | (domains if slot == "domain" else set())
        options = [f"home-{k}" for k in sorted(values.home - {"name"}) if names[k]]
        if "name" in values.home and (rule := home_names(values.name_domains)) is not None:
            options.insert(0, rule)
        options += [_literal(json.dumps(w, ensure_ascii=False)) for w in sorted(words)]
        options += ["number"] * values.number
        if values.text:
            options = ["text"]
        if not options:  # only a list of the home's names, and this home leaves it empty
            return None
        body = f"{_literal(json.dumps(slot) + ': ')} ({' | '.join(options)})"
        if body not in pair_rules:
            pair_rules[body] = f"p{len(pair_rules)}"
            lines.append(f"{pair_rules[body]} ::= {body}")
        return pair_rules[body]

    def tail(pairs: tuple[str, ...]) -> str:
        """Rule for: each of `pairs`, in order, optionally, each after a comma."""
        if pairs not in tail_rules:
            tail_rules[pairs] = name = f"t{len(tail_rules)}"
            rest = f" {tail(pairs[1:])}" if len(pairs) > 1 else ""
            lines.append(f'{name} ::= ("," " " {pairs[0]})?{rest}')
        return tail_rules[pairs]

    for i, (intent, spec) in enumerate(schema.items()):
        head = _literal(json.dumps(intent) + ', "slots": {')
        pairs = tuple(p for p in (pair(slot, values) for slot, values in spec.slots.items()) if p is not None)
        firsts = [pairs[k] + (f" {tail(pairs[k + 1:])}" if k + 1 < len(pairs) else "") for k in range(len(pairs))]
        body = f" ({' | '.join(firsts)})?" if firsts else ""
        lines.append(f'i{i} ::= {head}{body} "}}"')
    return "\n".join(lines) + "\n"


def _literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
