"""The intent schema read from Home Assistant's grammars, and the GBNF made from it and a home (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.runtime.tiers.home import load_home, parse_home
from edgeslm.runtime.tiers.intent_grammar import for_home, intent_grammar, intent_schema

HOMES = Path(__file__).resolve().parents[3] / "homes"


@pytest.fixture(scope="module")
def schema():
    import home_assistant_intents

    return intent_schema(home_assistant_intents.get_intents("en"))


def test_slots_are_the_recognizers_names_and_hold_the_right_kind_of_value(schema):
    assert len(schema) >= 35 and {"HassTurnOn", "HassLightSet", "HassStartTimer", "HassNevermind"} <= set(schema)
    turn_on = schema["HassTurnOn"].slots
    assert list(turn_on)[:4] == ["name", "area", "floor", "domain"]  # SLOT_ORDER first
    assert turn_on["name"].home == {"name"} and turn_on["area"].home == {"area"}
    assert {"light", "cover", "fan"} <= turn_on["domain"].words  # fixed slots the sentences set
    light_set = schema["HassLightSet"].slots
    assert light_set["brightness"].number and light_set["name"].name_domains == {"light"}
    timer = schema["HassStartTimer"].slots
    assert timer["minutes"].number and timer["name"].text  # {timer_minutes:minutes}; a wildcard timer name
    assert schema["HassNevermind"].slots == {}


def test_intents_needing_devices_the_home_lacks_are_left_out(schema):
    loft = for_home(schema, load_home(HOMES / "harbor-loft.yaml"))  # no vacuum, mower or weather entity
    cottage = for_home(schema, load_home(HOMES / "maple-cottage.yaml"))  # has a robot vacuum
    assert "HassVacuumStart" not in loft and "HassVacuumStart" in cottage
    assert "HassLawnMowerDock" not in loft and "HassGetWeather" not in loft
    assert {"HassTurnOn", "HassStartTimer", "HassNevermind"} <= set(loft)


def test_grammar_spells_each_name_once_json_escaped_and_names_only_fitting_devices(schema):
    home = parse_home("""
language: en
areas: [{name: Küche, id: kueche}]
entities:
  - {name: 'Kid''s "Star" Lamp', id: light.star, area: kueche}
  - {name: Back\\Door, id: lock.back}
""")
    grammar = intent_grammar(for_home(schema, home), home)
    assert grammar.startswith('root ::= "{\\"intent\\": " answer "}"\n')
    # JSON escapes the quotes (\") and the backslash (\\); GBNF escapes each of those again
    assert '"\\"Kid\'s \\\\\\"Star\\\\\\" Lamp\\""' in grammar
    assert '"\\"Back\\\\\\\\Door\\""' in grammar and '"\\"Küche\\""' in grammar
    light_set = next(line for line in grammar.splitlines() if '"\\"HassLightSet\\"' in line)
    assert "home-name" not in light_set  # HassLightSet's names: the lights only
    name_rules = [line for line in grammar.splitlines() if line.startswith("names")]
    assert any("Star" in line and "Back" not in line for line in name_rules)  # the lights-only list
    assert intent_grammar(for_home(schema, home), home, lead=" ").startswith('root ::= " " answer')


def test_grammar_for_a_big_home_stays_within_what_a_request_may_carry(schema):
    from edgeslm.runtime.engines.sampling import MAX_GRAMMAR_CHARS

    entities = "\n".join(f"  - {{name: Device Number {i}, id: light.d{i}, area: a{i % 20}}}" for i in range(120))
    areas = "\n".join(f"  - {{name: Room {i}, id: a{i}}}" for i in range(20))
    home = parse_home(f"language: en\nareas:\n{areas}\nentities:\n{entities}\n")
    assert len(intent_grammar(for_home(schema, home), home)) < MAX_GRAMMAR_CHARS
