"""A thermostat that learns when a space is occupied and heats only for then: the habit model of the
tiered assistant, on sensor readings instead of commands.

`OccupancyLearner` keeps, for each slot of the day (half-hours by default) on weekdays and at weekends,
how many days that slot saw someone. It learns on-line and only from the past: a reading's
occupancy is recorded when the device learns it, and a slot-day counts once it has ended. It starts
from a default schedule worth one day of evidence (a Beta prior), so on day one it heats like that
schedule and each day of real occupancy then outweighs it.

Policies turn what they know into a setpoint, minute by minute:
- `AlwaysOn`: comfort all the time (the upper bound on energy);
- `FixedSchedule`: comfort in the schedule's hours (weekdays 07:00-19:00 by default);
- `LearnedPolicy`: comfort while the latest known reading is occupied or the current slot is
  predicted occupied; before the next predicted-occupied slot it pre-heats just in time (the room's
  warm-up time at full power plus a margin); set back otherwise;
- `OraclePolicy`: the same pre-heating, but from the true occupancy, future included (the bound
  the learned policy is measured against).
The learned policy and the oracle are given the room's warm-up rate (a learning thermostat estimates
it from its own heating history), so the two differ only in what they know about occupancy.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from edgeslm.errors import ConfigError, DataError
from edgeslm.runtime.room import RoomModel

DAY_TYPES = ("weekday", "weekend")


def day_type(when: date) -> int:
    """0 on weekdays, 1 at weekends (an index into DAY_TYPES)."""
    return 1 if when.weekday() >= 5 else 0


@dataclass(frozen=True)
class Schedule:
    """Comfort from `start_hour` to `end_hour` on the listed weekdays (0 = Monday)."""

    start_hour: float = 7.0
    end_hour: float = 19.0
    days: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __post_init__(self) -> None:
        if not 0 <= self.start_hour < self.end_hour <= 24:
            raise ConfigError(f"Schedule hours must satisfy 0 <= start < end <= 24, got {self.start_hour}-{self.end_hour}")
        if not set(self.days) <= set(range(7)):
            raise ConfigError(f"Schedule.days are weekday numbers 0-6 (0 = Monday), got {self.days}")

    def heats(self, when: datetime) -> bool:
        hour = when.hour + when.minute / 60 + when.second / 3600
        return when.weekday() in self.days and self.start_hour <= hour < self.end_hour


@dataclass(frozen=True)
class ThermostatConfig:
    comfort_c: float = 21.0
    setback_c: float = 16.0
    tolerance_k: float = 0.5  # occupied and colder than comfort - tolerance is a violation
    # Half-hour slots: two 16-minute readings each; hour slots put a 07:43 arrival at 07:00.
    slot_minutes: int = 30
    threshold: float = 0.5  # a slot at or above this probability is predicted occupied (ties heat: comfort first)
    prior: Schedule = Schedule()  # what the learner believes before it has seen a slot
    prior_days: float = 0.5  # evidence that belief is worth: the first real day outweighs it
    lookahead_h: float = 12.0  # how far ahead the learned policy looks for the next occupied slot
    margin_minutes: float = 10.0  # pre-heating finishes this long before the predicted arrival

    def __post_init__(self) -> None:
        if not self.setback_c < self.comfort_c:
            raise ConfigError(f"ThermostatConfig.setback_c ({self.setback_c}) must be below comfort_c ({self.comfort_c})")
        if not 0 <= self.tolerance_k < self.comfort_c - self.setback_c:
            raise ConfigError(f"ThermostatConfig.tolerance_k must be in [0, comfort - setback), got {self.tolerance_k}")
        if self.slot_minutes < 1 or 1440 % self.slot_minutes:
            raise ConfigError(f"ThermostatConfig.slot_minutes must divide a day (1440), got {self.slot_minutes}")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"ThermostatConfig.threshold must be in (0, 1], got {self.threshold}")
        if not (self.prior_days > 0 and self.lookahead_h > 0 and self.margin_minutes >= 0):
            raise ConfigError("ThermostatConfig.prior_days and lookahead_h must be > 0, margin_minutes >= 0")


class OccupancyLearner:
    """P(someone is there during this slot) per (weekday/weekend, slot of day), learned on-line."""

    def __init__(self, config: ThermostatConfig | None = None):
        self.config = config or ThermostatConfig()
        self.slots_per_day = 1440 // self.config.slot_minutes
        self.days_seen = [[0] * self.slots_per_day for _ in DAY_TYPES]
        self.days_occupied = [[0] * self.slots_per_day for _ in DAY_TYPES]
        self.last_seen: datetime | None = None
        self.last_occupied = False
        self._open: tuple[date, int] | None = None  # (date, slot) being filled
        self._open_occupied = False

    def slot(self, when: datetime) -> int:
        return (when.hour * 60 + when.minute) // self.config.slot_minutes

    def observe(self, when: datetime, occupied: bool) -> None:
        """Record that the space was (or was not) occupied at `when`; times must keep rising."""
        if not isinstance(when, datetime):
            raise DataError(f"an occupancy observation needs a datetime, got {when!r}")
        if not isinstance(occupied, bool | np.bool_):
            raise DataError(f"occupied must be True or False, got {occupied!r} at {when}")
        if self.last_seen is not None:
            if (when.tzinfo is None) != (self.last_seen.tzinfo is None):
                raise DataError(f"occupancy observed at {when} mixes a naive and a timezone-aware time with {self.last_seen}")
            if when <= self.last_seen:
                raise DataError(f"occupancy observed at {when} is not after the previous one at {self.last_seen}: "
                                "the learner takes readings in time order, once each")
        key = (when.date(), self.slot(when))
        if key != self._open:
            self._close()
            self._open, self._open_occupied = key, False
        self._open_occupied |= bool(occupied)
        self.last_seen, self.last_occupied = when, bool(occupied)

    def _close(self) -> None:
        if self._open is None:
            return
        day, slot = self._open
        kind = day_type(day)
        self.days_seen[kind][slot] += 1
        self.days_occupied[kind][slot] += int(self._open_occupied)

    STATE_VERSION = 1

    def to_dict(self) -> dict[str, Any]:
        """What was learned, as JSON-ready data: two rows of counters, bounded by the slot count, so a
        device can keep it across restarts. The open slot-day is left out: it is counted when it ends."""
        return {"version": self.STATE_VERSION, "slot_minutes": self.config.slot_minutes,
                "days_seen": [list(r) for r in self.days_seen], "days_occupied": [list(r) for r in self.days_occupied],
                "last_seen": self.last_seen.isoformat() if self.last_seen else None}

    @classmethod
    def from_dict(cls, state: dict[str, Any], config: ThermostatConfig | None = None) -> OccupancyLearner:
        learner = cls(config)
        shape = (len(DAY_TYPES), learner.slots_per_day)
        try:
            if state["version"] != cls.STATE_VERSION or state["slot_minutes"] != learner.config.slot_minutes:
                raise ValueError(f"version {state['version']} with {state['slot_minutes']}-minute slots")
            seen, occupied = np.asarray(state["days_seen"]), np.asarray(state["days_occupied"])
            if seen.shape != shape or occupied.shape != shape or seen.dtype.kind != "i" or occupied.dtype.kind != "i":
                raise ValueError(f"counters of shape {seen.shape} and {occupied.shape}, expected {shape} of integers")
            if (occupied < 0).any() or (occupied > seen).any():
                raise ValueError("occupied slot-days must lie between 0 and the slot-days seen")
            last = datetime.fromisoformat(state["last_seen"]) if state["last_seen"] is not None else None
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"cannot restore the occupancy learner (version {cls.STATE_VERSION}, "
                            f"{learner.config.slot_minutes}-minute slots): {e}") from e
        learner.days_seen, learner.days_occupied = seen.tolist(), occupied.tolist()
        learner.last_seen = last
        return learner

    def probability(self, when: datetime) -> float:
        """Beta posterior mean for `when`'s slot, from the slot-days that have ended (and the prior)."""
        kind, slot = day_type(when), self.slot(when)
        start = when.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=slot * self.config.slot_minutes)
        prior = 1.0 if self.config.prior.heats(start) else 0.0
        w = self.config.prior_days
        return (self.days_occupied[kind][slot] + w * prior) / (self.days_seen[kind][slot] + w)

    def next_predicted(self, now: datetime, horizon: timedelta) -> datetime | None:
        """The first time in [now, now + horizon] whose slot is predicted occupied, or None."""
        step = timedelta(minutes=self.config.slot_minutes)
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=(now.hour * 60 + now.minute) % self.config.slot_minutes)
        t = start
        while t <= now + horizon:
            if self.probability(t) >= self.config.threshold:
                return max(t, now)
            t += step
        return None


