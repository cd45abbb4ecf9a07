import logging
import os
from pathlib import Path

import pytest
import yaml

from edgeslm.errors import ConfigError
from edgeslm.runtime.profiles import (
    ISA_FLAGS,
    BatteryConfig,
    DeviceProfile,
    check_fits,
    list_profiles,
    load_profile,
    machine_isa,
    meminfo_mb,
)

BUILTINS = ["jetson-orin-nano-cpu", "rpi4", "rpi5", "this-machine", "x86-gateway"]
GOOD = {"name": "box", "memory_budget_mb": 512, "cores": 4, "threads": 2, "watts_idle": 3.0, "watts_busy": 8.0}


@pytest.fixture(autouse=True)
def no_user_dirs(monkeypatch):
    monkeypatch.delenv("EDGESLM_PROFILES", raising=False)


def write(path, data):
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_builtins_listed_load_and_round_trip():
    assert list(list_profiles()) == BUILTINS
    for name in BUILTINS:
        profile = load_profile(name)
        assert profile.name == name
        assert DeviceProfile.from_dict(yaml.safe_load(yaml.safe_dump(profile.to_dict()))) == profile


def test_builtin_figures():
    pi4, pi5, orin = load_profile("rpi4"), load_profile("rpi5"), load_profile("jetson-orin-nano-cpu")
    assert (pi4.watts_idle, pi4.watts_busy, pi4.isa) == (2.7, 6.4, ("neon",))
    assert (pi5.watts_idle, pi5.watts_busy, pi5.isa) == (2.7, 7.0, ("neon", "dotprod"))
    assert (orin.cores, orin.watts_idle) == (6, 5.0)
    assert str(pi4.thermal.path) == "/sys/class/thermal/thermal_zone0/temp" and pi4.thermal.hot_threshold_c == 80
    assert not any(load_profile(n).power_estimated for n in BUILTINS if n != "this-machine")


def test_this_machine_is_measured():
    p = load_profile("this-machine")
    assert p.cores == os.cpu_count()
    assert 1 <= p.threads <= p.cores
    assert p.isa == machine_isa()
    assert p.power_estimated and "estimate" in p.description
    total = meminfo_mb().get("MemTotal")
    if total is not None:  # Linux
        assert 1 <= p.memory_budget_mb <= total // 2 + 1
    assert check_fits(p) == []


def test_check_fits_warns_about_missing_isa():
    lacking = next(i for i in ISA_FLAGS if i not in machine_isa())  # neon and avx2 never coexist
    profile = DeviceProfile(**GOOD, isa=(lacking,))
    # Our own handler on the module's logger: another library's logging setup earlier in the session
    # may have disabled existing loggers, which would hide the record from caplog.
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("edgeslm.runtime.profiles")
    logger.addHandler(handler)
    disabled, logger.disabled = logger.disabled, False
    try:
        notes = check_fits(profile)
    finally:
        logger.removeHandler(handler)
        logger.disabled = disabled
    assert notes == [f"ISA {lacking} is not available on this machine"]
    assert any(lacking in r.getMessage() and r.levelno == logging.WARNING for r in records)
    big = DeviceProfile(**{**GOOD, "memory_budget_mb": 10**9, "cores": 4096, "threads": 4096})
    assert any("memory_budget_mb" in n for n in check_fits(big))
    assert any("threads 4096" in n for n in check_fits(big))


@pytest.mark.parametrize("change, field", [
    ({"threads": 0}, "threads"),
    ({"threads": 8}, "threads"),  # more than cores
    ({"cores": "4"}, "cores"),
    ({"watts_busy": 1.0}, "watts_busy"),
    ({"memory_budget_mb": 0}, "memory_budget_mb"),
    ({"isa": ["neon", "sse9"]}, "isa"),
    ({"queue_limit": 0}, "queue_limit"),
    ({"memory_budget": 100}, "memory_budget"),  # a typo is an unknown field, not ignored
    ({"battery": {"low_threshold_percent": 10}}, "battery"),  # no path
    ({"battery": {"path": "/x", "low_threshold_percent": 120}}, "low_threshold_percent"),
    ({"thermal": {"path": "/x", "hot_threshold_c": "hot"}}, "hot_threshold_c"),
    ({"thermal": "yes"}, "thermal"),
    ({"max_batch": True}, "max_batch"),
])
def test_invalid_yaml_fields_name_the_field(tmp_path, change, field):
    path = write(tmp_path / "bad.yaml", {**GOOD, **change})
    with pytest.raises(ConfigError, match=field) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)


def test_missing_field_and_bad_yaml(tmp_path):
    data = dict(GOOD)
    del data["cores"]
    with pytest.raises(ConfigError, match="missing field.*cores"):
        load_profile(write(tmp_path / "a.yaml", data))
    (tmp_path / "b.yaml").write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_profile(tmp_path / "c.yaml")


def test_user_profile_from_a_path(tmp_path):
    data = {k: v for k, v in GOOD.items() if k != "name"}
    data["battery"] = {"path": "/sys/class/power_supply/BAT0/capacity", "status_path": "/sys/x/status"}
    profile = load_profile(write(tmp_path / "my-gateway.yaml", data))
    assert profile.name == "my-gateway"  # defaults to the file name
    assert profile.battery == BatteryConfig(path=Path("/sys/class/power_supply/BAT0/capacity"),
                                            status_path=Path("/sys/x/status"))
    assert profile.battery.low_threshold_percent == 20.0


def test_user_profiles_from_env_dirs_shadow_builtins(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write(first / "rpi4.yaml", {**GOOD, "name": "rpi4", "memory_budget_mb": 6000})
    write(second / "rpi4.yaml", {**GOOD, "name": "rpi4", "memory_budget_mb": 1})
    write(second / "kiosk.yml", {**GOOD, "name": "kiosk"})
    monkeypatch.setenv("EDGESLM_PROFILES", os.pathsep.join([str(first), str(second)]))
    assert load_profile("rpi4").memory_budget_mb == 6000  # the first directory wins, like PATH
    assert load_profile("kiosk").name == "kiosk"
    listed = list_profiles()
    assert listed["rpi4"] == str(first / "rpi4.yaml") and listed["kiosk"] == str(second / "kiosk.yml")
    assert listed["rpi5"] == "built-in"


def test_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown device profile.*rpi4"):
        load_profile("rpi3")
    with pytest.raises(ConfigError, match="no such profile file"):
        load_profile(str(tmp_path / "nope.yaml"))
