"""Tier 0, habits: what this household asked, when, learned online from the device's own answers.
It answers the phrases that only history can resolve: "the usual" (the command asked most often at
this hour of this kind of day, seen on at least `min_days` days), "same as yesterday" (what was asked
yesterday within an hour of now) and "do that again" (the last command). It learns only from the past:
each answer is recorded after it is given, with the stream's own timestamp, and with the tier that gave
it: `expect` says on what share of days of this kind each tier answered a command at this time of
day, which is when a released heavy tier is loaded ahead of them (resident.py, the pre-warm).

Kept in SQLite beside the exact cache (store.py): bounded (oldest first), survives a restart, and a
changed home drops what was learned about the old one.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import context_key, normalize
from edgeslm.runtime.tiers.store import HomeStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
  home TEXT NOT NULL, ts REAL NOT NULL, context TEXT NOT NULL, intent TEXT NOT NULL, slots TEXT NOT NULL,
  tier TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS history_ts ON history (home, ts);
"""
USUAL = re.compile(r"^(?:(?:do|the|my|same|as|usual|please|just|thing|routine)\s*)+$")
YESTERDAY = re.compile(r"\b(?:same as|like) yesterday\b")
AGAIN = re.compile(r"^(?:(?:do|that|it|this|again|please|once more|repeat|same|thing)\s*)+$")
DAY = 86_400.0
SLOT = 900.0  # expect() counts commands per quarter hour of the day
EXPECT_DAYS = 56  # ...over the last eight weeks


def habit_phrase(text: str) -> str | None:
    """Which of the habits' phrases a command is ("yesterday", "again", "usual"), or None."""
    words = normalize(text)
    if YESTERDAY.search(words):
        return "yesterday"
    if words in ("repeat", "once more") or (AGAIN.fullmatch(words) and "again" in words.split()):
        return "again"
    if USUAL.fullmatch(words) and "usual" in words.split():
        return "usual"
    return None