class Policy(Protocol):
    name: str

    def observe(self, when: datetime, occupied: bool) -> None: ...

    def setpoint(self, when: datetime, room_c: float, outdoor_c: float) -> float: ...


def preheat_setpoint(config: ThermostatConfig, room: RoomModel, now: datetime, arrival: datetime | None,
                     room_c: float, outdoor_c: float) -> float:
    """Comfort if heating must start now to be warm at `arrival` (None: nobody expected), else setback."""
    if arrival is None:
        return config.setback_c
    minutes = (arrival - now).total_seconds() / 60
    if minutes <= room.warmup_minutes(room_c, config.comfort_c, outdoor_c) + config.margin_minutes:
        return config.comfort_c
    return config.setback_c


class AlwaysOn:
    name = "always on"

    def __init__(self, config: ThermostatConfig):
        self.config = config

    def observe(self, when: datetime, occupied: bool) -> None:
        pass

    def setpoint(self, when: datetime, room_c: float, outdoor_c: float) -> float:
        return self.config.comfort_c


class FixedSchedule:
    name = "fixed schedule"

    def __init__(self, config: ThermostatConfig, schedule: Schedule | None = None):
        self.config, self.schedule = config, schedule or Schedule()

    def observe(self, when: datetime, occupied: bool) -> None:
        pass

    def setpoint(self, when: datetime, room_c: float, outdoor_c: float) -> float:
        return self.config.comfort_c if self.schedule.heats(when) else self.config.setback_c


