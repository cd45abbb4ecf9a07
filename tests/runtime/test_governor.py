import threading
import time
from pathlib import Path

import pytest

from edgeslm.runtime.governor import Governor, OverBudget, Overloaded, UnknownModel
from edgeslm.runtime.power import PowerState
from edgeslm.runtime.profiles import BatteryConfig, DeviceProfile, ThermalConfig

MiB = 2**20


class Engine:
    """The smallest real engine: a byte count and a close the governor must call."""

    def __init__(self, name, size, threads):
        self.name, self.size, self.threads, self.closed = name, size, threads, False

    def memory_bytes(self):
        return self.size

    def close(self):
        self.closed = True


class Loader:
    def __init__(self, sizes_mb, delay=0.0):
        self.sizes, self.delay, self.loaded, self.engines = sizes_mb, delay, [], []

    def __call__(self, path: Path, threads: int):
        time.sleep(self.delay)
        engine = Engine(path.name, self.sizes[path.name] * MiB, threads)
        self.loaded.append(path.name)
        self.engines.append(engine)
        return engine


def profile(budget_mb=10, queue_limit=4, **kw):
    return DeviceProfile(name="test", memory_budget_mb=budget_mb, cores=2, threads=2, watts_idle=1.0,
                         watts_busy=2.0, queue_limit=queue_limit, **kw)


def governor(sizes, budget_mb=10, **kw):
    loader = Loader(sizes)
    gov = Governor(profile(budget_mb, **kw), loader, power=PowerState())
    for name in sizes:
        gov.register(name, Path("/bundles") / name)
    return gov, loader


def use(gov, name):
    with gov.acquire(name) as engine:
        return engine


def resident(gov):
    return sorted(r["name"] for r in gov.stats()["resident"])


def test_loads_on_demand_with_the_thread_budget_and_reuses():
    gov, loader = governor({"a": 3})
    a = use(gov, "a")
    assert (a.name, a.threads) == ("a", 2)
    assert use(gov, "a") is a and loader.loaded == ["a"]
    assert gov.counters["load"] == 1 and gov.stats()["memory"]["used_bytes"] == 3 * MiB


def test_evicts_least_recently_used_first():
    gov, _ = governor({"a": 4, "b": 4, "c": 4, "d": 4})
    a, b = use(gov, "a"), use(gov, "b")
    use(gov, "a")  # a is now more recent than b
    use(gov, "c")
    assert b.closed and not a.closed and resident(gov) == ["a", "c"]
    use(gov, "d")  # a was used before c
    assert a.closed and resident(gov) == ["c", "d"]
    assert [d.detail.split(":")[0] for d in gov.decisions if d.kind == "evict"] == ["b", "a"]
    assert gov.counters["evict"] == 2 and gov.counters["load"] == 4


def test_never_evicts_an_engine_in_use():
    gov, loader = governor({"a": 6, "b": 6})
    use(gov, "b")  # b's size is now known: the next load of b checks before loading
    with gov.acquire("a") as a:  # evicts idle b
        with pytest.raises(OverBudget, match="b needs 6.0 MiB"):
            with gov.acquire("b"):
                pass
        assert not a.closed and resident(gov) == ["a"]
    assert gov.counters["over_budget"] == 1 and loader.loaded == ["b", "a"]  # b not reloaded in vain
    use(gov, "b")
    assert a.closed and resident(gov) == ["b"]


def test_over_budget_by_estimate_or_by_measurement():
    loader = Loader({"big": 12, "liar": 12})
    gov = Governor(profile(10), loader, power=PowerState())
    gov.register("big", Path("big"), estimated_bytes=12 * MiB)
    gov.register("liar", Path("liar"), estimated_bytes=1 * MiB)
    with pytest.raises(OverBudget):
        use(gov, "big")
    assert loader.loaded == []  # the estimate refused it without loading
    with pytest.raises(OverBudget, match="liar needs 12.0 MiB"):
        use(gov, "liar")
    assert loader.engines[0].closed and resident(gov) == []  # measured, closed, not kept
    assert gov.counters["over_budget"] == 2 and gov.counters["load"] == 0


def test_estimate_makes_room_before_loading():
    loader = Loader({"a": 6, "b": 6})
    seen = []

    def watching(path, threads):
        seen.append([e.closed for e in loader.engines])  # what was still open when b's load began
        return loader(path, threads)

    gov = Governor(profile(10), watching, power=PowerState())
    gov.register("a", Path("a"))
    gov.register("b", Path("b"), estimated_bytes=6 * MiB)
    use(gov, "a")
    use(gov, "b")
    assert seen == [[], [True]]  # a was evicted and closed before b loaded: peak stays in budget


