"""A heavy tier kept only while needed: released when idle, loaded again by the command that needs it
(a cold start) or ahead of it, when the habits expect commands for it (the pre-warm). Real tiers: the
kept tier here is hassil's (its grammar takes 0.3 s to load, a real cost to save), the clock is a
replayed stream's own time."""

from __future__ import annotations

import calendar
import sqlite3
from pathlib import Path

import pytest

from edgeslm.errors import ConfigError
from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.habits import Habits
from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.resident import Residency, Resident
from edgeslm.runtime.tiers.router import Assistant
from edgeslm.runtime.tiers.templates import TemplateTier

HOMES = Path(__file__).resolve().parents[3] / "homes"
MONDAY = calendar.timegm((2026, 11, 30, 0, 0, 0))  # 2026-11-30 was a Monday
MINUTE, HOUR, DAY = 60, 3600, 86400
LAMP = Answer("HassTurnOn", {"name": "Floor Lamp"}, tier="generative")


def test_habits_expect_the_commands_each_tier_answered_at_this_time_on_days_of_this_kind(tmp_path):
    h = Habits(str(tmp_path / "h.sqlite"), "home")
    for day in range(3):  # Mon-Wed: one command at 07:05 answered by the generative tier, two at 20:00 by the cache
        h.observe(LAMP, None, MONDAY + day * DAY + 7 * HOUR + 5 * MINUTE)
        for _ in range(2):
            h.observe(Answer("HassTurnOff", {"name": "Floor Lamp"}, tier="cache"), None, MONDAY + day * DAY + 20 * HOUR)
    thursday = MONDAY + 3 * DAY
    assert h.expect(thursday + 6 * HOUR + 55 * MINUTE, 15 * MINUTE, ("generative", "cache")) == {"generative": 1.0,
                                                                                                "cache": 0.0}
    assert h.expect(thursday + 19 * HOUR + 50 * MINUTE, 15 * MINUTE, ("cache",)) == {"cache": 1.0}  # days, not commands
    assert h.expect(thursday + 12 * HOUR, HOUR, ("generative",)) == {"generative": 0.0}  # noon: nothing
    assert h.expect(MONDAY + 5 * DAY + 7 * HOUR, HOUR, ("generative",)) == {}  # Saturday: no weekend seen
    assert h.expect(MONDAY + 2 * DAY + 7 * HOUR, HOUR, ("generative",)) == {}  # Wednesday: two days are no habit
    h.close()
    again = Habits(str(tmp_path / "h.sqlite"), "home")  # learned from the file after a restart
    assert again.expect(thursday + 7 * HOUR, 15 * MINUTE, ("generative",)) == {"generative": 1.0}


def test_expectations_look_at_the_last_eight_weeks_and_stay_bounded(tmp_path):
    from edgeslm.runtime.tiers.habits import EXPECT_DAYS

    h = Habits(str(tmp_path / "h.sqlite"), "home")
    for day in range(70):  # ten weeks of a 20:00 command; the generative tier answered at 07:05 in the first two only
        h.observe(Answer("HassTurnOff", {"name": "Floor Lamp"}, tier="cache"), None, MONDAY + day * DAY + 20 * HOUR)
        if day < 14:
            h.observe(LAMP, None, MONDAY + day * DAY + 7 * HOUR + 5 * MINUTE)
    monday = MONDAY + 70 * DAY
    assert h.expect(monday + 7 * HOUR, 15 * MINUTE, ("generative",)) == {"generative": 0.0}  # an old habit, gone
    assert h.expect(monday + 19 * HOUR + 50 * MINUTE, 15 * MINUTE, ("cache",)) == {"cache": 1.0}
    assert len(h._days[False]) + len(h._days[True]) <= EXPECT_DAYS + 1
    h.close()
    again = Habits(str(tmp_path / "h.sqlite"), "home")  # rebuilt from the file in time order: the same window
    assert again.expect(monday + 7 * HOUR, 15 * MINUTE, ("generative",)) == {"generative": 0.0}


