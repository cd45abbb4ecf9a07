"""The RC room: exact steps, the heater's limits, warm-up times, and fitting a cool-down."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeslm.errors import ConfigError, DataError
from edgeslm.runtime.room import RoomModel, fit_relaxation

ROOM = RoomModel(ua_w_per_k=50, time_constant_h=2.5, heater_w=2000)


def test_a_step_is_the_exact_solution_so_step_size_does_not_matter():
    one = ROOM.step(20.0, 800.0, 3.0, 3600)
    sixty = 20.0
    for _ in range(60):
        sixty = ROOM.step(sixty, 800.0, 3.0, 60)
    assert one == pytest.approx(sixty, abs=1e-9)
    # Unheated, the room closes 1 - 1/e of its gap to outdoors in one time constant.
    assert ROOM.step(20.0, 0.0, 0.0, 2.5 * 3600) == pytest.approx(20.0 / math.e)


def test_power_to_reach_holds_a_setpoint_and_respects_the_heater():
    power = ROOM.power_to_reach(20.0, 21.0, 3.0, 600)
    assert 0 < power < ROOM.heater_w
    assert ROOM.step(20.0, power, 3.0, 600) == pytest.approx(21.0)
    assert ROOM.power_to_reach(10.0, 21.0, 3.0, 60) == ROOM.heater_w  # far below: full power
    assert ROOM.power_to_reach(23.0, 21.0, 3.0, 60) == 0.0  # above the setpoint: off


def test_warmup_minutes_is_how_long_full_power_takes():
    minutes = ROOM.warmup_minutes(16.0, 21.0, 3.0)
    assert ROOM.step(16.0, ROOM.heater_w, 3.0, minutes * 60) == pytest.approx(21.0)
    assert ROOM.warmup_minutes(22.0, 21.0, 3.0) == 0.0
    weak = RoomModel(ua_w_per_k=200, heater_w=1000)  # holds at most 5 K over outdoors
    assert weak.warmup_minutes(5.0, 21.0, 3.0) == math.inf


def test_fit_relaxation_recovers_a_known_cool_down():
    hours = np.arange(0, 13, 16 / 60)
    temps = 19.5 + (22.0 - 19.5) * np.exp(-hours / 2.7) + np.random.default_rng(0).normal(0, 0.02, hours.size)
    tau, asymptote, rms = fit_relaxation(hours, temps)
    assert tau == pytest.approx(2.7, rel=0.05) and asymptote == pytest.approx(19.5, abs=0.05) and rms < 0.05


@pytest.mark.parametrize("hours, temps", [([0, 1, 2], [3, 2, 1]), ([0, 1, 1, 2], [4, 3, 2, 1]),
                                          ([0, 1, 2, 3], [4, math.nan, 2, 1])])
def test_fit_relaxation_refuses_bad_series(hours, temps):
    with pytest.raises(DataError):
        fit_relaxation(np.array(hours, dtype=float), np.array(temps, dtype=float))


@pytest.mark.parametrize("kwargs", [{"ua_w_per_k": 0}, {"time_constant_h": -1}, {"heater_w": math.nan}, {"heater_w": "2kW"}])
def test_an_impossible_room_is_refused(kwargs):
    with pytest.raises(ConfigError):
        RoomModel(**kwargs)
