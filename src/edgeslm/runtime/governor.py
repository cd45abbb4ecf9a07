"""The resource governor: which model serves a request, what stays loaded, and who waits.

Three decisions, each logged, counted and kept in a bounded history for /metrics:
- variant: under a degraded power state (low battery, hot) a model's registered cheaper variant
  serves instead, and the original again once the device recovers ("switch");
- residency: models load on demand; least-recently-used idle engines are evicted until a new one
  fits the profile's memory budget ("load", "evict"); an engine in use is never evicted, and when
  idle ones do not free enough the request fails with OverBudget ("over_budget");
- admission: at most `queue_limit` requests in flight or queued; beyond it, Overloaded ("reject").

Thread budget: every engine gets the profile's full `threads`, unless it was registered with its own
count (serve passes the threads `edgeslm select` chose for a bundle). A device usually runs one model
at a time; splitting threads among resident engines would slow the active one to keep idle ones
ready. When two models do run at once the OS time-slices the oversubscribed cores, which costs
less than permanently halving each engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.power import PowerState
from edgeslm.runtime.profiles import DeviceProfile

log = logging.getLogger(__name__)

KINDS = ("load", "evict", "switch", "reject", "over_budget", "load_error", "close_error")
RETRY_AFTER_S = 1  # queues drain in milliseconds to a few seconds on these devices


class OverBudget(EdgeslmError):
    """The model does not fit the memory budget even with every idle engine evicted (HTTP 503)."""


class Overloaded(EdgeslmError):
    """The admission queue is full (HTTP 503 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int = RETRY_AFTER_S):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnknownModel(EdgeslmError):
    """No model is registered under that name (HTTP 404)."""


class Engine(Protocol):
    def memory_bytes(self) -> int: ...

    def close(self) -> None: ...


Loader = Callable[[Path, int], Engine]


class Decision(NamedTuple):
    time: float  # unix seconds
    kind: str
    detail: str


@dataclass
class _Slot:
    bundle_path: Path
    cheaper: str | None
    estimated_bytes: int | None
    threads: int
    engine: Engine | None = None
    bytes: int = 0  # measured once loaded; the next load's estimate after an eviction
    reserved: int = 0  # counted against the budget while loading
    loading: bool = False
    in_use: int = 0
    last_use: float = 0.0  # monotonic seconds, for stats
    order: int = 0  # a logical clock for LRU: ties are impossible, unlike timestamps
    serving: str = ""  # the variant this name was last served by, to log switches once


