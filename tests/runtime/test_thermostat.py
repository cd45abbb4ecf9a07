"""The occupancy learner and the thermostat policies: learning from the past only, the prior schedule,
pre-heating, and bad input."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edgeslm.errors import ConfigError, DataError
from edgeslm.runtime.room import RoomModel
from edgeslm.runtime.thermostat import (
    FixedSchedule,
    LearnedPolicy,
    OccupancyLearner,
    OraclePolicy,
    Schedule,
    ThermostatConfig,
    preheat_setpoint,
)

THU = datetime(2015, 2, 5)  # a Thursday
CFG = ThermostatConfig()


def feed(learner: OccupancyLearner, day: datetime, occupied_hours: tuple[float, float]) -> None:
    """A day of readings every 16 minutes, occupied in [start, end) hours."""
    t = day
    while t < day + timedelta(days=1):
        hour = t.hour + t.minute / 60
        learner.observe(t, occupied_hours[0] <= hour < occupied_hours[1])
        t += timedelta(minutes=16)


def test_unseen_slots_follow_the_prior_schedule():
    learner = OccupancyLearner(CFG)
    assert learner.probability(THU.replace(hour=10)) == 1.0
    assert learner.probability(THU.replace(hour=3)) == 0.0
    assert learner.probability(datetime(2015, 2, 7, 10)) == 0.0  # Saturday: the prior heats weekdays only


def test_one_real_day_outweighs_the_prior_and_weekends_learn_apart():
    learner = OccupancyLearner(CFG)
    feed(learner, THU, (9.0, 17.0))
    learner.observe(THU + timedelta(days=1), False)  # the day's last slot closes when the next one starts
    assert learner.probability(THU.replace(day=6, hour=7)) < CFG.threshold  # prior said yes; Thursday said no
    assert learner.probability(THU.replace(day=6, hour=10)) > CFG.threshold
    assert learner.probability(datetime(2015, 2, 7, 10)) == 0.0  # weekday evidence leaves Saturday alone


def test_a_slot_counts_only_once_it_has_ended():
    learner = OccupancyLearner(CFG)
    learner.observe(THU.replace(hour=3), True)
    assert learner.probability(THU.replace(hour=3)) == 0.0  # still open: nothing counted yet
    learner.observe(THU.replace(hour=3, minute=40), False)
    assert learner.probability(THU.replace(hour=3)) == pytest.approx(1 / 1.5)  # one occupied slot-day + half a day of prior


def test_next_predicted_finds_the_first_occupied_slot_ahead():
    learner = OccupancyLearner(CFG)
    now = THU.replace(hour=5, minute=10)
    assert learner.next_predicted(now, timedelta(hours=12)) == THU.replace(hour=7)
    assert learner.next_predicted(now, timedelta(hours=1)) is None
    assert learner.next_predicted(THU.replace(hour=8, minute=5), timedelta(hours=1)) == THU.replace(hour=8, minute=5)


def test_preheat_starts_just_in_time():
    room = RoomModel()
    arrival = THU.replace(hour=8)
    lead = room.warmup_minutes(16.0, CFG.comfort_c, 3.0) + CFG.margin_minutes
    early = arrival - timedelta(minutes=lead + 5)
    late = arrival - timedelta(minutes=lead - 5)
    assert preheat_setpoint(CFG, room, early, arrival, 16.0, 3.0) == CFG.setback_c
    assert preheat_setpoint(CFG, room, late, arrival, 16.0, 3.0) == CFG.comfort_c
    assert preheat_setpoint(CFG, room, late, None, 16.0, 3.0) == CFG.setback_c


def test_the_learned_policy_keeps_comfort_while_someone_is_known_to_be_there():
    policy = LearnedPolicy(CFG, RoomModel())
    saturday = datetime(2015, 2, 7, 14)
    assert policy.setpoint(saturday, 21.0, 3.0) == CFG.setback_c
    policy.observe(saturday, True)
    assert policy.setpoint(saturday + timedelta(minutes=5), 21.0, 3.0) == CFG.comfort_c


def test_the_oracle_heats_through_occupied_intervals_only():
    times = [THU.replace(hour=h) for h in range(6, 14)]
    occupied = [False, False, False, True, True, False, False, False]
    oracle = OraclePolicy(CFG, RoomModel(), times, occupied)
    assert oracle.setpoint(THU.replace(hour=9, minute=30), 21.0, 3.0) == CFG.comfort_c
    assert oracle.setpoint(THU.replace(hour=11, minute=30), 21.0, 3.0) == CFG.setback_c
    assert oracle.setpoint(THU.replace(hour=6), 16.0, 3.0) == CFG.setback_c  # three hours ahead: not yet


def test_the_fixed_schedule_is_its_hours_on_its_days():
    policy = FixedSchedule(CFG, Schedule(start_hour=8, end_hour=17.5))
    assert policy.setpoint(THU.replace(hour=17, minute=20), 15.0, 3.0) == CFG.comfort_c
    assert policy.setpoint(THU.replace(hour=17, minute=40), 15.0, 3.0) == CFG.setback_c
    assert policy.setpoint(datetime(2015, 2, 8, 10), 15.0, 3.0) == CFG.setback_c


@pytest.mark.parametrize("when, occupied, message", [
    (THU.replace(hour=9), True, "not after"),  # the same time again
    (THU.replace(hour=8), False, "not after"),  # earlier
    (1423123200.0, True, "needs a datetime"),
    (THU.replace(hour=10), math.nan, "True or False"),
    (THU.replace(hour=10), 1, "True or False"),
])
def test_bad_observations_give_a_clear_error(when, occupied, message):
    learner = OccupancyLearner(CFG)
    learner.observe(THU.replace(hour=9), False)
    with pytest.raises(DataError, match=message):
        learner.observe(when, occupied)
    assert learner.last_seen == THU.replace(hour=9)  # a refused observation leaves the learner as it was


@pytest.mark.parametrize("kwargs", [{"setback_c": 22}, {"tolerance_k": 6}, {"slot_minutes": 7}, {"threshold": 0},
                                    {"prior_days": 0}, {"margin_minutes": -1}])
def test_an_impossible_thermostat_config_is_refused(kwargs):
    with pytest.raises(ConfigError):
        ThermostatConfig(**kwargs)


def test_an_impossible_schedule_is_refused():
    with pytest.raises(ConfigError):
        Schedule(start_hour=19, end_hour=7)
    with pytest.raises(ConfigError):
        Schedule(days=(7,))


def test_the_oracle_needs_one_label_per_reading():
    with pytest.raises(DataError, match="one occupancy per reading"):
        OraclePolicy(CFG, RoomModel(), [THU], [True, False])


def test_what_was_learned_survives_a_restart_as_json():
    learner = OccupancyLearner(CFG)
    feed(learner, THU, (9.0, 17.0))
    restored = OccupancyLearner.from_dict(json.loads(json.dumps(learner.to_dict())), CFG)
    probe = [THU.replace(day=6, hour=h, minute=m) for h in range(24) for m in (0, 30)]
    assert [restored.probability(t) for t in probe] == [learner.probability(t) for t in probe]
    with pytest.raises(DataError, match="not after"):
        restored.observe(THU.replace(hour=12), False)  # it remembers how far it has read


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("days_seen"), "days_seen"),
    (lambda s: s.update(slot_minutes=60), "30-minute slots"),
    (lambda s: s["days_occupied"][0].__setitem__(3, 9), "between 0 and"),
    (lambda s: s.update(days_seen=[[1.5] * 48] * 2), "integers"),
    (lambda s: s.update(last_seen="yesterday"), "isoformat"),
])
def test_a_damaged_state_is_refused_with_the_reason(damage, message):
    state = OccupancyLearner(CFG).to_dict()
    damage(state)
    with pytest.raises(DataError, match=message):
        OccupancyLearner.from_dict(state, CFG)


def test_numpy_booleans_are_accepted_and_naive_and_aware_times_do_not_mix():
    learner = OccupancyLearner(CFG)
    learner.observe(THU.replace(hour=9), np.bool_(True))
    assert learner.last_occupied is True
    with pytest.raises(DataError, match="naive and a timezone-aware"):
        learner.observe(THU.replace(hour=10, tzinfo=UTC), False)
