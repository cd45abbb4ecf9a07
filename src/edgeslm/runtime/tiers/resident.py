"""Heavy tiers that hold memory only while they are needed. A tier kept this way (the generative tier: a
llama.cpp model and its KV cache, 150-250 MB for SmolLM2-135M) is released after `idle_s` without a
command it answered, and loaded again either by the command that needs it (a cold start: that command
waits for the load) or before it, when the habits expect commands for it soon: they learned at which
times of day, on which kind of day, each tier answered (habits.py `expect`). Loading ahead of time is
the habits' pre-warm; a pre-warm that no command used before the next release is counted as wasted.

Time is the stream's own in a replay (`Assistant.ask(..., ts)` steps the timer up to each command) and
the clock in the server (a thread calls `Assistant.tick` every `tick_s`)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeslm.errors import ConfigError

WARM_UP = "turn on the light"  # the command `warm_up` sends


# what a kept tier counts: loads of its model, those a command waited for (cold starts), those the habits
# asked for ahead (pre-warms) and whether a command then used them, and releases
EVENTS = ("loads", "cold_starts", "prewarms", "prewarms_used", "prewarms_wasted", "releases")


def warm_up(tier: Any) -> None:
    """One command through a freshly built tier, so the first user's does not pay for what it builds on
    first use (hassil's matcher state; a generative prompt not read from its file, evaluated)."""
    if getattr(tier, "primed", "no") == "no":
        tier.answer(WARM_UP)


@dataclass(frozen=True)
class Residency:
    """When a kept tier is released and when the habits load it ahead of a command."""

    idle_s: float = 900.0  # released after this long without a command it answered
    lead_s: float = 900.0  # loaded when the habits expect commands for it within this long: it answered
    min_expected: float = 0.5  # one then on at least this share of earlier days (float('inf'): never ahead)
    tick_s: float = 60.0  # how often the timer looks

    def __post_init__(self) -> None:
        if not (self.idle_s > 0 and self.lead_s >= 0 and self.min_expected > 0 and self.tick_s > 0):
            raise ConfigError("residency: idle_s and tick_s must be > 0, lead_s >= 0, min_expected > 0")


class Resident:
    """A tier opened by `open_tier` when needed and closed when released; answers like the tier."""

    def __init__(self, name: str, open_tier: Callable[[], Any]):
        self.name, self._open = name, open_tier
        self.tier: Any = None
        self.lock = threading.RLock()
        self.counts: Counter = Counter()  # of EVENTS
        self.last_used: float | None = None
        self.loaded_at: float | None = None
        self.resident_s = 0.0  # time loaded, on the assistant's clock
        self.used = False  # answered a command since the last look (the assistant reads and clears it)
        self._suspended: Any = None  # a released tier that keeps what it built (suspend/resume), or None
        self._prewarmed = False  # loaded by a pre-warm and not yet used

    @property
    def loaded(self) -> bool:
        return self.tier is not None

    def __getattr__(self, key: str) -> Any:  # the tier's own attributes (narrows, embeds, declined...)
        tier = self.__dict__.get("tier") or self.__dict__.get("_suspended")  # a suspended one keeps its own
        if tier is None:
            raise AttributeError(key)
        return getattr(tier, key)

    def answer(self, text: str, context: dict[str, Any] | None = None, *args: Any) -> Any:
        with self.lock:
            if self.tier is None:
                self.counts["cold_starts"] += 1
                self._load(None)
            if self._prewarmed:
                self.counts["prewarms_used"] += 1
                self._prewarmed = False
            self.used = True
            return self.tier.answer(text, context, *args)

    def preload(self) -> None:
        """Load at start (the clock starts with the first command: `started`)."""
        with self.lock:
            if self.tier is None:
                self._load(None)
                warm_up(self.tier)

    def warm(self, now: float) -> None:
        """Load ahead of a command the habits expect."""
        with self.lock:
            if self.tier is None:
                self.counts["prewarms"] += 1
                self._load(now)
                warm_up(self.tier)  # what it must evaluate, evaluated now, off the command's path
                self._prewarmed = True
                self.last_used = now  # not released before its commands had a chance

    def release(self, now: float | None) -> None:
        with self.lock:
            if self.tier is None:
                return
            if self._prewarmed:
                self.counts["prewarms_wasted"] += 1
                self._prewarmed = False
            if getattr(self.tier, "can_suspend", False):
                self.tier.suspend()  # the engine goes, the prompt and grammar built from the home stay
                self._suspended = self.tier
            elif hasattr(self.tier, "close"):
                self.tier.close()
            self.tier = None
            self.counts["releases"] += 1
            if now is not None and self.loaded_at is not None:
                self.resident_s += max(0.0, now - self.loaded_at)
            self.loaded_at = None

    def close(self) -> None:
        self.release(None)
        if self._suspended is not None and hasattr(self._suspended, "close"):
            self._suspended.close()
        self._suspended = None

    def report(self, until: float | None) -> dict[str, Any]:
        """Counts, and the time it was loaded up to `until` (the stream's last command)."""
        held = self.resident_s
        if self.tier is not None and self.loaded_at is not None and until is not None:
            held += max(0.0, until - self.loaded_at)
        return {**{k: self.counts.get(k, 0) for k in EVENTS}, "resident_s": round(held, 1)}

    def started(self, now: float) -> None:
        """The assistant's clock has started: a tier loaded at start counts as loaded from `now`."""
        if self.tier is not None and self.loaded_at is None:
            self.loaded_at = now
            self.last_used = now

    def _load(self, now: float | None) -> None:
        if self._suspended is not None:
            self._suspended.resume()
            self.tier, self._suspended = self._suspended, None
        else:
            self.tier = self._open()
        self.counts["loads"] += 1
        self.loaded_at = now
