import time

import pytest

from edgeslm.runtime.energy import CpuMeter, joules, utilisation
from edgeslm.runtime.profiles import DeviceProfile

PI4 = DeviceProfile(name="pi", memory_budget_mb=2048, cores=4, threads=4, watts_idle=2.7, watts_busy=6.4)


def test_joules_linear_in_utilisation():
    assert joules(0.0, 10.0, PI4) == pytest.approx(27.0)  # idle: 2.7 W x 10 s
    assert joules(40.0, 10.0, PI4) == pytest.approx(64.0)  # four cores saturated
    assert joules(20.0, 10.0, PI4) == pytest.approx(27.0 + 3.7 * 0.5 * 10)  # half the core-seconds
    assert joules(10.0, 10.0, PI4) == pytest.approx(27.0 + 3.7 * 0.25 * 10)  # one core of four


def test_utilisation_clamps_and_rejects_negatives():
    assert utilisation(100.0, 10.0, 4) == 1.0  # clock skew cannot push past the busy figure
    assert joules(100.0, 10.0, PI4) == pytest.approx(64.0)
    assert utilisation(1.0, 0.0, 4) == 0.0 and joules(0.0, 0.0, PI4) == 0.0
    with pytest.raises(ValueError):
        joules(-1.0, 1.0, PI4)


def test_cpu_meter_tells_busy_from_idle():
    with CpuMeter() as idle:
        time.sleep(0.1)
    with CpuMeter() as busy:
        start = time.process_time()
        while time.process_time() - start < 0.1:  # CPU time, not wall: robust on a loaded machine
            pass
    assert idle.wall_seconds >= 0.1 and idle.cpu_seconds < 0.03
    assert busy.cpu_seconds >= 0.1 and busy.wall_seconds >= busy.cpu_seconds * 0.95
    # one busy core of four: a quarter of the way from idle to busy watts
    assert busy.joules(PI4) > idle.joules(PI4) * busy.wall_seconds / idle.wall_seconds
    assert busy.joules(PI4) == pytest.approx(joules(busy.cpu_seconds, busy.wall_seconds, PI4))
    assert busy.joules(PI4) <= PI4.watts_idle * busy.wall_seconds + 3.7 * 0.3 * busy.wall_seconds
