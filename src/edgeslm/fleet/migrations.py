"""The registry's schema as append-only named migrations (after simonw/llm's migrations.py): each is a
function that runs once, in its own transaction, and its name is recorded in fleet_migrations. Never edit
or reorder a migration that has shipped; add a new one. A database that records a migration this edgeslm
does not know was written by a newer edgeslm and is refused rather than half-understood.

The same statements run on SQLite and PostgreSQL (db.py: portable types, {serial} for auto-numbered keys).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edgeslm.fleet.db import Database, Tx
from edgeslm.fleet.errors import DatabaseError

MIGRATIONS: list[tuple[str, Callable[[Tx], None]]] = []
TABLE = "fleet_migrations"
PG_LOCK = 0x6564_6765_736C_6D  # "edgeslm": one migrator at a time when several control planes start together


def migration(fn: Callable[[Tx], None]) -> Callable[[Tx], None]:
    if any(name == fn.__name__ for name, _ in MIGRATIONS):
        raise ValueError(f"migration {fn.__name__} is defined twice")
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def applied(db: Database) -> list[str]:
    with db.transaction(write=False) as tx:
        _ensure_table(tx)
        return [r["name"] for r in tx.all(f"SELECT name FROM {TABLE} ORDER BY applied_at, name")]


def migrate(db: Database) -> list[str]:
    """Apply every migration not yet applied, in order; the names applied now (none: already current)."""
    with db.transaction() as tx:
        _lock(tx)
        _ensure_table(tx)
    known = [name for name, _ in MIGRATIONS]
    newer = sorted(set(applied(db)) - set(known))
    if newer:
        raise DatabaseError(f"the registry {db!r} was migrated by a newer edgeslm (unknown migrations: "
                            f"{', '.join(newer[:5])}); upgrade edgeslm before opening it")
    done = []
    for name, fn in MIGRATIONS:
        with db.transaction() as tx:
            _lock(tx)
            # checked again inside the (locked) transaction: another process may have applied it meanwhile
            if tx.one(f"SELECT name FROM {TABLE} WHERE name = ?", (name,)):
                continue
            fn(tx)
            tx.execute(f"INSERT INTO {TABLE} (name, applied_at) VALUES (?, ?)", (name, time.time()))
            done.append(name)
    return done


def _lock(tx: Tx) -> None:
    """PostgreSQL: held until the transaction ends. (SQLite's BEGIN IMMEDIATE already serialises writers.)"""
    if tx.dialect == "postgresql":
        tx.execute("SELECT pg_advisory_xact_lock(?)", (PG_LOCK,))


def _ensure_table(tx: Tx) -> None:
    tx.ddl(f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")


@migration
def m001_registry(tx: Tx) -> None:
    # Bundles by the sha256 of their archive. A release is (name, release label); its variants differ by what they
    # need of a device (isa: JSON list of profiles.ISA_FLAGS names; memory_bytes), so a rollout picks per device.
    tx.ddl("""CREATE TABLE bundles (
        sha256 TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        release TEXT NOT NULL,
        variant TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        family TEXT NOT NULL,
        engine TEXT NOT NULL,
        task TEXT NOT NULL,
        profile TEXT NOT NULL,
        isa TEXT NOT NULL,
        memory_bytes BIGINT NOT NULL,
        signed_by TEXT,
        manifest TEXT NOT NULL,
        published_at DOUBLE PRECISION NOT NULL,
        published_by TEXT NOT NULL,
        UNIQUE (name, release, variant))""")
    tx.ddl("CREATE INDEX bundles_release ON bundles (name, release)")
    # Policies by the sha256 of the policy file's bytes (what its signature covers); digest is the content
    # hash the file carries (runtime/tiers/policy.py).
    tx.ddl("""CREATE TABLE policies (
        sha256 TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        body TEXT NOT NULL,
        signature TEXT,
        signed_by TEXT,
        size_bytes BIGINT NOT NULL,
        published_at DOUBLE PRECISION NOT NULL,
        published_by TEXT NOT NULL)""")
    # Credentials are stored hashed: secret_sha256 for the HTTP token, mqtt_password_hash in Mosquitto's own
    # PBKDF2-SHA512 format, so the broker's password file is written from the database alone.
    tx.ddl("""CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        profile TEXT NOT NULL,
        tags TEXT NOT NULL,
        isa TEXT NOT NULL,
        memory_bytes BIGINT,
        secret_sha256 TEXT NOT NULL,
        mqtt_password_hash TEXT NOT NULL,
        enrolled_at DOUBLE PRECISION NOT NULL,
        enrolled_with TEXT NOT NULL,
        revoked_at DOUBLE PRECISION,
        last_seen_at DOUBLE PRECISION,
        online INTEGER NOT NULL DEFAULT 0,
        active_bundle TEXT,
        previous_bundle TEXT,
        active_policy TEXT,
        inventory TEXT NOT NULL DEFAULT '{}')""")
    # A group holds its explicit members plus every device matching its selector (profile, all of tags).
    tx.ddl("""CREATE TABLE device_groups (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        profile TEXT,
        tags TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL)""")
    tx.ddl("""CREATE TABLE group_members (
        group_name TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
        device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        added_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (group_name, device_id))""")
    tx.ddl("CREATE INDEX group_members_device ON group_members (device_id)")
    tx.ddl("""CREATE TABLE enrolment_tokens (
        id TEXT PRIMARY KEY,
        secret_sha256 TEXT NOT NULL,
        group_name TEXT REFERENCES device_groups (name) ON DELETE SET NULL,
        tags TEXT NOT NULL,
        uses_left INTEGER NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        created_by TEXT NOT NULL)""")
    # Rollouts (fleet/rollout*.py drives them): a release to a group, a canary wave then waves; per device
    # the variant chosen and the one it replaces (for rollback); every gate measured, with its reason.
    tx.ddl("""CREATE TABLE rollouts (
        id {serial},
        bundle_name TEXT NOT NULL,
        release TEXT NOT NULL,
        policy_sha256 TEXT REFERENCES policies (sha256),
        group_name TEXT NOT NULL REFERENCES device_groups (name),
        state TEXT NOT NULL,
        canary_fraction DOUBLE PRECISION NOT NULL,
        gates TEXT NOT NULL,
        settings TEXT NOT NULL,
        halt_reason TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        created_by TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL)""")
    tx.ddl("CREATE INDEX rollouts_state ON rollouts (state)")
    tx.ddl("""CREATE TABLE rollout_waves (
        rollout_id BIGINT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        fraction DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        PRIMARY KEY (rollout_id, idx))""")
    tx.ddl("""CREATE TABLE rollout_assignments (
        rollout_id BIGINT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
        device_id TEXT NOT NULL REFERENCES devices (id),
        wave_idx INTEGER NOT NULL,
        bundle_sha256 TEXT NOT NULL REFERENCES bundles (sha256),
        previous_bundle_sha256 TEXT,
        state TEXT NOT NULL,
        reason TEXT,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (rollout_id, device_id))""")
    tx.ddl("CREATE INDEX rollout_assignments_device ON rollout_assignments (device_id)")
    tx.ddl("""CREATE TABLE gate_results (
        id {serial},
        rollout_id BIGINT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
        wave_idx INTEGER NOT NULL,
        gate TEXT NOT NULL,
        candidate DOUBLE PRECISION,
        baseline DOUBLE PRECISION,
        threshold DOUBLE PRECISION,
        passed INTEGER NOT NULL,
        reason TEXT NOT NULL,
        measured_at DOUBLE PRECISION NOT NULL)""")
    tx.ddl("CREATE INDEX gate_results_rollout ON gate_results (rollout_id, wave_idx)")
    # Telemetry as the agents send it: aggregates over a window, never request text.
    tx.ddl("""CREATE TABLE telemetry (
        id {serial},
        device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        bundle_sha256 TEXT,
        window_start DOUBLE PRECISION NOT NULL,
        window_end DOUBLE PRECISION NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        escalations BIGINT NOT NULL,
        latency_p50_ms DOUBLE PRECISION,
        latency_p90_ms DOUBLE PRECISION,
        latency_p99_ms DOUBLE PRECISION,
        joules DOUBLE PRECISION,
        probe_accuracy DOUBLE PRECISION,
        tier_shares TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL)""")
    tx.ddl("CREATE INDEX telemetry_device_bundle ON telemetry (device_id, bundle_sha256, window_end)")
    # What happened and why: publishes, enrolments, revocations, rollout steps, halts and their reasons.
    tx.ddl("""CREATE TABLE events (
        id {serial},
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        reason TEXT NOT NULL,
        details TEXT NOT NULL)""")
    tx.ddl("CREATE INDEX events_subject ON events (subject, id)")
