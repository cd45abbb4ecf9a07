"""Tier 0, semantic: an answer served before is served again for a command said another way ("turn on
the kitchen lights please" after "turn on the kitchen lights"), found by the cosine similarity of the
encoder's first-segment embedding, the same pass the encoder tier goes on from, so a lookup costs no
extra model run.

Similar embeddings are not enough: "turn on" and "turn off" the same lamp sit closer than most
paraphrases. A verification guard comes first, and only entries with the same guard are compared:
the same words from a closed list of words that change what a command does (on/off, open/close,
lock, up/down, what/is/how, timer units, negations...), the same numbers, and the same home names
found in the text (entities, areas, floors, device words; fuzzy, so a typo in a name still matches).
A typo in a guard word makes a miss, never a wrong hit.

The same entries also answer before any model runs: a command whose words are nearly those of an entry
with the same guard ("Dim the reading sconce to 40 percennt thank you!" after "dim the reading sconce
to 40 percent"), by rapidfuzz's token set ratio (`words`, tier "lexical"); the guard then comes from the
home matcher's scan alone. An answer of the encoder bundle's n-gram head is stored without an embedding
(no model ran): its entry answers by words only.

Stored like the exact cache: SQLite, bounded, survives a restart, dropped when the home changes.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import context_key, normalize
from edgeslm.runtime.tiers.store import HomeStore

# Words that change what a command does or asks. Anything else (fillers, politeness, verbs like
# "turn"/"switch", articles) is left to the embedding.
GUARD_WORDS = frozenset("""
on off open opened close closed shut lock locked unlock unlocked up down raise lower increase decrease
brighter dimmer dim brighten louder quieter higher warmer cooler colder hotter
play pause resume stop skip next previous mute unmute volume start cancel timer timers minute minutes
second seconds hour hours left remaining add remove list shopping todo
what whats is are how which does do any status temperature weather time date humidity level battery
not dont don't isn't aren't what's no never set brightness position speed all every color colour
""".split())
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS semantic (
  home TEXT NOT NULL, context TEXT NOT NULL, guard TEXT NOT NULL, text TEXT NOT NULL,
  embedding BLOB NOT NULL, intent TEXT NOT NULL, slots TEXT NOT NULL, hits INTEGER NOT NULL DEFAULT 0,
  used REAL NOT NULL, PRIMARY KEY (home, context, text)
);
CREATE INDEX IF NOT EXISTS semantic_guard ON semantic (home, context, guard);
CREATE INDEX IF NOT EXISTS semantic_used ON semantic (used);
"""


def guard_key(text: str, found: dict[str, Any]) -> str:
    """What two commands must share before their embeddings are compared: the guard words, the numbers
    and the home names found in the text (`found`: the slot matcher's answer for it)."""
    norm = normalize(text)
    words = sorted({w for w in norm.split() if w in GUARD_WORDS})
    names = {k: v for k, v in sorted(found.items()) if k in ("name", "area", "floor", "domain")}
    return json.dumps([words, _NUMBER.findall(norm), names], ensure_ascii=False, separators=(",", ":"))


class SemanticCache(HomeStore):
    name = "semantic"
    TABLE, SCHEMA, EVICT_BY, WHAT = "semantic", _SCHEMA, "used", "the semantic cache"

    def __init__(self, path: Path | str, home_digest: str, max_entries: int = 10_000):
        if max_entries < 1:
            raise EdgeslmError("SemanticCache.max_entries must be at least 1")
        super().__init__(path, home_digest, max_entries)

    def get(self, embedding: np.ndarray, guard: str, context: dict[str, Any] | None,
            threshold: float) -> Answer | None:
        """The stored answer with this guard whose embedding is nearest, if its cosine is >= threshold."""
        if threshold > 1.0:
            return None
        query = np.asarray(embedding, dtype=np.float32).ravel()
        with self._lock:
            rows = self.db.execute("SELECT text, embedding, intent, slots FROM semantic WHERE home = ? AND context = ? "
                                   "AND guard = ?", (self.home, context_key(context), guard)).fetchall()
            # an entry without an embedding (the n-gram head's answer), or made by another encoder: never compared
            rows = [r for r in rows if len(r[1]) == query.nbytes]
            if not rows:
                return None
            stored = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            cos = stored @ query
            best = int(cos.argmax())
            if float(cos[best]) < threshold:
                return None
            text, _, intent, slots = rows[best]
            self._touch(context, text)
        return Answer(intent, json.loads(slots), tier=self.name, confidence=round(float(cos[best]), 4))

    def words(self, text: str, guard: str, context: dict[str, Any] | None, threshold: float) -> Answer | None:
        """The stored answer with this guard whose words are nearest, if their token set ratio / 100 is
        >= threshold (a set of words inside the other's reads 1: the fillers around a command do not count)."""
        if threshold > 1.0:
            return None
        from rapidfuzz import fuzz, process

        with self._lock:
            rows = self.db.execute("SELECT text, intent, slots FROM semantic WHERE home = ? AND context = ? AND guard = ?",
                                   (self.home, context_key(context), guard)).fetchall()
            if not rows:
                return None
            best = process.extractOne(normalize(text), [r[0] for r in rows], scorer=fuzz.token_set_ratio,
                                      score_cutoff=threshold * 100)
            if best is None:
                return None
            stored, score, i = best
            self._touch(context, stored)
        return Answer(rows[i][1], json.loads(rows[i][2]), tier="lexical", confidence=round(score / 100, 4))

    def _touch(self, context: dict[str, Any] | None, text: str) -> None:
        """Count a hit on an entry and mark it used (the least recently used go first); under self._lock."""
        self.db.execute("UPDATE semantic SET hits = hits + 1, used = ? WHERE home = ? AND context = ? AND text = ?",
                        (time.time(), self.home, context_key(context), text))

    def put(self, text: str, embedding: np.ndarray | None, guard: str, context: dict[str, Any] | None, answer: Answer) -> None:
        """Remember a verified answer with its embedding (None: found by its words only, as an answer no model
        gave); beyond max_entries, the least recently used go."""
        key = (self.home, context_key(context), normalize(text))
        if not key[2]:
            return
        blob = b"" if embedding is None else np.asarray(embedding, dtype=np.float32).ravel().tobytes()
        slots = json.dumps(answer.slots, sort_keys=True, ensure_ascii=False)
        with self._lock:
            updated = self.db.execute("UPDATE semantic SET guard = ?, embedding = ?, intent = ?, slots = ?, used = ? "
                                      "WHERE home = ? AND context = ? AND text = ?",
                                      (guard, blob, answer.intent, slots, time.time(), *key)).rowcount
            if updated:
                return
            self.db.execute("INSERT INTO semantic (home, context, text, guard, embedding, intent, slots, used) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*key, guard, blob, answer.intent, slots, time.time()))
            self._added()
