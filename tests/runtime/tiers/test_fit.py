"""Which intents fit what a command names, by Home Assistant's domain rules and the home's contents."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.runtime.tiers.fit import IntentFit
from edgeslm.runtime.tiers.home import load_home

HOMES = Path(__file__).resolve().parents[3] / "homes"
LABELS = ["HassTurnOn", "HassTurnOff", "HassGetState", "HassClimateGetTemperature", "HassLightSet", "HassSetPosition",
          "HassFanSetSpeed", "HassStartTimer"]


@pytest.fixture(scope="module")
def fit():
    return IntentFit(load_home(HOMES / "maple-cottage.yaml"))


def kept(fit, slots):
    return [label for label, keep in zip(LABELS, fit.mask(LABELS, slots), strict=True) if keep]


def test_a_humidity_sensor_has_a_state_not_a_switch_or_a_temperature(fit):
    assert kept(fit, {"name": "Bathroom Humidity"}) == ["HassGetState", "HassStartTimer"]


def test_a_temperature_sensor_answers_the_temperature(fit):
    assert "HassClimateGetTemperature" in kept(fit, {"name": "Living Room Temperature"})


def test_a_percentage_for_a_room_goes_to_what_the_room_holds(fit):
    # the kitchen has lights and a switch, no blinds and no fan
    room = kept(fit, {"area": "Kitchen"})
    assert "HassLightSet" in room and "HassSetPosition" not in room and "HassFanSetSpeed" not in room
    assert "HassSetPosition" in kept(fit, {"area": "Living Room"})  # the patio blinds
    assert "HassFanSetSpeed" in kept(fit, {"floor": "Upstairs"})  # the bedroom's ceiling fan


def test_a_named_light_cannot_be_a_blind(fit):
    assert "HassSetPosition" not in kept(fit, {"name": "Floor Lamp"})
    assert "HassLightSet" in kept(fit, {"name": "Floor Lamp"})


def test_nothing_named_keeps_whatever_the_home_can_do(fit):
    assert kept(fit, {}) == LABELS


def test_slots_that_fit_nothing_restrict_nothing(fit):
    assert kept(fit, {"name": "Bathroom Humidity"}) != LABELS
    assert list(fit.mask(["HassLightSet"], {"name": "Bathroom Humidity"})) == [True]
