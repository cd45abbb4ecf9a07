"""The registry: what the fleet holds (bundles, policies, devices, groups, rollouts, telemetry) and what
happened to it (the event log), over one database (db.py) and one bundle store (store.py). The API, the
CLI and the rollout engine all go through a Registry; nothing else writes the database.

    registry = Registry.open(RegistryConfig(db="fleet/registry.sqlite", store="fleet/bundles", trust="keys/"))
    record, created = registry.publish_folder(Path("runs/demo/intent-int8"), PublishConfig(release="3"), actor="cli")

Records come back as plain dicts, ready for JSON; secrets and their hashes never appear in them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.fleet.bundles import Bundles
from edgeslm.fleet.db import Database, Tx, is_postgres
from edgeslm.fleet.devices import Devices
from edgeslm.fleet.migrations import migrate
from edgeslm.fleet.store import BundleStore, DirectoryStore

DEFAULT_MAX_BUNDLE_BYTES = 8 << 30  # the largest decoder bundles we build are ~1 GB; room for 7B at 4 bits
MAX_EVENT_PAGE = 1000


@dataclass(frozen=True)
class RegistryConfig(Config):
    db: str  # a SQLite file path, or a postgresql:// URL
    store: str  # the bundle store's folder
    trust: str | None = None  # public key(s) every bundle and policy must be signed by: a .pub file or a folder
    allow_unsigned: bool = False  # accept unsigned bundles (a test fleet); otherwise publishing needs `trust`
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES

    def validate(self) -> None:
        if not self.db:
            raise ConfigError("RegistryConfig.db: a SQLite file path or a postgresql:// URL")
        if "://" in self.db and not is_postgres(self.db):
            raise ConfigError(f"RegistryConfig.db: {self.db.split('://')[0]}:// is not supported; give a SQLite file "
                              "path or a postgresql:// URL")
        if not self.store:
            raise ConfigError("RegistryConfig.store: the folder bundles are stored in")
        if self.trust is not None and self.allow_unsigned:
            raise ConfigError("--trust and --allow-unsigned contradict each other; give one")
        if not 1 << 10 <= self.max_bundle_bytes <= 1 << 40:
            raise ConfigError("RegistryConfig.max_bundle_bytes: between 1 KiB and 1 TiB")


class Registry(Bundles, Devices):
    def __init__(self, db: Database, store: BundleStore, trust: Any = None, allow_unsigned: bool = False,
                 max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES, clock: Callable[[], float] = time.time):
        self.db, self.store, self.trust, self.allow_unsigned = db, store, trust, allow_unsigned
        self.max_bundle_bytes, self.clock = max_bundle_bytes, clock
        # called after devices' credentials change (enrol, revoke): fleet/broker.py rewrites Mosquitto's files
        self.on_credentials_changed: list[Callable[[Registry], None]] = []

    @classmethod
    def open(cls, config: RegistryConfig, clock: Callable[[], float] = time.time) -> Registry:
        """Connect, bring the schema up to date, open the store and load the trusted keys."""
        trust = None
        if config.trust is not None:
            from edgeslm.formats.signing import load_trust

            trust = load_trust(Path(config.trust))
        store = DirectoryStore(Path(config.store))
        db = Database(config.db)
        try:
            migrate(db)
        except BaseException:
            db.close()
            raise
        return cls(db, store, trust, config.allow_unsigned, config.max_bundle_bytes, clock)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the event log ---------------------------------------------------------------------------------
    def log_event(self, tx: Tx, actor: str, kind: str, subject: str, reason: str, details: dict | None = None) -> None:
        """Record what happened and why, in the caller's transaction (so it commits with the change).
        `details` holds facts only: never a secret, a token or request text."""
        tx.execute("INSERT INTO events (at, actor, kind, subject, reason, details) VALUES (?, ?, ?, ?, ?, ?)",
                   (self.clock(), actor, kind, subject, reason, json.dumps(details or {}, sort_keys=True)))

    def events(self, subject: str | None = None, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Events after id `after`, oldest first; only those about `subject` when given."""
        limit = max(1, min(limit, MAX_EVENT_PAGE))
        where, params = "id > ?", [after]
        if subject is not None:
            where += " AND subject = ?"
            params.append(subject)
        with self.db.transaction(write=False) as tx:
            rows = tx.all(f"SELECT * FROM events WHERE {where} ORDER BY id LIMIT ?", (*params, limit))
        return [{**r, "details": json.loads(r["details"])} for r in rows]

    def credentials_changed(self) -> None:
        for hook in self.on_credentials_changed:
            hook(self)