class Governor:
    def __init__(self, profile: DeviceProfile, loader: Loader, power: PowerState | None = None,
                 history: int = 256):
        self.profile = profile
        self.budget_bytes = profile.memory_budget_mb * 2**20
        self.power = power if power is not None else PowerState.for_profile(profile)
        self.counters: dict[str, int] = dict.fromkeys(KINDS, 0)  # fixed keys: safe to read unlocked
        self.decisions: deque[Decision] = deque(maxlen=history)
        self._loader = loader
        self._slots: dict[str, _Slot] = {}
        self._admitted = 0
        self._tick = 0
        self._cond = threading.Condition()

    def register(self, name: str, bundle_path: Path, cheaper: str | None = None,
                 estimated_bytes: int | None = None, threads: int | None = None) -> None:
        """`threads`: this engine's count, at most the profile's (None: the profile's)."""
        with self._cond:
            if cheaper is not None and (cheaper == name or cheaper not in self._slots):
                raise UnknownModel(f"{name}: cheaper variant {cheaper!r} must be another model, registered first")
            if estimated_bytes is not None and estimated_bytes < 0:
                raise ValueError(f"{name}: estimated_bytes must be >= 0")
            if threads is not None and not 1 <= threads <= self.profile.threads:
                raise ValueError(f"{name}: threads must be in [1, {self.profile.threads}] (profile "
                                 f"{self.profile.name}'s budget), got {threads}")
            self._slots[name] = _Slot(Path(bundle_path), cheaper, estimated_bytes, threads or self.profile.threads,
                                      serving=name)

    @contextmanager
    def admit(self) -> Iterator[None]:
        with self._cond:
            if self._admitted >= self.profile.queue_limit:
                self._decide("reject", f"{self._admitted} requests admitted, queue_limit {self.profile.queue_limit}")
                raise Overloaded(f"busy: {self._admitted} requests in flight or queued "
                                 f"(queue_limit {self.profile.queue_limit}); retry in {RETRY_AFTER_S} s")
            self._admitted += 1
        try:
            yield
        finally:
            with self._cond:
                self._admitted -= 1

    @contextmanager
    def acquire(self, name: str) -> Iterator[Engine]:
        """The engine that serves `name` now, loaded if needed and pinned until the block exits."""
        variant, engine = self._pin(name)
        try:
            yield engine
        finally:
            with self._cond:
                slot = self._slots[variant]
                slot.in_use -= 1
                self._touch(slot)

    def _pin(self, name: str) -> tuple[str, Engine]:
        variant = self._variant(name)
        with self._cond:
            slot = self._slots[variant]
            while slot.loading:  # another thread is loading it: share that load
                self._cond.wait()
            if slot.engine is not None:
                slot.in_use += 1
                self._touch(slot)
                return variant, slot.engine
            # Measured size if it was loaded before, else the registered estimate. With neither,
            # nothing is evicted up front and the budget is enforced once the engine reports its size.
            need = slot.bytes or slot.estimated_bytes or 0
            victims = self._make_room(variant, need)
            slot.loading, slot.reserved = True, need
        self._close(victims)
        try:
            engine = self._loader(slot.bundle_path, slot.threads)
            size = engine.memory_bytes()
        except BaseException as exc:
            with self._cond:
                slot.loading, slot.reserved = False, 0
                self._decide("load_error", f"{variant}: {exc}", logging.ERROR)
                self._cond.notify_all()
            raise
        return variant, self._install(variant, engine, size)

    def _install(self, variant: str, engine: Engine, size: int) -> Engine:
        with self._cond:
            slot = self._slots[variant]
            slot.loading, slot.reserved, slot.bytes = False, 0, size
            self._cond.notify_all()
            error: OverBudget | None = None
            try:  # the estimate may have been low or absent: make room for the measured size
                victims = self._make_room(variant, size)
            except OverBudget as exc:
                error, victims = exc, [(variant, engine)]
            else:
                slot.engine, slot.in_use = engine, 1
                self._touch(slot)
                used = f"{_mb(self._used())} of {_mb(self.budget_bytes)} used"
                self._decide("load", f"{variant}: {_mb(size)} resident, {used}")
        self._close(victims)
        if error is not None:
            raise error
        return engine

    def _variant(self, name: str) -> str:
        with self._cond:
            slot = self._slots.get(name)
            if slot is None:
                raise UnknownModel(f"no model {name!r}; registered: {', '.join(sorted(self._slots)) or 'none'}")
        if slot.cheaper is None:
            return name
        reading = self.power.read()  # may read sensor files: outside the lock
        want = slot.cheaper if reading.degraded else name
        with self._cond:
            if slot.serving != want:
                why = "; ".join(reading.reasons) or "recovered"
                self._decide("switch", f"{name}: {slot.serving} -> {want} ({why})")
                slot.serving = want
        return want

    def _make_room(self, variant: str, need: int) -> list[tuple[str, Engine]]:
        """Evict idle engines, least recently used first, until `need` more bytes fit. Caller holds
        the lock. Evicts nothing and raises OverBudget when even evicting every idle one is short."""
        idle = sorted((s.order, n) for n, s in self._slots.items()
                      if s.engine is not None and s.in_use == 0 and n != variant)
        pinned = self._used() - sum(self._slots[n].bytes for _, n in idle)
        if pinned + need > self.budget_bytes:
            self._decide("over_budget", f"{variant} needs {_mb(need)}; {_mb(pinned)} of "
                                        f"{_mb(self.budget_bytes)} held by engines in use or loading", logging.WARNING)
            raise OverBudget(f"{variant} needs {_mb(need)} but only {_mb(self.budget_bytes - pinned)} of the "
                             f"{_mb(self.budget_bytes)} budget can be freed; retry when requests finish")
        victims = []
        for _, n in idle:
            if self._used() + need <= self.budget_bytes:
                break
            slot = self._slots[n]
            victims.append((n, slot.engine))
            self._decide("evict", f"{n}: {_mb(slot.bytes)} freed for {variant} (least recently used)")
            slot.engine = None
        return victims  # type: ignore[return-value]

    def _close(self, victims: list[tuple[str, Engine]]) -> None:
        for name, engine in victims:  # outside the lock: closing may take a while
            try:
                engine.close()
            except Exception as exc:  # a failed close must not fail the request that caused it
                with self._cond:
                    self._decide("close_error", f"{name}: {exc}", logging.ERROR)

    def _touch(self, slot: _Slot) -> None:
        self._tick += 1
        slot.order, slot.last_use = self._tick, time.monotonic()

    def _used(self) -> int:
        return sum(s.bytes for s in self._slots.values() if s.engine is not None) + \
            sum(s.reserved for s in self._slots.values())

    def _decide(self, kind: str, detail: str, level: int = logging.INFO) -> None:
        self.counters[kind] += 1
        self.decisions.append(Decision(time.time(), kind, detail))
        log.log(level, "governor %s: %s", kind, detail)

    def stats(self) -> dict[str, Any]:
        power = self.power.read().to_dict()
        with self._cond:
            now = time.monotonic()
            resident = [{"name": n, "bytes": s.bytes, "in_use": s.in_use, "idle_s": round(now - s.last_use, 3),
                         "threads": s.threads} for n, s in self._slots.items() if s.engine is not None]
            return {
                "profile": self.profile.name,
                "memory": {"used_bytes": self._used(), "budget_bytes": self.budget_bytes},
                "resident": resident,
                "admitted": self._admitted,
                "queue_limit": self.profile.queue_limit,
                "threads_per_engine": self.profile.threads,
                "counters": dict(self.counters),
                "power": power,
                "power_read_errors": self.power.read_errors,
            }

    def close(self) -> None:
        """Close every idle engine (server shutdown); engines still in use are left to their holders."""
        with self._cond:
            victims = [(n, s.engine) for n, s in self._slots.items() if s.engine is not None and s.in_use == 0]
            for n, _ in victims:
                self._slots[n].engine = None
        self._close(victims)  # type: ignore[arg-type]


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