def test_concurrent_acquires_share_one_load():
    loader = Loader({"a": 2}, delay=0.1)
    gov = Governor(profile(10), loader, power=PowerState())
    gov.register("a", Path("a"))
    got = []
    threads = [threading.Thread(target=lambda: got.append(use(gov, "a"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and len({id(e) for e in got}) == 1 and loader.loaded == ["a"]


def test_failed_load_is_counted_and_retried():
    calls = []

    def flaky(path, threads):
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("disk hiccup")
        return Engine("a", MiB, threads)

    gov = Governor(profile(10), flaky, power=PowerState())
    gov.register("a", Path("a"))
    with pytest.raises(RuntimeError, match="hiccup"):
        use(gov, "a")
    assert use(gov, "a").name == "a" and gov.counters["load_error"] == 1
    assert gov.stats()["memory"]["used_bytes"] == MiB  # the failed load's reservation was released


@pytest.fixture
def battery(tmp_path):
    path = tmp_path / "capacity"
    path.write_text("80")
    return path


def switching(battery_cfg=None, thermal_cfg=None):
    gov = Governor(profile(10), Loader({"fp32": 4, "int8": 1}),
                   power=PowerState(battery_cfg, thermal_cfg, cache_seconds=0))
    gov.register("int8", Path("int8"))
    gov.register("fp32", Path("fp32"), cheaper="int8")
    return gov


def test_low_battery_switches_to_the_cheaper_variant_and_back(battery):
    gov = switching(BatteryConfig(path=battery, low_threshold_percent=20))
    assert use(gov, "fp32").name == "fp32"
    battery.write_text("15")
    assert use(gov, "fp32").name == "int8" and use(gov, "fp32").name == "int8"
    assert gov.counters["switch"] == 1  # a change of variant, not every request served by it
    battery.write_text("60")
    assert use(gov, "fp32").name == "fp32" and gov.counters["switch"] == 2
    details = [d.detail for d in gov.decisions if d.kind == "switch"]
    assert details == ["fp32: fp32 -> int8 (battery 15% < 20%)", "fp32: int8 -> fp32 (recovered)"]
    assert use(gov, "int8").name == "int8"  # asking for the cheap one directly always works


def test_hot_device_switches(tmp_path):
    temp = tmp_path / "temp"
    temp.write_text("50000")
    gov = switching(thermal_cfg=ThermalConfig(path=temp, hot_threshold_c=80))
    assert use(gov, "fp32").name == "fp32"
    temp.write_text("82000")
    assert use(gov, "fp32").name == "int8"
    switches = [d.detail for d in gov.decisions if d.kind == "switch"]
    assert switches == ["fp32: fp32 -> int8 (temperature 82 C > 80 C)"]


def test_garbage_battery_is_unknown_no_switch(battery):
    battery.write_text("%%garbage%%")
    gov = switching(BatteryConfig(path=battery, low_threshold_percent=20))
    assert use(gov, "fp32").name == "fp32" and use(gov, "fp32").name == "fp32"
    stats = gov.stats()
    assert gov.counters["switch"] == 0
    assert stats["power"]["battery_percent"] is None and stats["power_read_errors"] >= 2


def test_overloaded_at_queue_limit_under_real_threads():
    gov, _ = governor({}, queue_limit=3)
    inside, release = threading.Barrier(4), threading.Event()
    outcomes = []

    def request():
        try:
            with gov.admit():
                outcomes.append("admitted")
                inside.wait(timeout=5)
                release.wait(timeout=5)
        except Overloaded:
            outcomes.append("rejected")

    workers = [threading.Thread(target=request) for _ in range(3)]
    for w in workers:
        w.start()
    inside.wait(timeout=5)  # all three are in flight
    with pytest.raises(Overloaded) as info:
        with gov.admit():
            pass
    assert info.value.retry_after_s >= 1 and gov.stats()["admitted"] == 3
    release.set()
    for w in workers:
        w.join()
    assert outcomes == ["admitted"] * 3 and gov.counters["reject"] == 1
    with gov.admit():
        assert gov.stats()["admitted"] == 1
    assert gov.stats()["admitted"] == 0


def test_admission_is_exact_under_contention():
    gov, _ = governor({}, queue_limit=5)
    start, hold = threading.Barrier(16), threading.Event()
    admitted, rejected = [], []

    def request():
        start.wait(timeout=5)
        try:
            with gov.admit():
                admitted.append(1)
                hold.wait(timeout=5)
        except Overloaded:
            rejected.append(1)

    workers = [threading.Thread(target=request) for _ in range(16)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 5
    while len(admitted) + len(rejected) < 16 and time.monotonic() < deadline:
        time.sleep(0.01)
    hold.set()
    for w in workers:
        w.join()
    assert (len(admitted), len(rejected)) == (5, 11) and gov.counters["reject"] == 11


def test_unknown_models_and_bad_registrations():
    gov, _ = governor({"a": 1})
    with pytest.raises(UnknownModel, match="registered: a"):
        use(gov, "b")
    with pytest.raises(UnknownModel, match="registered first"):
        gov.register("c", Path("c"), cheaper="missing")
    with pytest.raises(UnknownModel):
        gov.register("a", Path("a"), cheaper="a")


def test_stats_decisions_and_close():
    gov = Governor(profile(5), Loader({"a": 2, "b": 2}), power=PowerState(), history=2)
    gov.register("a", Path("a"))
    gov.register("b", Path("b"))
    a, b = use(gov, "a"), use(gov, "b")
    stats = gov.stats()
    assert stats["memory"] == {"used_bytes": 4 * MiB, "budget_bytes": 5 * MiB}
    rows = sorted((r["name"], r["bytes"], r["in_use"]) for r in stats["resident"])
    assert rows == [("a", 2 * MiB, 0), ("b", 2 * MiB, 0)]
    assert stats["counters"]["load"] == 2 and stats["threads_per_engine"] == 2 and stats["power"]["degraded"] is False
    assert len(gov.decisions) == 2 and all(d.kind == "load" and d.time > 0 for d in gov.decisions)
    with gov.acquire("a"):
        gov.close()
        assert b.closed and not a.closed  # in use: left to its holder
    assert resident(gov) == ["a"]
