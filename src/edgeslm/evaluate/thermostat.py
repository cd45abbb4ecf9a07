"""Heat a simulated room (runtime/room.py) through recorded occupancy with each thermostat policy
(runtime/thermostat.py), side by side: heating energy, and minutes someone was there in the cold.

The recorded readings set the clock: reading i's occupancy holds over [times[i], times[i+1]), and the
thermostat decides every `step_minutes` within. A policy is told reading i's occupancy when reading
known_at[i] arrives (data/occupancy.py: some labels need the next two readings' CO2), never earlier,
and in time order: a label settled early waits for the unsettled ones before it.

The data has no outdoor temperature, so one is assumed (`Outdoor`): a northern-European February,
3 °C on average, 0-6 °C from the small hours to mid-afternoon, the same for every policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from edgeslm.data.occupancy import LOOKAHEAD
from edgeslm.errors import ConfigError, DataError
from edgeslm.runtime.room import RoomModel
from edgeslm.runtime.thermostat import (
    AlwaysOn,
    FixedSchedule,
    LearnedPolicy,
    OraclePolicy,
    Policy,
    Schedule,
    ThermostatConfig,
)


@dataclass(frozen=True)
class Outdoor:
    mean_c: float = 3.0
    swing_k: float = 3.0  # half the day-night range
    warmest_hour: float = 15.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_c) and self.swing_k >= 0 and 0 <= self.warmest_hour < 24):
            raise ConfigError("Outdoor needs a finite mean_c, swing_k >= 0 and warmest_hour in [0, 24)")

    def at(self, when: datetime) -> float:
        hour = when.hour + when.minute / 60 + when.second / 3600
        return self.mean_c + self.swing_k * math.cos(2 * math.pi * (hour - self.warmest_hour) / 24)


@dataclass(frozen=True)
class SimConfig:
    room: RoomModel = RoomModel()
    thermostat: ThermostatConfig = ThermostatConfig()
    outdoor: Outdoor = Outdoor()
    schedule: Schedule = Schedule()  # the fixed schedule's hours
    step_minutes: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.step_minutes <= 60:
            raise ConfigError(f"SimConfig.step_minutes must be in (0, 60], got {self.step_minutes}")


@dataclass
class Run:
    policy: str
    energy_kwh: float
    violation_minutes: float  # occupied and below comfort - tolerance
    occupied_minutes: float
    worst_deficit_k: float  # how far below comfort - tolerance it got while occupied
    comfort_hours: float  # with the setpoint at comfort
    times: list[datetime] = field(repr=False)  # (m,) the start of every step
    room_c: np.ndarray = field(repr=False)  # (m,) at the start of every step
    setpoint_c: np.ndarray = field(repr=False)  # (m,)
    power_w: np.ndarray = field(repr=False)  # (m,) held over the step
    seconds: np.ndarray = field(repr=False)  # (m,) each step's length

    def summary(self) -> dict:
        return {"energy_kwh": round(self.energy_kwh, 2), "violation_minutes": round(self.violation_minutes, 1),
                "occupied_minutes": round(self.occupied_minutes, 1), "worst_deficit_k": round(self.worst_deficit_k, 2),
                "comfort_setpoint_hours": round(self.comfort_hours, 1)}


def _check(times: Sequence[datetime], occupied: Sequence[bool], known_at: Sequence[int] | None,
           start_c: float) -> tuple[np.ndarray, np.ndarray]:
    if len(times) != len(occupied) or len(times) < 2:
        raise DataError(f"need one occupancy per reading and at least 2 readings: {len(times)} times, {len(occupied)} labels")
    n = len(times)
    known = np.minimum(np.arange(n) + LOOKAHEAD, n - 1) if known_at is None else np.asarray(known_at)
    if known.shape != (n,) or known.dtype.kind not in "iu":
        raise DataError(f"known_at must hold one reading index per reading, got shape {known.shape} of {known.dtype}")
    early = np.flatnonzero(known < np.arange(n))
    if early.size:
        raise DataError(f"reading {early[0]}'s occupancy is said to be known at reading {known[early[0]]}, before it was "
                        "read: a policy may learn only from the past")
    if not all(isinstance(t, datetime) for t in times):
        raise DataError("reading times must be datetimes")
    for i in range(1, len(times)):
        if not times[i] > times[i - 1]:
            raise DataError(f"reading {i} at {times[i]} does not come after reading {i - 1} at {times[i - 1]}")
    labels = np.asarray(occupied)
    if labels.dtype != np.bool_:
        raise DataError(f"occupancy labels must be booleans, got dtype {labels.dtype}")
    if not (isinstance(start_c, int | float) and math.isfinite(start_c)):
        raise DataError(f"the room's starting temperature must be a finite number, got {start_c!r}")
    return labels, known


def simulate(times: Sequence[datetime], occupied: Sequence[bool], policy: Policy, config: SimConfig, start_c: float,
             known_at: Sequence[int] | None = None) -> Run:
    """Heat the room from `start_c` through the readings' intervals with `policy` deciding every step.
    `known_at[i]`: the reading once which label i is final (None: LOOKAHEAD readings later, for all)."""
    labels, known = _check(times, occupied, known_at, start_c)
    told = 0  # labels before this one have been given to the policy
    room, comfort = config.room, config.thermostat.comfort_c - config.thermostat.tolerance_k
    temp, energy_j, cold_min, occ_min, deficit = float(start_c), 0.0, 0.0, 0.0, 0.0
    stamps, temps, setpoints, powers, lengths = [], [], [], [], []
    for i in range(len(times) - 1):
        while told <= i and known[told] <= i:
            policy.observe(times[told], bool(labels[told]))
            told += 1
        span = (times[i + 1] - times[i]).total_seconds()
        steps = max(1, math.ceil(span / (config.step_minutes * 60) - 1e-9))
        seconds = span / steps
        for k in range(steps):
            now = times[i] + timedelta(seconds=k * seconds)
            outdoor = config.outdoor.at(now)
            setpoint = policy.setpoint(now, temp, outdoor)
            power = room.power_to_reach(temp, setpoint, outdoor, seconds)
            if labels[i]:
                occ_min += seconds / 60
                if temp < comfort - 1e-9:  # felt at the step's start: arrivals need the room warm already
                    cold_min += seconds / 60
                    deficit = max(deficit, comfort - temp)
            stamps.append(now)
            temps.append(temp)
            setpoints.append(setpoint)
            powers.append(power)
            lengths.append(seconds)
            energy_j += power * seconds
            temp = room.step(temp, power, outdoor, seconds)
    comfort_h = float(np.sum(np.asarray(lengths)[np.asarray(setpoints) >= config.thermostat.comfort_c])) / 3600
    return Run(policy.name, energy_j / 3.6e6, cold_min, occ_min, deficit, comfort_h, stamps, np.asarray(temps), np.asarray(setpoints),
               np.asarray(powers), np.asarray(lengths))


def compare(times: Sequence[datetime], occupied: Sequence[bool], config: SimConfig, start_c: float,
            known_at: Sequence[int] | None = None) -> dict[str, Run]:
    """The four policies on the same readings, room and weather: fixed, always on, learned, oracle."""
    tc, room = config.thermostat, config.room
    policies: list[Policy] = [FixedSchedule(tc, config.schedule), AlwaysOn(tc), LearnedPolicy(tc, room),
                              OraclePolicy(tc, room, list(times), list(np.asarray(occupied, dtype=bool)))]
    return {p.name: simulate(times, occupied, p, config, start_c, known_at) for p in policies}
