import logging

import pytest

from edgeslm.runtime.power import PowerState
from edgeslm.runtime.profiles import BatteryConfig, DeviceProfile, ThermalConfig


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def files(tmp_path):
    (tmp_path / "capacity").write_text("80\n")
    (tmp_path / "status").write_text("Discharging\n")
    (tmp_path / "temp").write_text("45000\n")
    return tmp_path


def state(files, **kw):
    battery = BatteryConfig(path=files / "capacity", low_threshold_percent=20, status_path=kw.pop("status", None))
    return PowerState(battery, ThermalConfig(path=files / "temp", hot_threshold_c=80), cache_seconds=0, **kw)


def test_reads_battery_and_temperature(files):
    reading = state(files).read()
    assert (reading.battery_percent, reading.temperature_c, reading.degraded) == (80.0, 45.0, False)


def test_low_battery_degrades_unless_on_external_power(files):
    (files / "capacity").write_text("12")
    ps = state(files, status=files / "status")
    assert ps.degraded() and ps.read().reasons == ("battery 12% < 20%",)
    (files / "status").write_text("Charging\n")
    assert not ps.degraded() and ps.read().on_external_power is True
    (files / "status").write_text("Not charging\n")  # plugged in, held below full: not draining
    assert not ps.degraded()
    assert state(files).degraded()  # without a status file, low is low


def test_hot_degrades(files):
    (files / "temp").write_text("85500")
    reading = state(files).read()
    assert reading.degraded and reading.temperature_c == 85.5 and "temperature 85.5 C > 80 C" in reading.reasons


@pytest.mark.parametrize("capacity", ["", "lots", "250", "-3", "nan", b"\xff\xfe"])
def test_garbage_is_unknown_and_counted(files, capacity, caplog):
    mode = "wb" if isinstance(capacity, bytes) else "w"
    with open(files / "capacity", mode) as f:
        f.write(capacity)
    (files / "temp").write_text("99999999")  # 100000 C: not a reading
    ps = state(files)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            reading = ps.read()
    assert (reading.battery_percent, reading.temperature_c, reading.degraded) == (None, None, False)
    assert ps.read_errors == 6
    assert caplog.text.count("treating it as unknown") == 2  # once per file, not per read


def test_missing_files_are_unknown(tmp_path):
    ps = PowerState(BatteryConfig(path=tmp_path / "none"), ThermalConfig(path=tmp_path / "gone"), cache_seconds=0)
    reading = ps.read()
    assert reading.battery_percent is None and reading.temperature_c is None and not reading.degraded
    assert ps.read_errors == 2


def test_reads_are_cached(files):
    clock = Clock()
    ps = state(files, clock=clock)
    ps.cache_seconds = 5
    assert ps.read().battery_percent == 80
    (files / "capacity").write_text("10")
    clock.now = 4.9
    assert ps.read().battery_percent == 80
    clock.now = 5.0
    assert ps.read().battery_percent == 10 and ps.degraded()


def test_for_profile_and_no_sensors(files):
    profile = DeviceProfile(name="d", memory_budget_mb=64, cores=1, threads=1, watts_idle=1, watts_busy=2,
                            thermal=ThermalConfig(path=files / "temp", hot_threshold_c=40))
    assert PowerState.for_profile(profile).read().reasons == ("temperature 45 C > 40 C",)
    bare = PowerState().read()
    assert bare.to_dict() == {"battery_percent": None, "on_external_power": None, "temperature_c": None,
                              "degraded": False, "reasons": []}
