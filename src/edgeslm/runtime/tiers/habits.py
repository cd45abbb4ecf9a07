"""Tier 0, habits: what this household asked, when, learned online from the device's own answers.
It answers the phrases that only history can resolve: "the usual" (the command asked most often at
this hour of this kind of day, seen on at least `min_days` days), "same as yesterday" (what was asked
yesterday within an hour of now) and "do that again" (the last command). It learns only from the past:
each answer is recorded after it is given, with the stream's own timestamp.

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
  home TEXT NOT NULL, ts REAL NOT NULL, context TEXT NOT NULL, intent TEXT NOT NULL, slots TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_ts ON history (home, ts);
"""
USUAL = re.compile(r"^(?:(?:do|the|my|same|as|usual|please|just|thing|routine)\s*)+$")
YESTERDAY = re.compile(r"\b(?:same as|like) yesterday\b")
AGAIN = re.compile(r"^(?:(?:do|that|it|this|again|please|once more|repeat|same|thing)\s*)+$")
DAY = 86_400.0


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
        with self._lock:
            self.db.execute("INSERT INTO history (home, ts, context, intent, slots) VALUES (?, ?, ?, ?, ?)",
                            (self.home, time.time() if ts is None else ts, context_key(context), answer.intent,
                             json.dumps(answer.slots, sort_keys=True, ensure_ascii=False)))
            self._added()

    def _one(self, sql: str, args: tuple) -> tuple | None:
        with self._lock:
            return self.db.execute(sql, args).fetchone()

    def _answer(self, row: tuple | None, confidence: float) -> Answer | None:
        return None if row is None else Answer(row[0], json.loads(row[1]), tier=self.name, confidence=confidence)

