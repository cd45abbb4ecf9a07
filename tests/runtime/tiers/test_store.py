"""The stores' SQLite file: one connection per file for the cache, semantic cache and habits, their
writes grouped into transactions, committed by count, by age, on flush and on close; a crash loses at
most the writes of one group and never the file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import numpy as np

from edgeslm.runtime.tiers import store
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import ExactCache
from edgeslm.runtime.tiers.habits import Habits
from edgeslm.runtime.tiers.semantic import SemanticCache

ON = Answer("HassTurnOn", {"name": "Floor Lamp"}, tier="templates")


def committed(path, table="answers") -> int:
    """Rows another connection sees: what is on the file."""
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


def test_the_stores_of_one_file_share_one_connection_and_see_their_own_writes(tmp_path):
    path = str(tmp_path / "learned.sqlite")
    cache, semantic, habits = ExactCache(path, "h"), SemanticCache(path, "h"), Habits(path, "h")
    assert cache.db is semantic.db is habits.db and cache.db.users == 3
    # three writers in one transaction: separate connections would lock each other out here
    cache.put("turn on the floor lamp", None, ON)
    semantic.put("turn on the floor lamp", np.ones(4, dtype=np.float32) / 2, "g", None, ON)
    habits.observe(ON, None, 1_000.0)
    assert cache.get("turn on the floor lamp").intent == "HassTurnOn"
    assert len(semantic) == 1 and len(habits) == 1
    other = ExactCache(str(tmp_path / "other.sqlite"), "h")
    assert other.db is not cache.db  # another file, another connection
    for s in (cache, semantic, habits, other):
        s.close()
    assert committed(path) == 1 and committed(path, "semantic") == 1 and committed(path, "history") == 1


def test_writes_are_committed_by_count_by_flush_and_by_close(tmp_path):
    path = str(tmp_path / "learned.sqlite")
    cache = ExactCache(path, "h")
    for i in range(3):
        cache.put(f"command {i}", None, ON)
    assert committed(path) == 0  # grouped: not on the file yet
    cache.flush()
    assert committed(path) == 3
    for i in range(3, 3 + store.COMMIT_EVERY):
        cache.put(f"command {i}", None, ON)
    assert committed(path) >= 3 + store.COMMIT_EVERY - 1  # a full group commits itself, no flush needed
    cache.put("the last one", None, ON)
    cache.close()
    assert committed(path) == 4 + store.COMMIT_EVERY
    again = ExactCache(path, "h")
    assert again.get("the last one") is not None and len(again) == 4 + store.COMMIT_EVERY
    again.close()


def test_an_old_group_is_committed_by_the_next_statement(tmp_path, monkeypatch):
    path = str(tmp_path / "learned.sqlite")
    cache = ExactCache(path, "h")
    cache.put("turn on the floor lamp", None, ON)
    assert committed(path) == 0
    monkeypatch.setattr(store, "COMMIT_AFTER_S", 0.0)  # the group is now older than allowed
    assert cache.get("something else") is None  # a read commits the old group first
    assert committed(path) == 1
    cache.close()


def test_a_crash_loses_at_most_one_group_and_never_the_file(tmp_path):
    path = tmp_path / "learned.sqlite"
    code = textwrap.dedent(f"""
        import os
        from edgeslm.runtime.tiers.answer import Answer
        from edgeslm.runtime.tiers.cache import ExactCache
        cache = ExactCache({str(path)!r}, "h")
        for i in range(200):
            cache.put(f"command {{i}}", None, Answer("HassTurnOn", {{}}, tier="templates"))
        os._exit(0)  # no close, no flush: a crash
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    cache = ExactCache(path, "h")
    kept = len(cache)
    assert 200 - store.COMMIT_EVERY < kept <= 200
    assert cache.get("command 0") is not None
    cache.close()
