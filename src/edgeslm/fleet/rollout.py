"""Rollouts: a release of a bundle to a group of devices, a canary wave first, then waves; every step and its reason
in the registry's tables (rollouts, rollout_waves, rollout_assignments, gate_results, events), so the API, the CLI,
the dashboard and a restarted control plane all read the same state. This module plans a rollout and changes its
state on an operator's word (create, pause, resume, abort, rollback); rollout_engine.py carries it out over MQTT.

    rollouts = Rollouts(registry)
    record = rollouts.create(RolloutConfig(bundle="intent", release="3", group="kitchens"), actor="cli")
    rollouts.pause(record["id"], actor="cli", reason="holiday freeze")

Per device, the variant of the release that fits it (choose_variant): every ISA it needs the device has, and it
fits the device's memory budget; of those, the most specialised (most ISA extensions), then the largest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeslm.config import Config, is_decimal
from edgeslm.errors import ConfigError
from edgeslm.fleet.errors import Conflict, NotFound
from edgeslm.fleet.gates import Thresholds
from edgeslm.fleet.registry import Registry
from edgeslm.fleet.schemas import LABEL, check_label, check_text

# A rollout's states. running and paused move forward (paused: no new install, but a failing gate still rolls the
# canaries back); halted (a gate failed: the changed devices are rolled back), rolling_back (an operator asked) and
# rolled_back, aborted (no more installs; devices keep what they run) and completed are where rollouts end.
RUNNING, PAUSED, HALTED, ROLLING_BACK, ROLLED_BACK, ABORTED, COMPLETED = (
    "running", "paused", "halted", "rolling_back", "rolled_back", "aborted", "completed")
OPEN_STATES = (RUNNING, PAUSED, ROLLING_BACK)

# An assignment (one device in one rollout).
PENDING, SENT, INSTALLING, ACTIVE, FAILED, SKIPPED, CANCELLED = (
    "pending", "sent", "installing", "active", "failed", "skipped", "cancelled")
ROLLBACK_PENDING, ROLLBACK_SENT, ROLLED_BACK_DEVICE, ROLLBACK_FAILED = (
    "rollback_pending", "rolling_back", "rolled_back", "rollback_failed")
IN_FLIGHT = (SENT, INSTALLING)
CHANGED = (SENT, INSTALLING, ACTIVE)  # what a rollback must undo (sent: the install may still land)

# A wave.
WAVE_PENDING, WAVE_INSTALLING, WAVE_PASSED, WAVE_FAILED, WAVE_CANCELLED = "pending", "installing", "passed", "failed", "cancelled"
CANARY, WAVE = "canary", "wave"

BASELINE_WINDOW_S = 7 * 86400.0  # how far back a device's telemetry on its current version counts as its baseline
NAME_PREFIX = "rollout-"  # what commands and device events carry (protocol NAME pattern)
MAX_WAVES = 20


def rollout_name(rollout_id: int) -> str:
    return f"{NAME_PREFIX}{rollout_id}"


def rollout_id_of(name: str | None) -> int | None:
    """The id in a rollout name a device echoes, or None for a command that was not a rollout's."""
    if not name or not name.startswith(NAME_PREFIX):
        return None
    digits = name[len(NAME_PREFIX):]
    return int(digits) if is_decimal(digits) and len(digits) < 18 else None


