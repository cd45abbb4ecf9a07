"""Tier 0, exact: an answer served before is served again for the same command, said the same way
(after normalization), in the same home and the same context, without running any model.

Stored on the device in SQLite (store.py), so it survives a restart; bounded (the least recently
used entries go first); a changed home drops the old home's entries.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.store import HomeStore

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s%°.'-]|(?<!\d)\.|\.(?!\d)")  # keep decimals (21.5) and percent signs
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
  home TEXT NOT NULL, context TEXT NOT NULL, text TEXT NOT NULL,
  intent TEXT NOT NULL, slots TEXT NOT NULL, hits INTEGER NOT NULL DEFAULT 0, used REAL NOT NULL,
  PRIMARY KEY (home, context, text)
);
CREATE INDEX IF NOT EXISTS answers_used ON answers (used);
"""


def normalize(text: str) -> str:
    """Case, Unicode forms, punctuation and spacing do not change what a command means."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def context_key(context: dict[str, Any] | None) -> str:
    return json.dumps(context or {}, sort_keys=True, ensure_ascii=False)


class ExactCache(HomeStore):
    name = "cache"
    TABLE, SCHEMA, EVICT_BY, WHAT = "answers", SCHEMA, "used", "the answer cache"

    def __init__(self, path: Path | str, home_digest: str, max_entries: int = 10_000):
        if max_entries < 1:
            raise EdgeslmError("ExactCache.max_entries must be at least 1")
        super().__init__(path, home_digest, max_entries)

    def get(self, text: str, context: dict[str, Any] | None = None) -> Answer | None:
        key = (self.home, context_key(context), normalize(text))
        with self._lock:
            row = self.db.execute("SELECT intent, slots FROM answers WHERE home = ? AND context = ? AND text = ?",
                                  key).fetchone()
            if row is None:
                return None
            self.db.execute("UPDATE answers SET hits = hits + 1, used = ? WHERE home = ? AND context = ? AND text = ?",
                            (time.time(), *key))
        return Answer(row[0], json.loads(row[1]), tier=self.name, confidence=1.0)

    def put(self, text: str, context: dict[str, Any] | None, answer: Answer) -> None:
        """Remember a verified answer; beyond max_entries, forget the least recently used."""
        key = (self.home, context_key(context), normalize(text))
        if not key[2]:
            return
        slots = json.dumps(answer.slots, sort_keys=True, ensure_ascii=False)
        with self._lock:
            updated = self.db.execute("UPDATE answers SET intent = ?, slots = ?, used = ? WHERE home = ? AND context = ? "
                                      "AND text = ?", (answer.intent, slots, time.time(), *key)).rowcount
            if updated:
                return
            self.db.execute("INSERT INTO answers (home, context, text, intent, slots, used) VALUES (?, ?, ?, ?, ?, ?)",
                            (*key, answer.intent, slots, time.time()))
            self._added()

