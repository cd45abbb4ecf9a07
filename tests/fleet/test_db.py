"""The registry's storage, each test run on SQLite and on a real PostgreSQL (conftest.db_target): migrations,
records, enrolment, groups, telemetry, the rollout tables, and secrets kept only as hashes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from edgeslm.errors import ConfigError
from edgeslm.fleet import migrations
from edgeslm.fleet.db import Database, redact
from edgeslm.fleet.devices import Telemetry
from edgeslm.fleet.errors import Conflict, DatabaseError, NotFound, Unauthorized
from edgeslm.fleet.schemas import EnrolRequest, EnrolTokenConfig, GroupConfig, PublishConfig

TABLES = {"bundles", "policies", "devices", "device_groups", "group_members", "enrolment_tokens", "rollouts",
          "rollout_waves", "rollout_assignments", "gate_results", "telemetry", "events", "fleet_migrations"}


def _tables(db: Database) -> set[str]:
    with db.transaction(write=False) as tx:
        if db.dialect == "sqlite":
            rows = tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = tx.all("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'")
    return {r["name"] for r in rows}


def test_migrations_apply_once_and_are_idempotent(db_target: str):
    db = Database(db_target)
    try:
        first = migrations.migrate(db)
        assert first == [name for name, _ in migrations.MIGRATIONS]
        assert TABLES <= _tables(db)
        assert migrations.migrate(db) == []  # a second start applies nothing
        assert migrations.applied(db) == first
        with db.transaction(write=False) as tx:  # each name recorded exactly once
            assert tx.one("SELECT COUNT(*) AS n FROM fleet_migrations")["n"] == len(first)
    finally:
        db.close()


def test_concurrent_starts_migrate_once(db_target: str):
    """Two control planes starting together on one database: one applies each migration, neither fails."""
    results, errors = [], []

    def start() -> None:
        db = Database(db_target)
        try:
            results.append(migrations.migrate(db))
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(len(r) for r in results) == [0, 0, len(migrations.MIGRATIONS)]


def test_a_database_from_a_newer_edgeslm_is_refused(db_target: str):
    db = Database(db_target)
    try:
        migrations.migrate(db)
        with db.transaction() as tx:
            tx.execute("INSERT INTO fleet_migrations (name, applied_at) VALUES (?, ?)", ("m999_from_the_future", 0.0))
        with pytest.raises(DatabaseError, match="newer edgeslm.*m999_from_the_future"):
            migrations.migrate(db)
    finally:
        db.close()


def test_migrations_are_named_in_order():
    names = [name for name, _ in migrations.MIGRATIONS]
    assert len(set(names)) == len(names)
    assert names == sorted(names) and all(n[:1] == "m" and n[1:4].isdigit() for n in names)
    with pytest.raises(ValueError, match="defined twice"):
        migrations.migration(migrations.MIGRATIONS[0][1])


def test_a_wrong_target_fails_at_open_with_a_clear_error(tmp_path: Path, pg_cluster):
    with pytest.raises(DatabaseError, match="does not exist"):
        Database(str(tmp_path / "no-such-folder" / "registry.sqlite"))
    url = pg_cluster.url("no_such_database").replace("postgres@", "postgres:hunter2@")
    with pytest.raises(DatabaseError, match="cannot connect") as info:
        Database(url)
    assert "hunter2" not in str(info.value)  # the URL's password never reaches a message
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_publish_files_the_bundle_and_its_facts(registry, decoder_bundle: Path):
    record, created = registry.publish_folder(decoder_bundle, PublishConfig(isa=["avx2"], memory_bytes=1 << 20), "test")
    assert created and record["name"] == "tiny-decoder" and record["release"] == "1" and record["variant"] == "any"
    assert record["isa"] == ["avx2"] and record["memory_bytes"] == 1 << 20 and record["engine"] == "llama.cpp"
    again, created = registry.publish_folder(decoder_bundle, PublishConfig(), "test")
    assert not created and again == record  # the same bytes are filed once
    assert registry.bundles() == [record]
    assert registry.bundle(record["sha256"], with_manifest=True)["manifest"]["name"] == "tiny-decoder"
    with pytest.raises(Conflict, match="already published as tiny-decoder release 1"):
        registry.publish_folder(decoder_bundle, PublishConfig(release="7"), "test")
    kinds = [e["kind"] for e in registry.events(subject=f"bundle:{record['sha256']}")]
    assert kinds == ["bundle.published"]


def test_releases_number_themselves_and_variants_share_one(registry, make_bundle, tmp_path: Path):
    a = registry.publish_folder(make_bundle(tmp_path / "a", seed=1), PublishConfig(), "t")[0]
    b = registry.publish_folder(make_bundle(tmp_path / "b", seed=2), PublishConfig(), "t")[0]
    assert (a["release"], b["release"]) == ("1", "2")
    c = registry.publish_folder(make_bundle(tmp_path / "c", seed=3), PublishConfig(release="2", variant="rpi4"), "t")[0]
    assert c["release"] == "2" and [r["variant"] for r in registry.bundles(release="2")] == ["any", "rpi4"]
    with pytest.raises(Conflict, match="release 2 variant rpi4 is already published with other bytes"):
        registry.publish_folder(make_bundle(tmp_path / "d", seed=4), PublishConfig(release="2", variant="rpi4"), "t")
    stored = [p for p in (registry.store.root / "sha256").rglob("*") if p.is_file()]
    assert len(stored) == 3 and not list(registry.store.staging_dir().iterdir())  # the refused archive left nothing


def test_enrolment_issues_credentials_once_and_stores_them_hashed(registry, db_target: str):
    registry.create_group(GroupConfig(name="kitchen"), "admin")
    tok = registry.create_enrolment_token(EnrolTokenConfig(group="kitchen", tags=["site=lyon"], uses=2), "admin")
    creds = [registry.enrol(EnrolRequest(token=tok["token"], profile="rpi4", isa=["neon"])) for _ in range(2)]
    with pytest.raises(Unauthorized, match="used up"):
        registry.enrol(EnrolRequest(token=tok["token"], profile="rpi4"))
    a = creds[0]
    assert registry.authenticate_device(a["secret"])["id"] == a["device_id"]
    assert registry.authenticate_device(a["secret"] + "x") is None
    assert registry.authenticate_device(a["device_id"] + ".not-the-secret-at-all-xxxx") is None
    device = registry.device(a["device_id"])
    assert device["groups"] == ["kitchen"] and device["tags"] == ["site=lyon"] and device["isa"] == ["neon"]
    assert "secret_sha256" not in device and "mqtt_password_hash" not in device
    # no plaintext secret anywhere in the database: every table, every text column
    secrets_issued = [tok["token"].split(".")[1]] + [c["secret"].split(".")[1] for c in creds] + \
                     [c["mqtt_password"] for c in creds]
    dump = _dump(registry.db)
    for secret in secrets_issued:
        assert secret not in dump
    registry.revoke_device(a["device_id"], "admin", "lost")
    assert registry.authenticate_device(a["secret"]) is None
    assert [u for u, _ in registry.mqtt_accounts()] == [creds[1]["device_id"]]
    with pytest.raises(Conflict, match="already revoked"):
        registry.revoke_device(a["device_id"], "admin", "again")


def _dump(db: Database) -> str:
    out = []
    with db.transaction(write=False) as tx:
        for table in sorted(TABLES):
            out += [json.dumps(r, default=str) for r in tx.all(f"SELECT * FROM {table}")]
    return "\n".join(out)


def test_enrolment_refusals(registry):
    clock = [1000.0]
    registry.clock = lambda: clock[0]
    tok = registry.create_enrolment_token(EnrolTokenConfig(ttl_s=60), "admin")
    with pytest.raises(Unauthorized, match="not valid"):
        registry.enrol(EnrolRequest(token=tok["token"][:-2] + "xx", profile="rpi4"))
    with pytest.raises(Unauthorized, match="not valid"):
        registry.enrol(EnrolRequest(token="et0000000000000000.nothing-like-a-real-secret", profile="rpi4"))
    with pytest.raises(Unauthorized, match="not valid"):
        registry.enrol(EnrolRequest(token="garbage", profile="rpi4"))
    clock[0] += 61
    with pytest.raises(Unauthorized, match="expired"):
        registry.enrol(EnrolRequest(token=tok["token"], profile="rpi4"))
    with pytest.raises(NotFound, match="no group"):
        registry.create_enrolment_token(EnrolTokenConfig(group="nowhere"), "admin")


def test_racing_devices_share_a_token_use_once(registry):
    tok = registry.create_enrolment_token(EnrolTokenConfig(uses=1), "admin")
    outcomes = []

    def go() -> None:
        try:
            outcomes.append(registry.enrol(EnrolRequest(token=tok["token"], profile="rpi4"))["device_id"])
        except Unauthorized:
            outcomes.append(None)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(o is not None for o in outcomes) == 1 and len(registry.devices()) == 1


def test_groups_hold_members_and_selector_matches(registry):
    tok = registry.create_enrolment_token(EnrolTokenConfig(uses=3, tags=["floor=2"]), "admin")
    ids = [registry.enrol(EnrolRequest(token=tok["token"], profile=p))["device_id"] for p in ("rpi4", "rpi5", "rpi4")]
    registry.create_group(GroupConfig(name="pi4s", profile="rpi4", tags=["floor=2"]), "admin")
    registry.create_group(GroupConfig(name="hand-picked"), "admin")
    registry.add_member("hand-picked", ids[1], "admin")
    assert [d["id"] for d in registry.group_devices("pi4s")] == sorted([ids[0], ids[2]])
    assert registry.group("hand-picked")["devices"] == [ids[1]]
    assert [d["id"] for d in registry.devices(group="hand-picked")] == [ids[1]]
    with pytest.raises(Conflict):
        registry.create_group(GroupConfig(name="pi4s"), "admin")
    registry.remove_member("hand-picked", ids[1], "admin")
    assert registry.group("hand-picked")["devices"] == []
    with pytest.raises(NotFound):
        registry.remove_member("hand-picked", ids[1], "admin")
    with pytest.raises(NotFound):
        registry.add_member("nowhere", ids[0], "admin")


def test_device_state_and_telemetry_round_trip(registry, decoder_bundle: Path):
    sha = registry.publish_folder(decoder_bundle, PublishConfig(), "t")[0]["sha256"]
    tok = registry.create_enrolment_token(EnrolTokenConfig(), "admin")
    dev = registry.enrol(EnrolRequest(token=tok["token"], profile="rpi4"))["device_id"]
    registry.record_presence(dev, online=True)
    registry.record_state(dev, inventory={"free_memory_mb": 900}, active_bundle=sha, previous_bundle=None,
                          active_policy="ab" * 32)
    d = registry.device(dev)
    assert d["online"] is True and d["active_bundle"] == sha and d["inventory"] == {"free_memory_mb": 900}
    assert d["active_policy"] == "ab" * 32
    registry.record_presence(dev, online=False)
    assert registry.device(dev)["online"] is False and registry.device(dev)["active_bundle"] == sha
    # a state message is the whole snapshot: no policy in it clears the one the registry showed
    registry.record_state(dev, inventory={}, active_bundle=sha, previous_bundle=None, active_policy=None)
    assert registry.device(dev)["active_policy"] is None
    t = Telemetry(window_start=10.0, window_end=70.0, requests=120, errors=1, escalations=6, latency_p50_ms=4.5,
                  latency_p90_ms=9.0, latency_p99_ms=20.0, joules=3.2, probe_accuracy=0.97,
                  tier_shares={"cache": 0.5, "encoder": 0.45}, bundle_sha256=sha)
    registry.record_telemetry(dev, t)
    [row] = registry.telemetry(device_id=dev, bundle_sha256=sha)
    assert row["requests"] == 120 and row["latency_p90_ms"] == 9.0 and row["tier_shares"] == {"cache": 0.5, "encoder": 0.45}
    with pytest.raises(NotFound):
        registry.record_presence("dnosuchdevice0000", online=True)


def test_rollout_tables_take_a_rollout_on_both_databases(registry, decoder_bundle: Path):
    """The schema the rollout engine builds on: a rollout, its waves, an assignment per device, gate results."""
    sha = registry.publish_folder(decoder_bundle, PublishConfig(), "t")[0]["sha256"]
    registry.create_group(GroupConfig(name="all"), "admin")
    tok = registry.create_enrolment_token(EnrolTokenConfig(group="all"), "admin")
    dev = registry.enrol(EnrolRequest(token=tok["token"], profile="rpi4"))["device_id"]
    with registry.db.transaction() as tx:
        rid = tx.one("INSERT INTO rollouts (bundle_name, release, group_name, state, canary_fraction, gates, settings, "
                     "created_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                     ("tiny-decoder", "1", "all", "canary", 0.1, "{}", "{}", 1.0, "admin", 1.0))["id"]
        tx.execute("INSERT INTO rollout_waves (rollout_id, idx, kind, fraction, state) VALUES (?, ?, ?, ?, ?)",
                   (rid, 0, "canary", 0.1, "running"))
        tx.execute("INSERT INTO rollout_assignments (rollout_id, device_id, wave_idx, bundle_sha256, state, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (rid, dev, 0, sha, "sent", 1.0))
        tx.execute("INSERT INTO gate_results (rollout_id, wave_idx, gate, candidate, baseline, threshold, passed, reason, "
                   "measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (rid, 0, "p90_latency", 30.0, 10.0, 1.2, 0,
                                                                       "p90 3.0x the previous version", 2.0))
    with registry.db.transaction(write=False) as tx:
        gate = tx.one("SELECT * FROM gate_results WHERE rollout_id = ?", (rid,))
    assert gate["passed"] == 0 and gate["reason"].startswith("p90")
    with pytest.raises(Conflict):  # an assignment must name a published bundle
        with registry.db.transaction() as tx:
            tx.execute("INSERT INTO rollout_assignments (rollout_id, device_id, wave_idx, bundle_sha256, state, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (rid, dev + "x", 0, "f" * 64, "sent", 1.0))


def test_registry_config_refuses_what_it_cannot_open():
    from edgeslm.fleet.registry import RegistryConfig

    with pytest.raises(ConfigError, match="mysql:// is not supported"):
        RegistryConfig(db="mysql://x/y", store="s")
    with pytest.raises(ConfigError, match="contradict"):
        RegistryConfig(db="x.sqlite", store="s", trust="k.pub", allow_unsigned=True)


def test_a_new_sqlite_registry_is_private(tmp_path: Path):
    import os
    import stat

    Database(str(tmp_path / "r.sqlite")).close()
    assert stat.S_IMODE(os.stat(tmp_path / "r.sqlite").st_mode) == 0o600



def test_many_fresh_files_opened_by_four_starts_at_once_never_fail(tmp_path):
    """The switch to WAL takes the file alone, and SQLite answers "database is locked" at once (no busy
    timeout) to a start that races it: one in about 40 such races failed before the start retried."""
    for round_ in range(60):
        target = tmp_path / f"registry-{round_}.sqlite"
        errors: list[Exception] = []

        def start(target: Path = target, errors: list[Exception] = errors) -> None:
            try:
                db = Database(target)
                migrations.migrate(db)
                db.close()
            except Exception as exc:  # collected: the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, (round_, errors)
