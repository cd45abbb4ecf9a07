"""Real office readings (river's Occupancy set: Candanedo & Feldheim 2016) and the occupancy we derive
from them, since the set carries no label.

The CSV ships inside the river wheel (`river/drift/datasets/occupancy.csv`): 509 rows, one every 16
minutes from Wednesday 2015-02-04 17:51 to Tuesday 2015-02-10 09:19, columns V1..V4 = temperature (°C),
relative humidity (%), light (lux), CO2 (ppm). We read the file where river installed it, without
importing river (which pulls scipy).

How occupancy is derived (`derive_occupancy`), from what the readings show:
- Light is bimodal: 0 lux at night, 370-590 lux when the office lamps are on. Otsu's threshold on all
  readings splits them at about 230 lux. Light alone is not enough: on Saturday and Sunday daylight
  alone reaches up to 350 lux while CO2 stays flat at 420-465 ppm, nobody there.
- People breathe: a lit reading counts as occupied when CO2 confirms it, either already well above
  the building's empty level (>= 100 ppm above the 5th percentile of all CO2 readings, 427 ppm here)
  or climbing (>= 50 ppm over the next two readings, 32 minutes). The 16 lit weekend readings reach at
  most 36 ppm above that level and climb at most 5 ppm; every morning arrival climbs 119 ppm or more.
- A dark reading, or a lit one whose CO2 is already elevated, is settled at once; a lit one at a low
  CO2 is settled two readings later (`LOOKAHEAD`). `Occupancy.known_at` says when, and whatever learns
  from the labels on-line is told each one then, not earlier.
- Lunch breaks with the lamps off (one reading on Thursday, Friday and Monday, CO2 still high) count
  as empty: light is the presence signal, CO2 only confirms it.
This gives 114 occupied readings of 509 (22.4%): the first, Wednesday 17:51; Thursday and Friday
07:43-17:51, Monday 08:47-17:51, Tuesday from 08:47, and nobody at the weekend.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from edgeslm.errors import ConfigError, DataError

COLUMNS = ("time", "V1", "V2", "V3", "V4")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LOOKAHEAD = 2  # readings after which a label is final: the CO2 climb is measured over the next two


def river_csv() -> Path:
    """Where river installed the Occupancy CSV; the package is found without being imported."""
    spec = importlib.util.find_spec("river")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the Occupancy readings ship inside the river package: pip install 'river==0.26.1' "
                        "(it is in edgeslm's test extra), or pass the CSV's path")
    return Path(next(iter(spec.submodule_search_locations))) / "drift" / "datasets" / "occupancy.csv"


@dataclass(frozen=True)
class Readings:
    """Sensor readings in time order; validated on construction (finite values, strictly rising times)."""

    times: tuple[datetime, ...]  # local wall-clock time, as the office logged it
    temperature_c: np.ndarray  # (n,)
    humidity_pct: np.ndarray  # (n,)
    light_lux: np.ndarray  # (n,)
    co2_ppm: np.ndarray  # (n,)
    source: str = field(default="readings", compare=False)

    def __post_init__(self) -> None:
        n = len(self.times)
        if n < 2:
            raise DataError(f"{self.source}: need at least 2 readings, got {n}")
        for name in ("temperature_c", "humidity_pct", "light_lux", "co2_ppm"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != (n,):
                raise DataError(f"{self.source}: {name} has shape {values.shape}, expected ({n},) like the times")
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise DataError(f"{self.source}: {name} is not a finite number at reading {bad[0]} ({self.times[bad[0]]}); "
                                "drop or repair that reading")
            object.__setattr__(self, name, values)
        for i in range(1, n):
            if not self.times[i] > self.times[i - 1]:
                raise DataError(f"{self.source}: reading {i} at {self.times[i]} does not come after reading {i - 1} at "
                                f"{self.times[i - 1]}; readings must be in strictly rising time order")

    def __len__(self) -> int:
        return len(self.times)


def load_occupancy(path: str | Path | None = None) -> Readings:
    """The Occupancy readings from `path`, or from the river package when None."""
    path = Path(path) if path is not None else river_csv()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the occupancy readings at {path}: {e}") from e
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise DataError(f"{path}: the header must be {','.join(COLUMNS)} (time, temperature, humidity, light, CO2)")
    times, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise DataError(f"{path}:{line}: expected {len(COLUMNS)} fields, got {len(row)}")
        try:
            times.append(datetime.strptime(row[0].strip(), TIME_FORMAT))
            floats = [float(v) for v in row[1:]]
        except ValueError as e:
            raise DataError(f"{path}:{line}: {e} (time as {TIME_FORMAT}, then four numbers)") from e
        if not all(math.isfinite(v) for v in floats):
            raise DataError(f"{path}:{line}: a reading is not a finite number: {row[1:]}")
        values.append(floats)
    v = np.asarray(values, dtype=np.float64).reshape(-1, 4)
    return Readings(tuple(times), v[:, 0], v[:, 1], v[:, 2], v[:, 3], source=str(path))


def otsu_threshold(values_n: np.ndarray, bins: int = 256) -> float:
    """The cut that best splits a bimodal sample in two (Otsu 1979: the largest between-class variance)."""
    values_n = np.asarray(values_n, dtype=np.float64)
    if values_n.size < 2 or values_n.min() == values_n.max():
        raise DataError("cannot split readings that are all equal into two groups")
    counts, edges = np.histogram(values_n, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w_low = np.cumsum(counts)
    w_high = w_low[-1] - w_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(w_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(w_high, 1)
    between = w_low * w_high * (mean_low - mean_high) ** 2
    # Every cut inside an empty stretch between the modes scores the same: take that stretch's middle.
    first = int(np.argmax(between))
    last = first
    while last + 1 < between.size and between[last + 1] >= between[first] * (1 - 1e-12):
        last += 1
    return float((edges[first + 1] + edges[last + 1]) / 2)


@dataclass(frozen=True)
class OccupancyRule:
    """How a reading is judged occupied; the defaults are the ones the module docstring argues for."""

    light_lux: float | None = None  # None: Otsu's threshold on the readings' light
    co2_elevated_ppm: float = 100.0  # above the empty-building level
    co2_rise_ppm: float = 50.0  # over the next LOOKAHEAD readings
    co2_baseline_percentile: float = 5.0

    def __post_init__(self) -> None:
        if self.light_lux is not None and not self.light_lux > 0:
            raise ConfigError(f"OccupancyRule.light_lux must be > 0 or None, got {self.light_lux}")
        if not (self.co2_elevated_ppm > 0 and self.co2_rise_ppm > 0):
            raise ConfigError("OccupancyRule.co2_elevated_ppm and co2_rise_ppm must be > 0")
        if not 0 <= self.co2_baseline_percentile < 50:
            raise ConfigError(f"OccupancyRule.co2_baseline_percentile must be in [0, 50), got {self.co2_baseline_percentile}")


@dataclass(frozen=True)
class Occupancy:
    occupied: np.ndarray  # (n,) bool
    known_at: np.ndarray  # (n,) int: the reading once which label i is final (i, or i + LOOKAHEAD)
    light_threshold_lux: float
    co2_baseline_ppm: float

    @property
    def share(self) -> float:
        return float(self.occupied.mean())


def derive_occupancy(readings: Readings, rule: OccupancyRule | None = None) -> Occupancy:
    """Occupied = lit and CO2 confirms (elevated, or climbing over the next LOOKAHEAD readings).

    A dark reading, or a lit one with CO2 already elevated, is settled by the reading itself; only a lit
    reading at a low CO2 waits LOOKAHEAD readings for the climb (`known_at`)."""
    rule = rule or OccupancyRule()
    light, co2 = readings.light_lux, readings.co2_ppm
    threshold = rule.light_lux if rule.light_lux is not None else otsu_threshold(light)
    baseline = float(np.percentile(co2, rule.co2_baseline_percentile))
    ahead = np.concatenate([co2[LOOKAHEAD:], np.full(LOOKAHEAD, -np.inf)])  # the last readings have no future
    lit, elevated = light >= threshold, co2 - baseline >= rule.co2_elevated_ppm
    index = np.arange(len(readings))
    known_at = np.where(~lit | elevated, index, np.minimum(index + LOOKAHEAD, len(readings) - 1))
    return Occupancy(lit & (elevated | (ahead - co2 >= rule.co2_rise_ppm)), known_at, float(threshold), baseline)
