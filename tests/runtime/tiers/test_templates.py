"""Tier 1 on a real home: Home Assistant's grammar through hassil, the home's names as slot values."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.templates import TemplateTier

HOMES = Path(__file__).resolve().parents[3] / "homes"


@pytest.fixture(scope="module")
def cottage():
    return TemplateTier(load_home(HOMES / "maple-cottage.yaml"))


@pytest.mark.parametrize("text, context, intent, slots", [
    ("turn on the floor lamp", None, "HassTurnOn", {"name": "Floor Lamp"}),
    ("turn off the lights in the kitchen", None, "HassTurnOff", {"area": "Kitchen", "domain": "light"}),
    ("turn on the lights", {"area": "Living Room"}, "HassTurnOn", {"area": "Living Room", "domain": "light"}),
    ("set the bedside lamp to 40%", None, "HassLightSet", {"name": "Bedside Lamp", "brightness": 40}),
    ("is the garage door open", None, "HassGetState", {"name": "Garage Door", "state": "open"}),
])
def test_commands_in_the_grammar_get_home_assistant_intents_with_the_homes_spelling(cottage, text, context, intent,
                                                                                     slots):
    answer = cottage.answer(text, context)
    assert answer is not None and answer.tier == "templates" and answer.confidence == 1.0
    assert (answer.intent, answer.slots) == (intent, slots)


def test_names_from_another_home_and_free_speech_fall_through(cottage):
    assert cottage.answer("turn on the desk lamp") is None  # harbor-loft's lamp, not this home's
    assert cottage.answer("turn on the lights") is None  # which room? no context: not a template answer
    assert cottage.answer("could you maybe brighten things up a bit over there") is None


def test_each_home_gets_its_own_names():
    loft = TemplateTier(load_home(HOMES / "harbor-loft.yaml"))
    assert loft.answer("turn on the desk lamp").slots == {"name": "Desk Lamp"}
    assert loft.answer("turn on the floor lamp") is None


def test_the_grammar_is_parsed_and_prefiltered_at_start_not_on_a_users_command():
    # hassil parses templates and computes their required words lazily, on the first command that reaches
    # them: a device's first commands paid 0.3 s of CPU for it; the tier does it when built (a tier of its
    # own: commands answered by a shared one would have computed much of it)
    tier = TemplateTier(load_home(HOMES / "harbor-loft.yaml"))
    blocks = [block for intent in tier.intents.intents.values() for block in intent.data]
    assert blocks and all(block.__dict__.get("sentences") is not None for block in blocks)
    assert all(s.required_clauses is not None for block in blocks for s in block.sentences)


def test_candidates_are_searched_likeliest_first_and_the_rest_only_when_it_does_not_match(cottage, monkeypatch):
    import hassil

    searched = []
    real = hassil.recognize_best

    def spy(text, intents, **kwargs):
        searched.append(sorted(intents.intents))
        return real(text, intents, **kwargs)

    monkeypatch.setattr(hassil, "recognize_best", spy)
    answer = cottage.answer("turn on the floor lamp", None, ("HassTurnOn", "HassTurnOff", "HassGetState"))
    assert (answer.intent, answer.slots) == ("HassTurnOn", {"name": "Floor Lamp"})
    assert searched == [["HassTurnOn"]]  # confirmed by the likeliest alone: the others never searched

    searched.clear()
    answer = cottage.answer("turn on the floor lamp", None, ("HassTurnOff", "HassTurnOn", "HassGetState"))
    assert answer.intent == "HassTurnOn"  # the likeliest did not match; the next did
    assert searched == [["HassTurnOff"], ["HassGetState", "HassTurnOn"]]

    searched.clear()
    assert cottage.answer("turn on the floor lamp", None, ("HassLightSet",)) is None
    assert searched == [["HassLightSet"]]  # one candidate: nothing else to search