class LearnedPolicy:
    name = "learned"

    def __init__(self, config: ThermostatConfig, room: RoomModel, learner: OccupancyLearner | None = None):
        self.config, self.room = config, room
        self.learner = learner or OccupancyLearner(config)
        self.horizon = timedelta(hours=config.lookahead_h)

    def observe(self, when: datetime, occupied: bool) -> None:
        self.learner.observe(when, occupied)

    def setpoint(self, when: datetime, room_c: float, outdoor_c: float) -> float:
        if self.learner.last_occupied:  # someone was there at the latest reading we know of
            return self.config.comfort_c
        arrival = self.learner.next_predicted(when, self.horizon)
        return preheat_setpoint(self.config, self.room, when, arrival, room_c, outdoor_c)


class OraclePolicy:
    """Knows the true occupancy of every interval [times[i], times[i+1]), the future included."""

    name = "oracle"

    def __init__(self, config: ThermostatConfig, room: RoomModel, times: Sequence[datetime], occupied: Sequence[bool]):
        if len(times) != len(occupied):
            raise DataError(f"the oracle needs one occupancy per reading: {len(times)} times, {len(occupied)} labels")
        self.config, self.room, self.times = config, room, list(times)
        self.starts = [t for t, o in zip(self.times, occupied, strict=True) if o]  # sorted: times rise

    def observe(self, when: datetime, occupied: bool) -> None:
        pass

    def setpoint(self, when: datetime, room_c: float, outdoor_c: float) -> float:
        i = bisect_right(self.times, when) - 1  # the interval `when` falls in
        current = self.times[i] if i >= 0 else None
        j = bisect_right(self.starts, when)
        if current is not None and j > 0 and self.starts[j - 1] == current:
            return self.config.comfort_c
        arrival = self.starts[j] if j < len(self.starts) else None
        return preheat_setpoint(self.config, self.room, when, arrival, room_c, outdoor_c)

