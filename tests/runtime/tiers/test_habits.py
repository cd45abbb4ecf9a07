"""Habits learned online: "the usual", "same as yesterday", "do that again", only from the past."""

from __future__ import annotations

import calendar

import pytest

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.habits import Habits
from edgeslm.runtime.tiers.router import Assistant

MONDAY = calendar.timegm((2026, 11, 30, 0, 0, 0))  # 2026-11-30 was a Monday
HOUR, DAY = 3600, 86400
COFFEE = Answer("HassTurnOn", {"name": "Coffee Maker"})
LAMP = Answer("HassTurnOff", {"name": "Floor Lamp"})


def test_the_usual_is_what_was_asked_at_this_hour_on_enough_days_of_the_same_kind(tmp_path):
    h = Habits(str(tmp_path / "h.sqlite"), "home")
    for day in range(3):  # Mon, Tue, Wed around 07:00
        h.observe(COFFEE, None, MONDAY + day * DAY + 7 * HOUR + 300)
        h.observe(LAMP, None, MONDAY + day * DAY + 22 * HOUR)
    usual = h.answer("the usual please", None, MONDAY + 3 * DAY + 6 * HOUR + 50 * 60)  # Thursday 06:50
    assert usual is not None and (usual.intent, usual.slots, usual.tier) == ("HassTurnOn", {"name": "Coffee Maker"},
                                                                           "habits")
    assert h.answer("the usual", None, MONDAY + 3 * DAY + 22 * HOUR).slots == {"name": "Floor Lamp"}
    assert h.answer("the usual", None, MONDAY + 5 * DAY + 7 * HOUR) is None  # Saturday: another kind of day
    assert h.answer("the usual", None, MONDAY + 3 * DAY + 12 * HOUR) is None  # noon: nothing usual
    assert h.answer("the usual", {"area": "Kitchen"}, MONDAY + 3 * DAY + 7 * HOUR) is None  # another room


def test_two_days_are_not_a_habit(tmp_path):
    h = Habits(str(tmp_path / "h.sqlite"), "home")
    for day in range(2):
        h.observe(COFFEE, None, MONDAY + day * DAY + 7 * HOUR)
    assert h.answer("the usual", None, MONDAY + 2 * DAY + 7 * HOUR) is None


def test_same_as_yesterday_and_again_look_only_at_the_past(tmp_path):
    h = Habits(str(tmp_path / "h.sqlite"), "home")
    h.observe(LAMP, None, MONDAY + 19 * HOUR)
    h.observe(COFFEE, None, MONDAY + DAY + 8 * HOUR)
    assert h.answer("same as yesterday", None, MONDAY + DAY + 19 * HOUR + 1200).slots == {"name": "Floor Lamp"}
    assert h.answer("same as yesterday", None, MONDAY + DAY + 12 * HOUR) is None
    assert h.answer("do that again", None, MONDAY + DAY + 9 * HOUR).slots == {"name": "Coffee Maker"}
    assert h.answer("again", None, MONDAY + DAY + 7 * HOUR).slots == {"name": "Floor Lamp"}  # before the coffee
    assert h.answer("turn on the lamp again", None, MONDAY + 2 * DAY) is None  # a command, not a habit phrase


def test_habits_survive_a_restart_are_bounded_and_forget_a_changed_home(tmp_path):
    path = str(tmp_path / "h.sqlite")
    h = Habits(path, "home", max_entries=3)
    for i in range(5):
        h.observe(COFFEE, None, MONDAY + i)
    assert len(h) == 3
    h.close()
    assert len(Habits(path, "home")) == 3
    assert len(Habits(path, "other-home")) == 0
    with pytest.raises(EdgeslmError, match="at least 1"):
        Habits(path, "home", min_days=0)


class Fixed:
    name = "templates"

    def answer(self, text, context=None):
        return Answer(COFFEE.intent, dict(COFFEE.slots), tier=self.name) if "coffee" in text else None


def test_the_assistant_learns_from_its_own_answers(tmp_path):
    habits = Habits(str(tmp_path / "h.sqlite"), "home")
    a = Assistant([Fixed()], load_profile("this-machine"), habits=habits)
    assert a.ask("start the coffee", None, MONDAY + 7 * HOUR).tier == "templates"
    again = a.ask("do it again", None, MONDAY + 7 * HOUR + 60)
    assert (again.tier, again.slots) == ("habits", {"name": "Coffee Maker"})
    assert a.ask("what is this", None, MONDAY + 8 * HOUR).tier == "none"
    assert len(habits) == 2  # the answer "none" teaches nothing