@dataclass(frozen=True)
class RolloutConfig(Config):
    """One rollout: what (a bundle's release), where (a group), how fast (canaries, then cumulative waves) and what
    the canaries may lose against the previous version on the same devices before it halts (gates.py)."""

    bundle: str  # the bundle's name (its manifest's)
    release: str
    group: str
    canary_fraction: float = 0.1  # of the group's devices that fit a variant; at least one device
    waves: list = field(default_factory=lambda: [1.0])  # cumulative fractions after the canaries, the last 1.0
    probe_file: str | None = "probe.jsonl"  # the signed probe set inside the bundle; None: no probe run on install
    probe_floor: float = 0.0  # a device refuses a version below this probe accuracy before it ever serves
    max_accuracy_drop: float = 0.01
    max_p90_ratio: float = 1.5
    max_error_rate_increase: float = 0.01
    max_escalation_rate_increase: float = 0.05
    max_joules_ratio: float = 1.5
    min_requests: int = 20  # per canary and version before latency, rates and energy are judged
    observe_s: float = 600.0  # how long canaries may take to serve min_requests on the new version
    require_traffic: bool = True  # canaries that never reach min_requests fail the rollout (False: judged on probes)
    max_failed_fraction: float = 0.0  # of finished installs in a wave that may fail (refused, probe floor) and go on
    signers: list = field(default_factory=list)  # key ids the bundle must be signed by (empty: any the device trusts)
    # a published policy (its sha256: POST /v1/policies) the devices install with the bundle and roll back with it
    policy: str | None = None
    description: str = ""

    def validate(self) -> None:
        check_label(self.bundle, "RolloutConfig.bundle", LABEL)
        check_label(self.release, "RolloutConfig.release")
        check_label(self.group, "RolloutConfig.group")
        if not 0 < self.canary_fraction <= 1:
            raise ConfigError(f"RolloutConfig.canary_fraction: in (0, 1], got {self.canary_fraction}")
        if not isinstance(self.waves, list) or not 1 <= len(self.waves) <= MAX_WAVES:
            raise ConfigError(f"RolloutConfig.waves: 1 to {MAX_WAVES} cumulative fractions, the last 1.0 (e.g. [0.5, 1.0])")
        if self.canary_fraction == 1:
            if self.waves != [1.0]:
                raise ConfigError("RolloutConfig.waves: with canary_fraction 1 the canaries are every device; leave waves [1.0]")
        else:
            previous = self.canary_fraction
            for f in self.waves:
                if isinstance(f, bool) or not isinstance(f, (int, float)) or not previous < f <= 1:
                    raise ConfigError(f"RolloutConfig.waves: each fraction above the one before (the canaries' "
                                      f"{self.canary_fraction}) and at most 1, got {self.waves}")
                previous = f
            if self.waves[-1] != 1:
                raise ConfigError(f"RolloutConfig.waves: the last wave must reach every device (1.0), got {self.waves[-1]}")
        if self.probe_file is not None:
            parts = self.probe_file.split("/")
            if not self.probe_file or len(self.probe_file) > 256 or any(p in ("", ".", "..") for p in parts) or \
                    not self.probe_file.isprintable() or "\\" in self.probe_file:
                raise ConfigError(f"RolloutConfig.probe_file: a relative path inside the bundle, got {self.probe_file[:80]!r}")
        for name in ("probe_floor", "max_accuracy_drop", "max_error_rate_increase", "max_escalation_rate_increase",
                     "max_failed_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"RolloutConfig.{name}: in [0, 1], got {getattr(self, name)}")
        for name in ("max_p90_ratio", "max_joules_ratio"):
            if not 1 <= getattr(self, name) <= 100:
                raise ConfigError(f"RolloutConfig.{name}: a ratio in [1, 100], got {getattr(self, name)}")
        if not 1 <= self.min_requests <= 1_000_000:
            raise ConfigError(f"RolloutConfig.min_requests: in [1, 1000000], got {self.min_requests}")
        if not 0 <= self.observe_s <= 30 * 86400:
            raise ConfigError(f"RolloutConfig.observe_s: in [0, 30 days], got {self.observe_s}")
        if not isinstance(self.signers, list) or len(self.signers) > 16 or not all(
                isinstance(s, str) and len(s) == 64 and all(c in "0123456789abcdef" for c in s) for s in self.signers):
            raise ConfigError("RolloutConfig.signers: at most 16 key ids (64 lowercase hex digits, `edgeslm keys new` prints them)")
        if self.policy is not None and not (len(self.policy) == 64 and all(c in "0123456789abcdef" for c in self.policy)):
            raise ConfigError("RolloutConfig.policy: a published policy's sha256 (64 lowercase hex digits; GET /v1/policies "
                              "lists them)")
        check_text(self.description, "RolloutConfig.description")

    def thresholds(self) -> Thresholds:
        return Thresholds(self.max_accuracy_drop, self.max_p90_ratio, self.max_error_rate_increase,
                          self.max_escalation_rate_increase, self.max_joules_ratio, self.min_requests)


# --- planning (pure) -------------------------------------------------------------------------------------------

def memory_budget(device: dict[str, Any]) -> int | None:
    """Bytes a device may keep resident: what it enrolled with, else its profile's budget (a known profile), else
    unknown (None: only the ISA decides)."""
    if device.get("memory_bytes"):
        return int(device["memory_bytes"])
    try:
        from edgeslm.runtime.profiles import load_profile

        return load_profile(device["profile"]).memory_budget_mb << 20
    except (ConfigError, OSError, KeyError):  # a profile this control plane does not know
        return None


def choose_variant(device: dict[str, Any], variants: Sequence[dict[str, Any]],
                   budget: int | None) -> tuple[dict[str, Any] | None, str]:
    """The variant that fits the device (ISA it has, memory within `budget`): the most specialised, then the largest.
    (variant, why) - why names what failed to fit when none does."""
    has = set(device.get("isa") or [])
    fits, why = [], []
    for v in variants:
        missing = sorted(set(v["isa"]) - has)
        if missing:
            why.append(f"{v['variant']} needs {', '.join(missing)}")
        elif budget is not None and v["memory_bytes"] > budget:
            why.append(f"{v['variant']} needs {v['memory_bytes'] >> 20} MiB, the budget is {budget >> 20} MiB")
        else:
            fits.append(v)
    if not fits:
        return None, "no variant fits: " + ("; ".join(why) or "the release has none")
    best = max(fits, key=lambda v: (len(v["isa"]), v["memory_bytes"], v["variant"] == device.get("profile"), v["variant"]))
    return best, f"variant {best['variant']}"


def wave_sizes(n: int, canary_fraction: float, waves: Sequence[float]) -> list[int]:
    """How many of `n` devices each wave adds: the canaries (at least one), then each cumulative fraction."""
    if n <= 0:
        return []
    cuts = [min(n, max(1, math.ceil(canary_fraction * n - 1e-9)))]
    for f in waves:
        cuts.append(max(cuts[-1], min(n, math.ceil(f * n - 1e-9))))
    cuts[-1] = n
    sizes = [cuts[0]] + [b - a for a, b in zip(cuts, cuts[1:], strict=False)]
    return [s for i, s in enumerate(sizes) if s > 0 or i == 0]


def device_order(devices: Sequence[dict[str, Any]], salt: str, served: dict[str, int] | None = None,
                 min_requests: int = 1) -> list[dict[str, Any]]:
    """Online devices first (canaries must answer now), then those that served `min_requests` on the version they run
    (`served`: device -> requests; a canary is judged against them), then a stable shuffle: the same rollout always
    picks the same canaries, and two rollouts do not always pick the same ones."""
    served = served or {}

    def key(d: dict[str, Any]) -> tuple[bool, bool, str]:
        thin = bool(d.get("active_bundle")) and served.get(d["id"], 0) < min_requests
        return (not d.get("online"), thin, hashlib.sha256(f"{salt}/{d['id']}".encode()).hexdigest())
    return sorted(devices, key=key)


# --- the registry side ------------------------------------------------------------------------------------------

class Rollouts:
    """Rollouts in the registry: plan and create them, read their state, and change it on an operator's word."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.db, self.clock = registry.db, registry.clock

    # -- create ----------------------------------------------------------------------------------------------
    def create(self, config: RolloutConfig, actor: str) -> dict[str, Any]:
        reg = self.registry
        variants = reg.bundles(config.bundle, config.release)
        if not variants:
            raise NotFound(f"no bundle {config.bundle!r} release {config.release!r} in the registry (edgeslm fleet publish)")
        if config.probe_file is not None:
            for v in variants:
                files = reg.bundle(v["sha256"], with_manifest=True)["manifest"].get("files", {})
                if config.probe_file not in files:
                    raise ConfigError(f"variant {v['variant']} ({v['sha256'][:16]}) ships no {config.probe_file} in its "
                                      "manifest: a probe set must be signed with the bundle; give probe_file, or none")
        if config.policy is not None:
            reg.policy(config.policy)  # NotFound for a policy never published
        devices = reg.group_devices(config.group)  # NotFound for an unknown group
        if not devices:
            raise Conflict(f"group {config.group!r} reaches no device; enrol devices into it first")
        chosen: dict[str, tuple[dict[str, Any] | None, str]] = {
            d["id"]: choose_variant(d, variants, memory_budget(d)) for d in devices}
        eligible = [d for d in devices if chosen[d["id"]][0] is not None]
        if not eligible:
            first = next(iter(chosen.values()))[1]
            raise Conflict(f"no device of group {config.group!r} fits a variant of {config.bundle} {config.release}: {first}")
        now = self.clock()
        with self.db.transaction() as tx:
            busy = tx.all(
                "SELECT a.device_id, a.rollout_id FROM rollout_assignments a JOIN rollouts r ON r.id = a.rollout_id "
                f"WHERE r.state IN ({', '.join('?' * len(OPEN_STATES))})", OPEN_STATES)
            overlap = sorted({b["rollout_id"] for b in busy if b["device_id"] in chosen})
            if overlap:
                raise Conflict(f"rollout {overlap[0]} is still open on devices of group {config.group!r}; wait for it, "
                               f"or abort it first (edgeslm fleet rollout abort {overlap[0]})")
            cur = tx.execute(
                "INSERT INTO rollouts (bundle_name, release, policy_sha256, group_name, state, canary_fraction, gates, "
                "settings, halt_reason, created_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (config.bundle, config.release, config.policy, config.group, RUNNING, config.canary_fraction,
                 json.dumps(config.thresholds().__dict__, sort_keys=True), json.dumps(config.to_dict(), sort_keys=True),
                 None, now, actor, now))
            rid = int(dict(cur.fetchone())["id"])
            ordered = device_order(eligible, f"{rid}/{config.bundle}/{config.release}", _served(tx, now - BASELINE_WINDOW_S),
                                   config.min_requests)
            sizes = wave_sizes(len(ordered), config.canary_fraction, config.waves)
            fractions = [config.canary_fraction, *config.waves][:len(sizes)]
            start = 0
            for idx, size in enumerate(sizes):
                tx.execute("INSERT INTO rollout_waves (rollout_id, idx, kind, fraction, state, started_at, finished_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (rid, idx, CANARY if idx == 0 else WAVE, float(fractions[idx]), WAVE_PENDING, None, None))
                for d in ordered[start:start + size]:
                    variant = chosen[d["id"]][0]
                    assert variant is not None
                    tx.execute("INSERT INTO rollout_assignments (rollout_id, device_id, wave_idx, bundle_sha256, "
                               "previous_bundle_sha256, state, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (rid, d["id"], idx, variant["sha256"], d["active_bundle"], PENDING,
                                f"variant {variant['variant']}", now))
                start += size
            skipped = [d for d in devices if chosen[d["id"]][0] is None]
            for d in skipped:  # recorded (with why) so the operator sees who is left out; never sent anything
                tx.execute("INSERT INTO rollout_assignments (rollout_id, device_id, wave_idx, bundle_sha256, "
                           "previous_bundle_sha256, state, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (rid, d["id"], -1, variants[0]["sha256"], d["active_bundle"], SKIPPED, chosen[d["id"]][1][:500], now))
            reg.log_event(tx, actor, "rollout.created", f"rollout:{rid}",
                          f"{config.bundle} release {config.release}"
                          f"{f' with policy {config.policy[:16]}' if config.policy else ''} to group {config.group}: {len(sizes)} wave(s), "
                          f"{sizes[0]} canar{'y' if sizes[0] == 1 else 'ies'}, {len(skipped)} device(s) fit no variant",
                          {"sizes": sizes, "skipped": [d["id"] for d in skipped]})
        return self.get(rid)

    # -- read ------------------------------------------------------------------------------------------------
    def _row(self, tx: Any, rollout_id: int) -> dict[str, Any]:
        row = tx.one("SELECT * FROM rollouts WHERE id = ?", (int(rollout_id),))
        if row is None:
            raise NotFound(f"no rollout {rollout_id} (edgeslm fleet rollout status lists them)")
        return row

    def get(self, rollout_id: int) -> dict[str, Any]:
        """A rollout with its waves, every device's assignment, every gate measured and the reason for a halt."""
        with self.db.transaction(write=False) as tx:
            row = self._row(tx, rollout_id)
            waves = tx.all("SELECT * FROM rollout_waves WHERE rollout_id = ? ORDER BY idx", (row["id"],))
            assignments = tx.all(
                "SELECT a.device_id, a.wave_idx, a.bundle_sha256, b.variant, a.previous_bundle_sha256, a.state, a.reason, "
                "a.updated_at FROM rollout_assignments a JOIN bundles b ON b.sha256 = a.bundle_sha256 "
                "WHERE a.rollout_id = ? ORDER BY a.wave_idx, a.device_id", (row["id"],))
            gates = tx.all("SELECT wave_idx, gate, candidate, baseline, threshold, passed, reason, measured_at "
                           "FROM gate_results WHERE rollout_id = ? ORDER BY id", (row["id"],))
        record = _record(row)
        for a in assignments:
            if a["state"] == SKIPPED:
                a["variant"] = None
        for g in gates:
            g["passed"] = bool(g["passed"])
        counts: dict[str, int] = {}
        for a in assignments:
            counts[a["state"]] = counts.get(a["state"], 0) + 1
        for w in waves:
            w["devices"] = sum(1 for a in assignments if a["wave_idx"] == w["idx"])
        return {**record, "waves": waves, "assignments": assignments, "gates": gates, "counts": counts}

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as tx:
            rows = tx.all("SELECT * FROM rollouts ORDER BY id DESC LIMIT ?", (max(1, min(limit, 1000)),))
            counts = tx.all("SELECT rollout_id, state, COUNT(*) AS n FROM rollout_assignments GROUP BY rollout_id, state")
        by: dict[int, dict[str, int]] = {}
        for c in counts:
            by.setdefault(int(c["rollout_id"]), {})[c["state"]] = int(c["n"])
        return [{**_record(r), "counts": by.get(int(r["id"]), {})} for r in rows]

    # -- an operator's word ------------------------------------------------------------------------------------
    def pause(self, rollout_id: int, actor: str, reason: str = "") -> dict[str, Any]:
        return self._move(rollout_id, (RUNNING,), PAUSED, actor, reason or "paused", "rollout.paused")

    def resume(self, rollout_id: int, actor: str, reason: str = "") -> dict[str, Any]:
        return self._move(rollout_id, (PAUSED,), RUNNING, actor, reason or "resumed", "rollout.resumed")

    def abort(self, rollout_id: int, actor: str, reason: str = "") -> dict[str, Any]:
        """No more installs; devices keep what they run now (rollback undoes them)."""
        reason = reason or "aborted by an operator"
        with self.db.transaction() as tx:
            self._guarded(tx, rollout_id, (RUNNING, PAUSED), ABORTED, reason)
            tx.execute("UPDATE rollout_assignments SET state = ?, reason = ?, updated_at = ? WHERE rollout_id = ? "
                       "AND state = ?", (CANCELLED, f"cancelled: {reason}"[:500], self.clock(), rollout_id, PENDING))
            tx.execute("UPDATE rollout_waves SET state = ?, finished_at = ? WHERE rollout_id = ? AND state IN (?, ?)",
                       (WAVE_CANCELLED, self.clock(), rollout_id, WAVE_PENDING, WAVE_INSTALLING))
            self.registry.log_event(tx, actor, "rollout.aborted", f"rollout:{rollout_id}", reason)
        return self.get(rollout_id)

    def rollback(self, rollout_id: int, actor: str, reason: str = "") -> dict[str, Any]:
        """Every device this rollout changed goes back to the version it ran before (the engine sends the commands)."""
        reason = reason or "rolled back by an operator"
        with self.db.transaction() as tx:
            row = self._row(tx, rollout_id)
            if row["state"] in (ROLLING_BACK, ROLLED_BACK):
                raise Conflict(f"rollout {rollout_id} is already {row['state'].replace('_', ' ')}")
            self._guarded(tx, rollout_id, (RUNNING, PAUSED, HALTED, ABORTED, COMPLETED), ROLLING_BACK,
                          row["halt_reason"] or reason, keep_reason=row["state"] == HALTED)
            mark_rollback(tx, rollout_id, reason, self.clock())
            self.registry.log_event(tx, actor, "rollout.rollback", f"rollout:{rollout_id}", reason)
        return self.get(rollout_id)

    def _move(self, rollout_id: int, from_states: tuple[str, ...], to: str, actor: str, reason: str,
              kind: str) -> dict[str, Any]:
        check_text(reason, "reason")
        with self.db.transaction() as tx:
            self._guarded(tx, rollout_id, from_states, to, None, keep_reason=True)
            self.registry.log_event(tx, actor, kind, f"rollout:{rollout_id}", reason)
        return self.get(rollout_id)

    def _guarded(self, tx: Any, rollout_id: int, from_states: tuple[str, ...], to: str, reason: str | None,
                 keep_reason: bool = False) -> None:
        row = self._row(tx, rollout_id)
        if row["state"] not in from_states:
            verb = {PAUSED: "pause", RUNNING: "resume", ABORTED: "abort", ROLLING_BACK: "roll back"}.get(to, to)
            raise Conflict(f"rollout {rollout_id} is {row['state'].replace('_', ' ')}: cannot {verb} it "
                           f"(only a rollout that is {' or '.join(s.replace('_', ' ') for s in from_states)})")
        sets = "state = ?, updated_at = ?" + ("" if keep_reason else ", halt_reason = ?")
        params: list[Any] = [to, self.clock()] + ([] if keep_reason else [reason])
        if tx.run(f"UPDATE rollouts SET {sets} WHERE id = ? AND state = ?", (*params, rollout_id, row["state"])) != 1:
            raise Conflict(f"rollout {rollout_id} changed meanwhile; look again (edgeslm fleet rollout status {rollout_id})")


def _served(tx: Any, since: float) -> dict[str, int]:
    """Requests each device served on the version it runs now, since `since`."""
    rows = tx.all("SELECT t.device_id, SUM(t.requests) AS n FROM telemetry t JOIN devices d ON d.id = t.device_id "
                  "WHERE t.window_end > ? AND t.bundle_sha256 = d.active_bundle GROUP BY t.device_id", (since,))
    return {r["device_id"]: int(r["n"] or 0) for r in rows}


def mark_rollback(tx: Any, rollout_id: int, reason: str, now: float) -> None:
    """In the caller's transaction: every device the rollout changed (or may have: an install in flight) is to be
    rolled back; what was never sent is cancelled, and so are the waves still open."""
    tx.execute(f"UPDATE rollout_assignments SET state = ?, reason = ?, updated_at = ? WHERE rollout_id = ? "
               f"AND state IN ({', '.join('?' * len(CHANGED))})",
               (ROLLBACK_PENDING, f"to roll back: {reason}"[:500], now, rollout_id, *CHANGED))
    tx.execute("UPDATE rollout_assignments SET state = ?, reason = ?, updated_at = ? WHERE rollout_id = ? AND state = ?",
               (CANCELLED, f"cancelled: {reason}"[:500], now, rollout_id, PENDING))
    tx.execute("UPDATE rollout_waves SET state = ?, finished_at = ? WHERE rollout_id = ? AND state IN (?, ?)",
               (WAVE_CANCELLED, now, rollout_id, WAVE_PENDING, WAVE_INSTALLING))


def _record(row: dict[str, Any]) -> dict[str, Any]:
    settings = json.loads(row["settings"])
    return {"id": int(row["id"]), "name": rollout_name(int(row["id"])), "bundle": row["bundle_name"],
            "release": row["release"], "policy": row["policy_sha256"], "group": row["group_name"], "state": row["state"],
            "halt_reason": row["halt_reason"],
            "canary_fraction": row["canary_fraction"], "gates_thresholds": json.loads(row["gates"]), "settings": settings,
            "created_at": row["created_at"], "created_by": row["created_by"], "updated_at": row["updated_at"]}


def load_config(row: dict[str, Any]) -> RolloutConfig:
    """The config a rollout was created with (its settings column)."""
    return RolloutConfig.from_dict(json.loads(row["settings"]))