class Habits(HomeStore):
    name = "habits"
    TABLE, SCHEMA, EVICT_BY, WHAT = "history", SCHEMA, "ts", "the habit store"

    def __init__(self, path: str, home_digest: str, max_entries: int = 50_000, min_days: int = 3):
        if max_entries < 1 or min_days < 1:
            raise EdgeslmError("Habits.max_entries and min_days must be at least 1")
        self.min_days = min_days
        super().__init__(path, home_digest, max_entries)
        with self._lock:
            if "tier" not in {row[1] for row in self.db.execute("PRAGMA table_info(history)").fetchall()}:
                self.db.execute("ALTER TABLE history ADD COLUMN tier TEXT NOT NULL DEFAULT ''")  # a store from before
            rows = self.db.execute("SELECT ts, tier FROM history WHERE home = ? ORDER BY ts", (self.home,)).fetchall()
        # (weekend, tier) -> quarter hour -> the days it answered then; weekend -> the days seen; the last
        # EXPECT_DAYS days only, so these tables stay bounded like the store itself
        self._slots: dict[tuple[bool, str], dict[int, set[int]]] = {}
        self._days: dict[bool, set[int]] = {False: set(), True: set()}
        self._newest = -1
        for ts, tier in rows:
            self._note(ts, tier)

    def answer(self, text: str, context: dict[str, Any] | None = None, ts: float | None = None) -> Answer | None:
        phrase = habit_phrase(text)
        now = time.time() if ts is None else ts
        if phrase == "yesterday":
            row = self._one("SELECT intent, slots FROM history WHERE home = ? AND context = ? AND ts BETWEEN ? AND ? "
                            "ORDER BY ABS(ts - ?) LIMIT 1",
                            (self.home, context_key(context), now - DAY - 3600, now - DAY + 3600, now - DAY))
            return self._answer(row, 0.99)
        if phrase == "again":
            row = self._one("SELECT intent, slots FROM history WHERE home = ? AND context = ? AND ts <= ? "
                            "ORDER BY ts DESC LIMIT 1", (self.home, context_key(context), now))
            return self._answer(row, 0.99)
        if phrase == "usual":
            return self.usual(context, now)
        return None

    def usual(self, context: dict[str, Any] | None, now: float) -> Answer | None:
        """The most frequent command within an hour of this time of day, on days of the same kind
        (weekday or weekend), asked on at least min_days different days."""
        weekend = time.gmtime(now).tm_wday >= 5
        with self._lock:
            rows = self.db.execute("SELECT ts, intent, slots FROM history WHERE home = ? AND context = ? AND ts < ?",
                                   (self.home, context_key(context), now)).fetchall()
        days: dict[tuple[str, str], set[int]] = {}
        minute = (now % DAY) / 60
        for ts, intent, slots in rows:
            if (time.gmtime(ts).tm_wday >= 5) != weekend:
                continue
            delta = abs((ts % DAY) / 60 - minute)
            if min(delta, 1440 - delta) <= 60:
                days.setdefault((intent, slots), set()).add(int(ts // DAY))
        if not days:
            return None
        (intent, slots), seen = max(days.items(), key=lambda kv: len(kv[1]))
        if len(seen) < self.min_days:
            return None
        return Answer(intent, json.loads(slots), tier=self.name, confidence=min(0.99, 0.8 + 0.03 * len(seen)))

    def observe(self, answer: Answer, context: dict[str, Any] | None = None, ts: float | None = None) -> None:
        if answer.intent in ("unknown", "HassNevermind"):
            return
        now = time.time() if ts is None else ts
        with self._lock:
            self.db.execute("INSERT INTO history (home, ts, context, intent, slots, tier) VALUES (?, ?, ?, ?, ?, ?)",
                            (self.home, now, context_key(context), answer.intent,
                             json.dumps(answer.slots, sort_keys=True, ensure_ascii=False), answer.tier))
            self._added()
            self._note(now, answer.tier)

    def expect(self, now: float, within: float, tiers: tuple[str, ...]) -> dict[str, float]:
        """For each of `tiers`, the share of earlier days of this kind (weekday or weekend; the last
        EXPECT_DAYS) on which it answered a command in [now, now + within) of the day; {} before
        `min_days` such days were seen."""
        weekend = time.gmtime(now).tm_wday >= 5
        today = int(now // DAY)
        with self._lock:
            days = sum(1 for d in self._days[weekend] if d < today)
            if days < self.min_days:
                return {}
            first, last = int((now % DAY) // SLOT), int(((now % DAY) + max(within, 1.0) - 1e-6) // SLOT)
            slots = [k % int(DAY // SLOT) for k in range(first, last + 1)]  # the quarter hours the span touches
            out = {}
            for tier in tiers:
                by_slot = self._slots.get((weekend, tier), {})
                seen = set().union(*(by_slot.get(slot, ()) for slot in slots))
                out[tier] = sum(1 for d in seen if d < today) / days
        return out

    def _note(self, ts: float, tier: str) -> None:
        """Count a command in expect()'s tables (the lock held, or still being built)."""
        weekend, day = time.gmtime(ts).tm_wday >= 5, int(ts // DAY)
        if day > self._newest:  # a new day: forget those past the window
            self._newest, oldest = day, day - EXPECT_DAYS
            for seen in (*self._days.values(), *(s for by_slot in self._slots.values() for s in by_slot.values())):
                seen.difference_update([d for d in seen if d < oldest])
        elif day < self._newest - EXPECT_DAYS:
            return
        self._days[weekend].add(day)
        if tier:
            self._slots.setdefault((weekend, tier), {}).setdefault(int((ts % DAY) // SLOT), set()).add(day)

    def _one(self, sql: str, args: tuple) -> tuple | None:
        with self._lock:
            return self.db.execute(sql, args).fetchone()

    def _answer(self, row: tuple | None, confidence: float) -> Answer | None:
        return None if row is None else Answer(row[0], json.loads(row[1]), tier=self.name, confidence=confidence)

