"""What the tiers learn about a home, kept in the device's SQLite file: one bounded table per kind
(the exact cache's answers, the semantic cache's entries, the habits' history), each row tagged with
the home's digest. Opening a store for a changed home drops the old home's rows, since its names may
no longer mean the same.

The stores of one file share one connection (StoreFile): SQLite takes one writer at a time, and
their writes are grouped into one transaction, committed every COMMIT_EVERY writes, COMMIT_AFTER_S
seconds after the first of them, and on flush or close. A command used to write 3-4 times, each its
own commit (about 0.3 ms of CPU a command in a replayed household week, a sixth of all the tiers'
CPU on a 2-core EPYC); now a commit serves about 16 commands. What a crash can lose is bounded: the
writes not yet committed, at most COMMIT_EVERY; the file itself is never corrupted (WAL)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeslmError

COMMIT_EVERY = 64  # writes grouped into one transaction at most
COMMIT_AFTER_S = 1.0  # and a transaction no older than this when the next statement comes
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def open_store(path: str) -> sqlite3.Connection:
    """The device's SQLite file for learned answers. WAL with synchronous=NORMAL: a commit does not wait
    for the disk (autocommit with the default journal fsynced every write: 1.9 ms of CPU a command here),
    and a power cut loses at most the last answers learned, never the file."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class StoreFile:
    """One SQLite file's connection, its lock, and the grouping of its writes into transactions.
    `execute` is sqlite3's; a write opens a transaction when none is open and commits it when it holds
    COMMIT_EVERY writes or is COMMIT_AFTER_S old. Shared by the stores of the file in this process
    (`attach`), closed with the last of them."""

    _open: dict[str, StoreFile] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: str):
        self.path = path
        self.db = open_store(path)
        self.lock = threading.RLock()  # one statement or one store's read-modify-write at a time
        self.users = 0
        self._writes, self._began = 0, 0.0

    @classmethod
    def attach(cls, path: str) -> StoreFile:
        """The open file at `path` (one connection per file per process), or a new one; ":memory:" is
        always new, as sqlite3 makes it."""
        key = path if path == ":memory:" else os.path.realpath(path)
        with cls._open_lock:
            file = cls._open.get(key) if path != ":memory:" else None
            if file is None:
                file = cls(path)
                if path != ":memory:":
                    cls._open[key] = file
            file.users += 1
            return file

    def execute(self, sql: str, args: tuple | list = ()) -> sqlite3.Cursor:
        with self.lock:
            write = sql.lstrip()[:7].upper().startswith(_WRITES)
            if self.db.in_transaction and time.monotonic() - self._began > COMMIT_AFTER_S:
                self._commit()
            if write and not self.db.in_transaction:
                self.db.execute("BEGIN")
                self._began = time.monotonic()
            cursor = self.db.execute(sql, args)
            if write:
                self._writes += 1
                if self._writes >= COMMIT_EVERY:
                    self._commit()
            return cursor

    def executescript(self, script: str) -> None:
        with self.lock:
            self._commit()
            self.db.executescript(script)

    def flush(self) -> None:
        """Commit what was written: the learned answers are on the file (and survive a crash) from here."""
        with self.lock:
            self._commit()

    def _commit(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self._writes = 0

    def detach(self) -> None:
        """One user fewer; the last one commits and closes the file."""
        with self._open_lock, self.lock:
            self.users -= 1
            if self.users > 0:
                self._commit()
                return
            if self._open.get(os.path.realpath(self.path)) is self:
                del self._open[os.path.realpath(self.path)]
            try:
                self._commit()
            finally:
                self.db.close()


class HomeStore:
    """A table of at most `max_entries` rows; past that, the rows first in `EVICT_BY` order go."""

    TABLE = ""
    SCHEMA = ""
    EVICT_BY = ""
    WHAT = ""  # for errors: "the answer cache"

    def __init__(self, path: Path | str, home_digest: str, max_entries: int):
        self.home, self.max_entries = home_digest, max_entries
        self._closed = False
        try:
            self.db: Any = StoreFile.attach(str(path))
        except sqlite3.Error as exc:
            raise EdgeslmError(f"{path}: cannot open {self.WHAT}: {exc}") from None
        self._lock = self.db.lock
        try:
            self.db.executescript(self.SCHEMA)
            self.db.execute(f"DELETE FROM {self.TABLE} WHERE home != ?", (home_digest,))  # the home changed
            self._count = self.db.execute(f"SELECT COUNT(*) FROM {self.TABLE}").fetchone()[0]
            self.db.flush()
        except sqlite3.Error as exc:
            self.db.detach()
            raise EdgeslmError(f"{path}: cannot open {self.WHAT}: {exc}") from None

    def _added(self) -> None:
        """Count a row just inserted (the lock held) and evict beyond the bound."""
        self._count += 1
        if self._count > self.max_entries:
            self.db.execute(f"DELETE FROM {self.TABLE} WHERE rowid IN "
                            f"(SELECT rowid FROM {self.TABLE} ORDER BY {self.EVICT_BY} LIMIT ?)",
                            (self._count - self.max_entries,))
            self._count = self.max_entries

    def __len__(self) -> int:
        with self._lock:
            return self.db.execute(f"SELECT COUNT(*) FROM {self.TABLE}").fetchone()[0]

    def flush(self) -> None:
        """What was learned is on the file from here (it is committed in groups otherwise)."""
        self.db.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.db.detach()
