"""Streaming sensor input: per-sensor sliding windows over the last N readings, for a time-series model
whose graph reads [N, C] (N its series length, C its channels). Numpy only (device side).

Each sensor id has a ring buffer float32 [N, C] (preallocated when the sensor first reports). `push(sensor,
values)` appends k readings and returns the windows that filled during them, oldest first:

- the first window when the sensor's N-th reading arrives, then one every `hop` readings after it
  (hop = N by default: non-overlapping windows, each reading classified once; hop < N overlaps them, e.g.
  hop = N // 2 answers twice as often at twice the compute). 1 <= hop <= N, so no reading is skipped.
- a push is validated whole before anything changes: a NaN, a value that is not a number, a wrong channel
  count, more than `max_push` readings, an unknown sensor (when a registry of sensors is given) or a new
  sensor past `max_sensors` raises StreamError and leaves every window, this sensor's included, as it was.

Memory is bounded: at most `max_sensors` buffers of N x C float32 (FordA: 500 x 1 x 4 B = 2 kB a sensor,
2 MB per 1,000 sensors); `nbytes()` reports what the buffers hold. A new sensor past the bound is refused
(409), never let in by evicting another: a sensor that is still reporting keeps its half-filled window.
With `ttl_s`, a sensor not heard from for that long is forgotten (its readings dropped; it starts a fresh
window if it reports again), which frees its place: the store sweeps them, oldest first, before each push
and each listing. Thread-safe (one lock per store).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeslm.data.series import parse_series

SENSOR_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")


@dataclass(frozen=True)
class StreamSettings:
    """What a server gives every series model's store (serve validates them: ServeConfig)."""

    hop: int | None = None  # None: the model's series length; more than it is capped at it, so no reading is skipped
    max_sensors: int = 10_000
    ttl_s: float | None = None  # None: a sensor is never forgotten

    def store(self, length: int, channels: int) -> StreamStore:
        hop = min(self.hop, length) if self.hop else None
        return StreamStore(length, channels, hop, self.max_sensors, ttl_s=self.ttl_s)


