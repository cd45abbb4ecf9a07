"""Battery and temperature, read from sysfs-like files, and whether the device should save power.

A sensor that is missing or writes garbage reads as unknown (None): unknown never degrades, since
switching a device to a cheaper model because a file moved would be a silent failure of its own;
instead every failed read is counted and the first one per file is logged as a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.runtime.profiles import BatteryConfig, DeviceProfile, ThermalConfig

log = logging.getLogger(__name__)

# sysfs power_supply status values that mean the battery is not draining.
ON_EXTERNAL_POWER = {"charging", "full", "not charging"}
PLAUSIBLE_C = (-40.0, 150.0)  # outside this a thermal file is garbage, not a reading


@dataclass(frozen=True)
class PowerReading:
    battery_percent: float | None  # None: no battery configured, or unreadable
    on_external_power: bool | None  # None: no status file, or unreadable
    temperature_c: float | None
    reasons: tuple[str, ...]  # why degraded; empty when not

    @property
    def degraded(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"battery_percent": self.battery_percent, "on_external_power": self.on_external_power,
                "temperature_c": self.temperature_c, "degraded": self.degraded, "reasons": list(self.reasons)}


class PowerState:
    """Reads at most once per `cache_seconds`; safe to call from many threads."""

    def __init__(self, battery: BatteryConfig | None = None, thermal: ThermalConfig | None = None,
                 cache_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.battery, self.thermal = battery, thermal
        self.cache_seconds = cache_seconds
        self.read_errors = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: PowerReading | None = None
        self._read_at = 0.0
        self._warned: set[Path] = set()

    @classmethod
    def for_profile(cls, profile: DeviceProfile, cache_seconds: float = 5.0) -> PowerState:
        return cls(profile.battery, profile.thermal, cache_seconds)

    def read(self) -> PowerReading:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._read_at >= self.cache_seconds:
                self._cached, self._read_at = self._read_now(), now
            return self._cached

    def degraded(self) -> bool:
        return self.read().degraded

    def _read_now(self) -> PowerReading:
        reasons = []
        percent = external = temp = None
        if self.battery is not None:
            percent = self._number(self.battery.path, lambda v: v if 0 <= v <= 100 else None)
            if self.battery.status_path is not None:
                status = self._text(self.battery.status_path)
                external = None if status is None else status.lower() in ON_EXTERNAL_POWER
            if percent is not None and percent < self.battery.low_threshold_percent and not external:
                reasons.append(f"battery {percent:g}% < {self.battery.low_threshold_percent:g}%")
        if self.thermal is not None:
            temp = self._number(self.thermal.path, _millidegrees)
            if temp is not None and temp > self.thermal.hot_threshold_c:
                reasons.append(f"temperature {temp:g} C > {self.thermal.hot_threshold_c:g} C")
        return PowerReading(percent, external, temp, tuple(reasons))

    def _text(self, path: Path) -> str | None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            return self._failed(path, f"unreadable ({exc})")
        return text or self._failed(path, "empty")

    def _number(self, path: Path, check: Callable[[float], float | None]) -> float | None:
        text = self._text(path)
        if text is None:
            return None
        try:
            value = check(float(text))
        except ValueError:
            return self._failed(path, f"not a number: {text[:40]!r}")
        return value if value is not None else self._failed(path, f"implausible value {text[:40]!r}")

    def _failed(self, path: Path, why: str) -> None:
        self.read_errors += 1  # under self._lock: only _read_now calls this
        if path not in self._warned:
            self._warned.add(path)
            log.warning("power sensor %s: %s; treating it as unknown", path, why)
        else:
            log.debug("power sensor %s: %s", path, why)
        return None


def _millidegrees(value: float) -> float | None:
    celsius = value / 1000.0
    return celsius if PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1] else None
