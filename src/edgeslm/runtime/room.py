"""A room as one thermal resistance and one capacitance (first-order RC), and an ideal heater.

    C dT/dt = P - UA (T - T_out),    tau = C / UA

With P and T_out held over a step of `s` seconds the solution is exact:
    T(s) = T_ss + (T(0) - T_ss) exp(-s / tau),    T_ss = T_out + P / UA
so the simulation needs no small steps for accuracy, only for how often the thermostat decides.

Defaults: UA = 50 W/K (one office with an outside wall and a window, plus ventilation), tau = 2.5 h
(so C = 450 kJ/K), a 2 kW electric heater. The time constant is checked against the data: fitted to
the office's own cool-downs from 18:00 to 07:00 (`fit_relaxation`; benchmarks/occupancy_thermostat.py
prints the fits), the room air relaxes with tau = 1.2-2.9 h on five nights (median of all six 2.25 h)
and 8.3 h on Saturday night, when the whole building had cooled. It relaxes towards 19-21 °C there,
the heated building around it, not towards outdoors: this model is the same room standing alone, so
its energy figures are those of a room heated by itself, and they scale with UA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeslm.errors import ConfigError, DataError


@dataclass(frozen=True)
class RoomModel:
    ua_w_per_k: float = 50.0  # heat lost per kelvin between the room and outdoors
    time_constant_h: float = 2.5
    heater_w: float = 2000.0

    def __post_init__(self) -> None:
        for name in ("ua_w_per_k", "time_constant_h", "heater_w"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"RoomModel.{name} must be a finite number > 0, got {value!r}")

    @property
    def capacity_j_per_k(self) -> float:
        return self.time_constant_h * 3600.0 * self.ua_w_per_k

    def _decay(self, seconds: float) -> float:
        return math.exp(-seconds / (self.time_constant_h * 3600.0))

    def step(self, room_c: float, power_w: float, outdoor_c: float, seconds: float) -> float:
        """The room's temperature after `seconds` of constant heating power and outdoor temperature."""
        steady = outdoor_c + power_w / self.ua_w_per_k
        return steady + (room_c - steady) * self._decay(seconds)

    def power_to_reach(self, room_c: float, target_c: float, outdoor_c: float, seconds: float) -> float:
        """The constant power that brings the room to `target_c` in `seconds`, within [0, heater_w]: an
        ideal modulating thermostat, which holds a setpoint without the overshoot of an on/off one."""
        decay = self._decay(seconds)
        power = self.ua_w_per_k * ((target_c - outdoor_c) - (room_c - outdoor_c) * decay) / (1.0 - decay)
        return min(max(power, 0.0), self.heater_w)

    def warmup_minutes(self, room_c: float, target_c: float, outdoor_c: float) -> float:
        """Minutes at full power from `room_c` to `target_c`; inf when the heater cannot get there."""
        if room_c >= target_c:
            return 0.0
        steady = outdoor_c + self.heater_w / self.ua_w_per_k
        if steady <= target_c:
            return math.inf
        return self.time_constant_h * 60.0 * math.log((steady - room_c) / (steady - target_c))


def fit_relaxation(hours_n: np.ndarray, temps_n: np.ndarray) -> tuple[float, float, float]:
    """(tau in hours, asymptote °C, rms error °C) of T(t) = T_inf + (T0 - T_inf) exp(-t / tau) fitted to
    an unheated cool-down: least squares in T_inf and T0 for each tau on a log grid of 0.2-200 h."""
    hours_n, temps_n = np.asarray(hours_n, dtype=np.float64), np.asarray(temps_n, dtype=np.float64)
    if hours_n.shape != temps_n.shape or hours_n.size < 4:
        raise DataError(f"fit_relaxation needs at least 4 (hour, temperature) pairs, got {hours_n.shape}, {temps_n.shape}")
    if not (np.all(np.isfinite(hours_n)) and np.all(np.isfinite(temps_n)) and np.all(np.diff(hours_n) > 0)):
        raise DataError("fit_relaxation needs finite temperatures at strictly rising hours")
    t = hours_n - hours_n[0]
    best = (math.inf, math.nan, math.nan)
    for tau in np.geomspace(0.2, 200.0, 2000):
        decay = np.exp(-t / tau)
        design = np.stack([1.0 - decay, decay], axis=1)  # (n, 2): columns multiply T_inf and T0
        coef, *_ = np.linalg.lstsq(design, temps_n, rcond=None)
        sse = float(np.sum((design @ coef - temps_n) ** 2))
        if sse < best[0]:
            best = (sse, float(tau), float(coef[0]))
    sse, tau, asymptote = best
    return tau, asymptote, math.sqrt(sse / t.size)