class StreamError(ValueError):
    """A push refused whole; `status` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Window:
    sensor: str
    end: int  # how many readings this sensor had sent when the window closed (1-based index of its last)
    values: np.ndarray  # float32 [N, C], oldest first


class _Ring:
    __slots__ = ("buf", "pos", "filled", "since", "total", "seen")

    def __init__(self, length: int, channels: int, now: float):
        self.buf = np.zeros((length, channels), dtype=np.float32)
        self.pos = 0  # where the next reading goes
        self.filled = 0  # readings held, up to length
        self.since = 0  # readings since the last window
        self.total = 0  # readings ever received
        self.seen = now  # the store's clock at the last push

    def ordered(self) -> np.ndarray:
        if self.filled < len(self.buf):
            return self.buf[:self.filled]
        return np.concatenate([self.buf[self.pos:], self.buf[:self.pos]])


class StreamStore:
    def __init__(self, length: int, channels: int = 1, hop: int | None = None, max_sensors: int = 10_000,
                 max_push: int | None = None, sensors: Iterable[str] | None = None, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if length < 1 or channels < 1:
            raise ValueError("length and channels must be >= 1")
        hop = length if hop is None else hop
        if not 1 <= hop <= length:
            raise ValueError(f"hop must be between 1 and the series length {length}, got {hop}")
        if max_sensors < 1:
            raise ValueError("max_sensors must be >= 1")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 seconds (or None: never forget), got {ttl_s}")
        self.length, self.channels, self.hop, self.max_sensors = length, channels, hop, max_sensors
        self.ttl_s, self.clock = ttl_s, clock
        self.max_push = length if max_push is None else max_push  # one window's worth of readings a push
        if self.max_push < 1:
            raise ValueError("max_push must be >= 1")
        self.registry = None if sensors is None else frozenset(sensors)
        if self.registry is not None and (bad := [s for s in self.registry if not SENSOR_ID.match(s)]):
            raise ValueError(f"sensor ids must match {SENSOR_ID.pattern}: {bad[:3]}")
        self._rings: OrderedDict[str, _Ring] = OrderedDict()  # least recently heard first
        self._lock = threading.Lock()
        self.forgotten = 0  # sensors dropped by the ttl since start

    def __len__(self) -> int:
        return len(self._rings)

    def expire(self) -> int:
        """Forget the sensors silent for longer than ttl_s; how many were forgotten."""
        with self._lock:
            return self._expire()

    def _expire(self) -> int:
        if self.ttl_s is None:
            return 0
        cutoff, gone = self.clock() - self.ttl_s, 0
        while self._rings:
            sensor, ring = next(iter(self._rings.items()))
            if ring.seen >= cutoff:
                break  # the rest were heard from later
            del self._rings[sensor]
            gone += 1
        self.forgotten += gone
        return gone

    def sensors(self, limit: int) -> list[dict[str, Any]]:
        """The `limit` most recently heard sensors, latest first: readings held, still pending, received, and
        seconds since the last push."""
        with self._lock:
            self._expire()
            now, out = self.clock(), []
            for sensor in reversed(self._rings):
                if len(out) >= limit:
                    break
                ring = self._rings[sensor]
                out.append({"sensor": sensor, "filled": ring.filled, "pending": self._pending(ring),
                            "received": ring.total, "idle_s": round(max(0.0, now - ring.seen), 3)})
            return out

    def nbytes(self) -> int:
        """Bytes held by the window buffers (the bookkeeping adds roughly 0.3 kB a sensor in Python objects)."""
        with self._lock:
            return sum(r.buf.nbytes for r in self._rings.values())

    def pending(self, sensor: str) -> int:
        """Readings this sensor still has to send before its next window."""
        ring = self._rings.get(sensor)
        return self.length if ring is None else self._pending(ring)

    def _pending(self, ring: _Ring) -> int:
        return self.length - ring.filled if ring.filled < self.length else self.hop - ring.since

    def check(self, sensor: Any, values: Any) -> np.ndarray:
        """The push's readings as float32 [k, C], or StreamError; changes nothing."""
        if not isinstance(sensor, str) or not SENSOR_ID.match(sensor):
            raise StreamError("sensor must be a string of 1 to 128 letters, digits or . _ : / -")
        if self.registry is not None and sensor not in self.registry:
            raise StreamError(f"sensor {sensor!r} is not registered here", 404)
        if isinstance(values, np.ndarray):
            arr = np.asarray(values, dtype=np.float32)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2 or not len(arr):
                raise StreamError("values must be [readings] or [readings, channels]")
            if not np.isfinite(arr).all():
                raise StreamError("values must be finite numbers (no NaN or infinity)")
        else:
            try:
                arr = parse_series(values, "values", max_values=self.max_push * self.channels)
            except ValueError as exc:
                raise StreamError(str(exc)) from None
        if arr.shape[1] != self.channels:
            raise StreamError(f"this model reads {self.channels} channel(s) a reading; got {arr.shape[1]}")
        if len(arr) > self.max_push:
            raise StreamError(f"values has {len(arr)} readings; the limit is {self.max_push} a push")
        if sensor not in self._rings and len(self._rings) >= self.max_sensors:
            forget = f"a sensor silent for {self.ttl_s:g} s is forgotten" if self.ttl_s else "no sensor is forgotten"
            raise StreamError(f"this store holds its limit of {self.max_sensors} sensors; {sensor!r} is new and "
                              f"cannot be added ({forget}; serve --max-sensors and --sensor-ttl set these)", 409)
        return arr

    def push(self, sensor: str, values: Any) -> list[Window]:
        """Append readings (a list as parse_series reads it, or an array [k] / [k, C]); the windows that filled."""
        with self._lock:
            self._expire()  # silence past the ttl forgets a sensor whatever this push turns out to be
            arr = self.check(sensor, values)  # everything that can fail fails here, before any change
            now = self.clock()
            ring = self._rings.get(sensor)
            if ring is None:
                ring = self._rings[sensor] = _Ring(self.length, self.channels, now)
            else:
                self._rings.move_to_end(sensor)
            ring.seen = now
            return self._append(sensor, ring, arr)

    def _append(self, sensor: str, ring: _Ring, arr: np.ndarray) -> list[Window]:
        n, k = self.length, len(arr)
        first = self._pending(ring)  # readings until the next window
        ends = list(range(first, k + 1, self.hop))
        windows = []
        if ends:
            history = np.concatenate([ring.ordered(), arr])
            base = ring.filled
            windows = [Window(sensor, ring.total + j, history[base + j - n:base + j].copy()) for j in ends]
        ring.since = k - ends[-1] if ends else ring.since + k
        ring.total += k
        if k >= n:
            ring.buf[:] = arr[-n:]
            ring.pos = 0
        else:
            head = min(k, n - ring.pos)
            ring.buf[ring.pos:ring.pos + head] = arr[:head]
            ring.buf[:k - head] = arr[head:]
            ring.pos = (ring.pos + k) % n
        ring.filled = min(n, ring.filled + k)
        return windows
