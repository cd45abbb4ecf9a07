"""What the tiers learn about a home, kept in the device's SQLite file: one bounded table per kind
(the exact cache's answers, the habits' history), each row tagged with the home's digest. Opening a
store for a changed home drops the old home's rows, since its names may no longer mean the same."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from edgeslm.errors import EdgeslmError


def open_store(path: str) -> sqlite3.Connection:
    """The device's SQLite file for learned answers. WAL with synchronous=NORMAL: a commit does not wait
    for the disk (autocommit with the default journal fsynced every write: 1.9 ms of CPU a command here),
    and a power cut loses at most the last answers learned, never the file."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class HomeStore:
    """A table of at most `max_entries` rows; past that, the rows first in `EVICT_BY` order go."""

    TABLE = ""
    SCHEMA = ""
    EVICT_BY = ""
    WHAT = ""  # for errors: "the answer cache"

    def __init__(self, path: Path | str, home_digest: str, max_entries: int):
        self.home, self.max_entries = home_digest, max_entries
        self._lock = threading.Lock()
        try:
            self.db = open_store(str(path))
            self.db.executescript(self.SCHEMA)
            self.db.execute(f"DELETE FROM {self.TABLE} WHERE home != ?", (home_digest,))  # the home changed
            self._count = self.db.execute(f"SELECT COUNT(*) FROM {self.TABLE}").fetchone()[0]
        except sqlite3.Error as exc:
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

    def close(self) -> None:
        with self._lock:
            self.db.close()
