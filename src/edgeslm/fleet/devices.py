"""Devices: enrolment with an operator's one-time token, the credentials it issues (shown once, stored hashed),
authentication, groups, and what devices report (inventory, presence, telemetry). Part of Registry."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeslm.fleet.credentials import digest, matches, mosquitto_hash, new_id, new_secret, split_token
from edgeslm.fleet.errors import Conflict, NotFound, Unauthorized
from edgeslm.fleet.schemas import DeviceUpdate, EnrolRequest, EnrolTokenConfig, GroupConfig

DEVICE_COLUMNS = ("id, name, profile, tags, isa, memory_bytes, enrolled_at, revoked_at, last_seen_at, online, "
                  "active_bundle, previous_bundle, active_policy, inventory")
TOKEN_PREFIX, DEVICE_PREFIX = "et", "d"
ENROL_REFUSED = "the enrolment token is not valid: ask an operator for a new one (edgeslm fleet enrol-token)"
_DUMMY = digest("never a real secret")  # compared against when an id is unknown, so both paths cost the same


@dataclass(frozen=True)
class Telemetry:
    """One device's aggregates over a window, as the control plane stores them (the agent's MQTT message
    is parsed and validated by edgeslm.agent.protocol first). Never request text."""
    window_start: float
    window_end: float
    requests: int
    errors: int = 0
    escalations: int = 0
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    joules: float | None = None
    probe_accuracy: float | None = None
    tier_shares: dict[str, float] = field(default_factory=dict)
    bundle_sha256: str | None = None


class Devices:
    """Registry methods for enrolment, devices, groups and what devices report (self is a Registry)."""

    db: Any
    clock: Any
    log_event: Any
    credentials_changed: Any

    # -- enrolment -------------------------------------------------------------------------------------
    def create_enrolment_token(self, spec: EnrolTokenConfig, actor: str) -> dict[str, Any]:
        """A token for `spec.uses` devices within `spec.ttl_s`; its secret is in the answer and nowhere else."""
        ident, secret = new_id(TOKEN_PREFIX), new_secret()
        now = self.clock()
        with self.db.transaction() as tx:
            if spec.group is not None and tx.one("SELECT name FROM device_groups WHERE name = ?", (spec.group,)) is None:
                raise NotFound(f"no group {spec.group!r}; create it first (POST /v1/groups)")
            tx.execute("INSERT INTO enrolment_tokens (id, secret_sha256, group_name, tags, uses_left, expires_at, created_at, "
                       "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (ident, digest(secret), spec.group, json.dumps(spec.tags), spec.uses, now + spec.ttl_s, now, actor))
            self.log_event(tx, actor, "enrolment_token.created", f"enrolment_token:{ident}",
                           f"for {spec.uses} device(s), {spec.ttl_s} s", {"group": spec.group, "tags": spec.tags})
        return {"id": ident, "token": f"{ident}.{secret}", "group": spec.group, "tags": list(spec.tags),
                "uses": spec.uses, "expires_at": now + spec.ttl_s}

    def enrol(self, request: EnrolRequest) -> dict[str, Any]:
        """Spend one use of the enrolment token and register the device. The answer holds the device's HTTP
        token and MQTT password: shown once, stored only as hashes."""
        parts = split_token(request.token)
        ident, secret = parts if parts else ("", request.token)
        device_id, device_secret, mqtt_password = new_id(DEVICE_PREFIX), new_secret(), new_secret(24)
        now = self.clock()
        with self.db.transaction() as tx:
            row = tx.one("SELECT * FROM enrolment_tokens WHERE id = ?", (ident,))
            if not matches(secret, row["secret_sha256"] if row else _DUMMY) or row is None:
                raise Unauthorized(ENROL_REFUSED)
            if row["expires_at"] <= now:
                raise Unauthorized("the enrolment token has expired: ask an operator for a new one")
            # the guard makes two devices racing for the last use see one success between them
            if tx.run("UPDATE enrolment_tokens SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0", (ident,)) != 1:
                raise Unauthorized("the enrolment token has been used up: ask an operator for a new one")
            tx.execute(f"INSERT INTO devices ({DEVICE_COLUMNS}, secret_sha256, mqtt_password_hash, enrolled_with) "
                       f"VALUES ({', '.join('?' * 17)})",
                       (device_id, request.name or device_id, request.profile, row["tags"], json.dumps(request.isa),
                        request.memory_bytes, now, None, None, 0, None, None, None, "{}",
                        digest(device_secret), mosquitto_hash(mqtt_password), ident))
            if row["group_name"] is not None:
                tx.execute("INSERT INTO group_members (group_name, device_id, added_at) VALUES (?, ?, ?)",
                           (row["group_name"], device_id, now))
            self.log_event(tx, f"device:{device_id}", "device.enrolled", f"device:{device_id}",
                           f"enrolled with token {ident}", {"profile": request.profile, "group": row["group_name"]})
        self.credentials_changed()
        # the agent saves this answer as its credentials file (agent/config.py Credentials): `secret` is its bearer
        # token for this API, DEVICE_ID.RANDOM, so the token alone names the device it belongs to
        return {"device_id": device_id, "secret": f"{device_id}.{device_secret}",
                "mqtt_username": device_id, "mqtt_password": mqtt_password,
                "group": row["group_name"], "tags": json.loads(row["tags"])}

    def authenticate_device(self, token: str) -> dict[str, Any] | None:
        """The device a bearer token belongs to, or None (unknown, wrong secret, revoked)."""
        parts = split_token(token)
        if parts is None:
            return None
        device_id, secret = parts
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {DEVICE_COLUMNS}, secret_sha256 FROM devices WHERE id = ?", (device_id,))
        if not matches(secret, row["secret_sha256"] if row else _DUMMY) or row is None or row["revoked_at"] is not None:
            return None
        row.pop("secret_sha256")
        return _device_record(row, [])

    def revoke_device(self, device_id: str, actor: str, reason: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            if tx.run("UPDATE devices SET revoked_at = ?, online = 0 WHERE id = ? AND revoked_at IS NULL",
                      (self.clock(), device_id)) != 1:
                self._device_row(tx, device_id)  # NotFound for an unknown id
                raise Conflict(f"device {device_id} is already revoked")
            self.log_event(tx, actor, "device.revoked", f"device:{device_id}", reason)
        self.credentials_changed()
        return self.device(device_id)

    def mqtt_accounts(self) -> list[tuple[str, str]]:
        """(username, Mosquitto password hash) of every device not revoked: what the broker's password file holds."""
        with self.db.transaction(write=False) as tx:
            rows = tx.all("SELECT id, mqtt_password_hash FROM devices WHERE revoked_at IS NULL ORDER BY id")
        return [(r["id"], r["mqtt_password_hash"]) for r in rows]

    # -- devices ---------------------------------------------------------------------------------------
    def _device_row(self, tx: Any, device_id: str) -> dict[str, Any]:
        row = tx.one(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?", (device_id,))
        if row is None:
            raise NotFound(f"no device {str(device_id)[:80]!r} (GET /v1/devices lists them)")
        return row

    def device(self, device_id: str) -> dict[str, Any]:
        with self.db.transaction(write=False) as tx:
            row = self._device_row(tx, device_id)
            groups = [r["group_name"] for r in tx.all(
                "SELECT group_name FROM group_members WHERE device_id = ? ORDER BY group_name", (device_id,))]
        return _device_record(row, groups)

    def devices(self, group: str | None = None, include_revoked: bool = False) -> list[dict[str, Any]]:
        if group is not None:
            return self.group_devices(group)
        with self.db.transaction(write=False) as tx:
            rows = tx.all(f"SELECT {DEVICE_COLUMNS} FROM devices ORDER BY id")
            members = _memberships(tx)
        return [_device_record(r, members.get(r["id"], [])) for r in rows if include_revoked or r["revoked_at"] is None]

    def update_device(self, device_id: str, update: DeviceUpdate, actor: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            self._device_row(tx, device_id)
            tx.execute("UPDATE devices SET tags = ? WHERE id = ?", (json.dumps(update.tags), device_id))
            self.log_event(tx, actor, "device.updated", f"device:{device_id}", "tags set", {"tags": update.tags})
        return self.device(device_id)

    def record_presence(self, device_id: str, online: bool) -> None:
        """A device said online, or its last will said offline; it is marked seen now."""
        with self.db.transaction() as tx:
            if tx.run("UPDATE devices SET online = ?, last_seen_at = ? WHERE id = ?",
                      (int(online), self.clock(), device_id)) != 1:
                raise NotFound(f"no device {str(device_id)[:80]!r}")

    def record_state(self, device_id: str, *, inventory: dict[str, Any], active_bundle: str | None,
                     previous_bundle: str | None, active_policy: str | None) -> None:
        """What a device serves, from its state message: a whole snapshot, so every column takes the reported value,
        None included (a device that rolled back to, or installed, a bundle without a policy serves none, and a
        None here once kept the old policy showing as active). The device is marked seen now."""
        with self.db.transaction() as tx:
            if tx.run("UPDATE devices SET last_seen_at = ?, inventory = ?, active_bundle = ?, previous_bundle = ?, "
                      "active_policy = ? WHERE id = ?",
                      (self.clock(), json.dumps(inventory, sort_keys=True), active_bundle, previous_bundle,
                       active_policy, device_id)) != 1:
                raise NotFound(f"no device {str(device_id)[:80]!r}")

    # -- groups ----------------------------------------------------------------------------------------
    def create_group(self, spec: GroupConfig, actor: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            if tx.one("SELECT name FROM device_groups WHERE name = ?", (spec.name,)) is not None:
                raise Conflict(f"group {spec.name!r} exists already")
            tx.execute("INSERT INTO device_groups (name, description, profile, tags, created_at) VALUES (?, ?, ?, ?, ?)",
                       (spec.name, spec.description, spec.profile, json.dumps(spec.tags), self.clock()))
            self.log_event(tx, actor, "group.created", f"group:{spec.name}", spec.description or "created",
                           {"profile": spec.profile, "tags": spec.tags})
        return self.group(spec.name)

    def _group_row(self, tx: Any, name: str) -> dict[str, Any]:
        row = tx.one("SELECT * FROM device_groups WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no group {str(name)[:80]!r} (GET /v1/groups lists them)")
        return {**row, "tags": json.loads(row["tags"])}

    def group(self, name: str) -> dict[str, Any]:
        with self.db.transaction(write=False) as tx:
            row = self._group_row(tx, name)
            explicit = [r["device_id"] for r in tx.all(
                "SELECT device_id FROM group_members WHERE group_name = ? ORDER BY device_id", (name,))]
        return {**row, "members": explicit, "devices": [d["id"] for d in self.group_devices(name)]}

    def groups(self) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as tx:
            rows = tx.all("SELECT * FROM device_groups ORDER BY name")
        return [{**r, "tags": json.loads(r["tags"])} for r in rows]

    def group_devices(self, name: str) -> list[dict[str, Any]]:
        """The devices a group reaches (not revoked): its explicit members plus those its selector matches."""
        with self.db.transaction(write=False) as tx:
            group = self._group_row(tx, name)
            rows = tx.all(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE revoked_at IS NULL ORDER BY id")
            members = _memberships(tx)
        selector = group["profile"] is not None or bool(group["tags"])
        out = []
        for row in rows:
            tags = set(json.loads(row["tags"]))
            matched = selector and group["profile"] in (None, row["profile"]) and set(group["tags"]) <= tags
            if matched or name in members.get(row["id"], []):
                out.append(_device_record(row, members.get(row["id"], [])))
        return out

    def add_member(self, group: str, device_id: str, actor: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            self._group_row(tx, group)
            self._device_row(tx, device_id)
            if tx.one("SELECT device_id FROM group_members WHERE group_name = ? AND device_id = ?", (group, device_id)) is None:
                tx.execute("INSERT INTO group_members (group_name, device_id, added_at) VALUES (?, ?, ?)",
                           (group, device_id, self.clock()))
                self.log_event(tx, actor, "group.member_added", f"group:{group}", f"added {device_id}")
        return self.group(group)

    def remove_member(self, group: str, device_id: str, actor: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            self._group_row(tx, group)
            if tx.run("DELETE FROM group_members WHERE group_name = ? AND device_id = ?", (group, device_id)) != 1:
                raise NotFound(f"device {str(device_id)[:80]!r} is not an explicit member of group {group!r}")
            self.log_event(tx, actor, "group.member_removed", f"group:{group}", f"removed {device_id}")
        return self.group(group)

    # -- telemetry -------------------------------------------------------------------------------------
    def record_telemetry(self, device_id: str, t: Telemetry) -> None:
        row = asdict(t)
        row["tier_shares"] = json.dumps(t.tier_shares, sort_keys=True)
        names = ", ".join(row)
        with self.db.transaction() as tx:
            tx.execute(f"INSERT INTO telemetry (device_id, {names}, received_at) VALUES ({', '.join('?' * (len(row) + 2))})",
                       (device_id, *row.values(), self.clock()))

    def telemetry(self, device_id: str | None = None, bundle_sha256: str | None = None,
                  since: float = 0.0, limit: int = 1000) -> list[dict[str, Any]]:
        where, params = ["window_end > ?"], [since]
        if device_id is not None:
            where.append("device_id = ?")
            params.append(device_id)
        if bundle_sha256 is not None:
            where.append("bundle_sha256 = ?")
            params.append(bundle_sha256)
        with self.db.transaction(write=False) as tx:
            rows = tx.all(f"SELECT * FROM telemetry WHERE {' AND '.join(where)} ORDER BY window_end LIMIT ?",
                          (*params, max(1, min(limit, 100_000))))
        return [{**r, "tier_shares": json.loads(r["tier_shares"])} for r in rows]


def _memberships(tx: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in tx.all("SELECT device_id, group_name FROM group_members ORDER BY group_name"):
        out.setdefault(r["device_id"], []).append(r["group_name"])
    return out


def _device_record(row: dict[str, Any], groups: list[str]) -> dict[str, Any]:
    return {**row, "tags": json.loads(row["tags"]), "isa": json.loads(row["isa"]), "online": bool(row["online"]),
            "inventory": json.loads(row["inventory"]), "groups": groups}
