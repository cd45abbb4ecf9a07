"""The Occupancy readings as river ships them, the occupancy derived from light and CO2, and what bad
files do."""

from __future__ import annotations

import importlib.util
from datetime import datetime

import numpy as np
import pytest

from edgeslm.data.occupancy import (
    LOOKAHEAD,
    OccupancyRule,
    Readings,
    derive_occupancy,
    load_occupancy,
    otsu_threshold,
)
from edgeslm.errors import ConfigError, DataError

HEADER = "time,V1,V2,V3,V4\n"


@pytest.fixture(scope="module")
def readings() -> Readings:
    return load_occupancy()


def test_the_real_readings_are_six_days_at_a_steady_16_minutes(readings):
    gaps = np.array([(b - a).total_seconds() for a, b in zip(readings.times, readings.times[1:], strict=False)])
    assert np.abs(gaps - 960).max() <= 1  # logged to the second: 959-961 s
    assert (readings.times[-1] - readings.times[0]).days == 5
    assert readings.light_lux.min() == 0 and readings.co2_ppm.min() > 350


def test_occupied_means_lit_and_confirmed_by_co2(readings):
    occ = derive_occupancy(readings)
    lit = readings.light_lux >= occ.light_threshold_lux
    assert not (occ.occupied & ~lit).any()  # never occupied in the dark
    weekend = np.array([t.weekday() >= 5 for t in readings.times])
    # Weekend daylight crosses the light threshold, but CO2 says nobody came: none of it is occupied.
    assert (lit & weekend).any() and not (occ.occupied & weekend).any()
    # Mid-morning on the three full weekdays the lamps are on and CO2 high: all occupied.
    mid_morning = np.array([t.weekday() in (0, 3, 4) and 10 <= t.hour < 12 for t in readings.times])
    assert occ.occupied[mid_morning].all()
    assert 0 < occ.share < 0.5


def test_a_label_is_settled_by_its_own_reading_or_lookahead_later(readings):
    occ = derive_occupancy(readings)
    index = np.arange(len(readings))
    delay = occ.known_at - index
    assert set(np.unique(delay[:-LOOKAHEAD])) <= {0, LOOKAHEAD}
    assert (delay >= 0).all()
    dark = readings.light_lux < occ.light_threshold_lux
    assert (delay[dark] == 0).all()  # a dark reading needs no future CO2 to be called empty


def test_otsu_splits_two_modes_between_them():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 5, 300), rng.normal(450, 40, 120)])
    assert 20 < otsu_threshold(values) < 400
    with pytest.raises(DataError, match="all equal"):
        otsu_threshold(np.zeros(10))


def test_a_fixed_light_threshold_is_used_as_given(readings):
    occ = derive_occupancy(readings, OccupancyRule(light_lux=400))
    assert occ.light_threshold_lux == 400 and not (occ.occupied & (readings.light_lux < 400)).any()


@pytest.mark.parametrize("kwargs", [{"light_lux": 0}, {"co2_rise_ppm": -1}, {"co2_baseline_percentile": 60}])
def test_an_impossible_rule_is_refused(kwargs):
    with pytest.raises(ConfigError):
        OccupancyRule(**kwargs)


@pytest.mark.parametrize("body, message", [
    ("2015-02-04 17:51:00,23.1,27.2,426.0,721.2\n2015-02-04 18:07:00,23.0,nan,0.0,681.5\n", r":3: .*finite"),
    ("2015-02-04 18:07:00,23.1,27.2,426.0,721.2\n2015-02-04 17:51:00,23.0,27.2,0.0,681.5\n", "strictly rising"),
    ("2015-02-04 17:51:00,23.1,27.2,426.0,721.2\n2015-02-04 17:51:00,23.0,27.2,0.0,681.5\n", "strictly rising"),
    ("2015-02-04 17:51:00,23.1,27.2,426.0\n", r":2: expected 5 fields"),
    ("04/02/2015 17:51,23.1,27.2,426.0,721.2\n", r":2: .*time as"),
    ("2015-02-04 17:51:00,23.1,27.2,426.0,721.2\n", "at least 2 readings"),
])
def test_bad_readings_give_a_clear_error(tmp_path, body, message):
    path = tmp_path / "occupancy.csv"
    path.write_text(HEADER + body)
    with pytest.raises(DataError, match=message):
        load_occupancy(path)


def test_a_wrong_header_or_a_missing_file_is_named(tmp_path):
    path = tmp_path / "occupancy.csv"
    path.write_text("date,temp,hum,light,co2\n")
    with pytest.raises(DataError, match="header"):
        load_occupancy(path)
    with pytest.raises(DataError, match="cannot read"):
        load_occupancy(tmp_path / "absent.csv")


def test_readings_built_in_code_are_checked_too():
    t = [datetime(2015, 2, 4, 8), datetime(2015, 2, 4, 9)]
    ok = np.array([1.0, 2.0])
    with pytest.raises(DataError, match="light_lux is not a finite number at reading 1"):
        Readings(tuple(t), ok, ok, np.array([1.0, np.nan]), ok)
    with pytest.raises(DataError, match="shape"):
        Readings(tuple(t), ok, ok, ok, np.ones(3))


def test_without_river_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DataError, match="pip install 'river"):
        load_occupancy()