def test_a_habit_store_from_before_tiers_were_recorded_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE history (home TEXT NOT NULL, ts REAL NOT NULL, context TEXT NOT NULL, "
                     "intent TEXT NOT NULL, slots TEXT NOT NULL);")
    db.execute("INSERT INTO history VALUES ('home', ?, '', 'HassTurnOn', '{\"name\": \"Floor Lamp\"}')", (MONDAY,))
    db.commit()
    db.close()
    h = Habits(str(path), "home")
    h.observe(LAMP, None, MONDAY + HOUR)
    assert len(h) == 2 and h.answer("do that again", None, MONDAY + 2 * HOUR).slots == {"name": "Floor Lamp"}


def week(assistant: Assistant, days: int, at: int = 7 * HOUR + 5 * MINUTE) -> list[Answer]:
    """One command for the kept tier every weekday morning, and another late in the evening."""
    out = []
    for day in range(days):
        out.append(assistant.ask("turn on the floor lamp", None, MONDAY + day * DAY + at))
        out.append(assistant.ask("turn off the floor lamp", None, MONDAY + day * DAY + 22 * HOUR))
    return out


def kept_assistant(tmp_path: Path, residency: Residency) -> tuple[Assistant, Resident]:
    home = load_home(HOMES / "maple-cottage.yaml")
    kept = Resident("templates", lambda: TemplateTier(home))
    kept.preload()
    habits = Habits(str(tmp_path / "h.sqlite"), home.digest())
    return Assistant([kept], load_profile("this-machine"), habits=habits, residency=residency), kept


def test_an_idle_tier_is_released_and_the_habits_load_it_before_the_commands_they_expect(tmp_path):
    assistant, kept = kept_assistant(tmp_path, Residency(idle_s=30 * MINUTE, lead_s=15 * MINUTE))
    answers = week(assistant, 5)
    assert all(a.tier == "templates" and a.slots == {"name": "Floor Lamp"} for a in answers)
    report = kept.report(MONDAY + 4 * DAY + 22 * HOUR)
    # Mon-Wed: released after each command, loaded again by the next (cold starts); from Thursday the habits
    # know the mornings (3 weekdays) and the evenings, and load it ahead: the commands find it loaded
    assert report["cold_starts"] == 5  # Mon 22:00, Tue 07:05 and 22:00, Wed 07:05 and 22:00
    assert report["prewarms"] == report["prewarms_used"] == 4 and report["prewarms_wasted"] == 0
    assert report["loads"] == 1 + 5 + 4 and report["releases"] == report["loads"] - 1 and kept.loaded
    assert report["resident_s"] < 0.25 * (4 * DAY + 15 * HOUR)  # loaded for a small share of the days
    assert not kept.loaded or kept.last_used == MONDAY + 4 * DAY + 22 * HOUR


def test_without_the_pre_warm_every_command_after_a_release_waits_for_the_load(tmp_path):
    assistant, kept = kept_assistant(tmp_path, Residency(idle_s=30 * MINUTE, min_expected=float("inf")))
    week(assistant, 5)
    report = kept.report(None)
    assert report["prewarms"] == 0 and report["cold_starts"] == 9  # all but Monday's first, which found it loaded


def test_a_tier_in_use_is_not_released_and_residency_is_validated(tmp_path):
    assistant, kept = kept_assistant(tmp_path, Residency(idle_s=30 * MINUTE))
    for k in range(10):  # a command every 20 minutes: never 30 idle
        assert assistant.ask("turn on the floor lamp", None, MONDAY + k * 20 * MINUTE).tier == "templates"
    assert kept.report(None)["releases"] == 0 and kept.loaded
    assistant.close()
    assert not kept.loaded
    for bad in ({"idle_s": 0}, {"tick_s": -1}, {"lead_s": -5}, {"min_expected": 0}):
        with pytest.raises(ConfigError, match="residency"):
            Residency(**bad)


def test_the_servers_clock_releases_an_idle_tier_on_its_own(tmp_path):
    import time

    assistant, kept = kept_assistant(tmp_path, Residency(idle_s=0.2, tick_s=0.05))
    assistant.start_clock()  # serve --idle-release: a thread looks every tick_s on the wall clock
    assert assistant.ask("turn on the floor lamp").tier == "templates" and kept.loaded
    deadline = time.monotonic() + 10
    while kept.loaded and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not kept.loaded and kept.report(None)["releases"] == 1
    assert assistant.ask("turn on the floor lamp").tier == "templates" and kept.report(None)["cold_starts"] == 1
    assistant.close()
