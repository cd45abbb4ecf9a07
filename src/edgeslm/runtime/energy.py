"""Energy estimates from measured CPU time: no power meter needed, only the profile's two wattages.

The model is linear in CPU utilisation: a device draws `watts_idle` doing nothing and `watts_busy`
with every core saturated, and in between in proportion to the share of core-seconds used:

    util   = min(1, cpu_seconds / (wall_seconds * cores))
    joules = watts_idle * wall_seconds + (watts_busy - watts_idle) * util * wall_seconds

It ignores DVFS and memory traffic (real curves bend), which is why profiles carry measured
idle/busy endpoints: the error sits in between, and shrinks at either end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edgeslm.runtime.profiles import DeviceProfile


def utilisation(cpu_seconds: float, wall_seconds: float, cores: int) -> float:
    """Share of the device's core-seconds used, in [0, 1]; 0 for an empty span."""
    if cpu_seconds < 0 or wall_seconds < 0:
        raise ValueError(f"cpu_seconds and wall_seconds must be >= 0, got {cpu_seconds}, {wall_seconds}")
    if wall_seconds == 0:
        return 0.0
    return min(1.0, cpu_seconds / (wall_seconds * cores))


def cpu_seconds() -> float:
    """This process's CPU time so far, every thread, user + system (clock_gettime resolution, not the
    10 ms ticks of os.times: requests here take milliseconds)."""
    return time.process_time()


def joules(cpu_seconds: float, wall_seconds: float, profile: DeviceProfile) -> float:
    """Whole-device energy over a span of `wall_seconds` in which this process used `cpu_seconds`."""
    util = utilisation(cpu_seconds, wall_seconds, profile.cores)
    return profile.watts_idle * wall_seconds + (profile.watts_busy - profile.watts_idle) * util * wall_seconds


@dataclass
class CpuMeter:
    """Process CPU time and wall time of the work inside `with meter:` blocks, summed over blocks
    (a benchmark side that runs in alternating blocks uses one meter).

    CPU time is the whole process's (`cpu_seconds`). Under concurrency a span therefore includes
    other requests' work: that is the device's draw over the span, which is what `joules` models.
    """

    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    _cpu0: float = field(default=0.0, repr=False)
    _wall0: float = field(default=0.0, repr=False)

    def __enter__(self) -> CpuMeter:
        self._cpu0, self._wall0 = cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_seconds += cpu_seconds() - self._cpu0
        self.wall_seconds += time.perf_counter() - self._wall0

    def joules(self, profile: DeviceProfile) -> float:
        return joules(self.cpu_seconds, self.wall_seconds, profile)
