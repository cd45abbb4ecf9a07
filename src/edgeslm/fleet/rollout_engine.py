"""Carries rollouts out: a loop that reads each open rollout from the registry, sends what is due over MQTT (install,
report, rollback commands), and judges the canaries with the gates (gates.py); plus the listener that files what
devices answer. Everything it knows is in the registry's tables, so a restarted control plane carries on where the
last one stopped: commands have stable ids (a device acts on one id once), and a command nobody acknowledged is sent
again.

One step of a rollout, in order:
  - halted or rolling back: send the rollbacks due (to online devices), and finish when none is left;
  - the current wave (the first not passed): start it unless paused; send installs to its online devices (a device
    offline now gets its install when it says online again, within or after its wave);
  - a failed install past the allowed share halts the rollout; the canary wave then waits for every canary,
    judges probe accuracy at once (measured on the device at activation), then waits for min_requests of traffic
    on the new version and judges latency, error and escalation rates and energy against the previous version;
  - a failed gate halts the rollout and rolls back every device it changed, with the reason recorded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeslm.agent.protocol import PROTOCOL_VERSION, Command, Event, Install, PolicyRef, Probe, State
from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.fleet import gates
from edgeslm.fleet.link import DEVICE_EVENT, DeviceLink, LinkConfig
from edgeslm.fleet.registry import Registry
from edgeslm.fleet.rollout import (
    ACTIVE,
    BASELINE_WINDOW_S,
    CANARY,
    COMPLETED,
    FAILED,
    HALTED,
    IN_FLIGHT,
    INSTALLING,
    PAUSED,
    PENDING,
    ROLLBACK_FAILED,
    ROLLBACK_PENDING,
    ROLLBACK_SENT,
    ROLLED_BACK,
    ROLLED_BACK_DEVICE,
    ROLLING_BACK,
    RUNNING,
    SENT,
    WAVE_FAILED,
    WAVE_INSTALLING,
    WAVE_PASSED,
    WAVE_PENDING,
    RolloutConfig,
    load_config,
    mark_rollback,
    rollout_id_of,
    rollout_name,
)

log = logging.getLogger(__name__)

ACTOR = "controlplane"


@dataclass(frozen=True)
class EngineConfig(Config):
    public_url: str  # how devices reach this control plane's API (bundle downloads): http://host:port
    tick_s: float = 1.0  # between steps; a device event wakes the loop sooner
    batch_s: float = 0.2  # after a wake-up, let a burst of device events land before reading the rollouts again
    resend_s: float = 30.0  # a command without an answer after this long goes again (same id: acted on once)
    install_timeout_s: float = 1800.0  # an install started and never finished counts as failed after this long
    baseline_window_s: float = BASELINE_WINDOW_S  # how far back the previous version's telemetry is read

    def validate(self) -> None:
        if not self.public_url.startswith(("http://", "https://")) or len(self.public_url) > 1000 or " " in self.public_url:
            raise ConfigError(f"EngineConfig.public_url: the http(s):// address devices download bundles from, got "
                              f"{self.public_url[:80]!r}")
        if not 0.01 <= self.tick_s <= 60:
            raise ConfigError("EngineConfig.tick_s: in [0.01, 60] seconds")
        if not 0 <= self.batch_s <= 10:
            raise ConfigError("EngineConfig.batch_s: in [0, 10] seconds")
        if not 0.1 <= self.resend_s <= 86400 or not self.resend_s <= self.install_timeout_s <= 7 * 86400:
            raise ConfigError("EngineConfig.resend_s/install_timeout_s: need 0.1 <= resend_s <= install_timeout_s <= 7 days")
        if not 60 <= self.baseline_window_s <= 90 * 86400:
            raise ConfigError("EngineConfig.baseline_window_s: in [60 s, 90 days]")


class RolloutEngine:
    def __init__(self, registry: Registry, link: DeviceLink, config: EngineConfig,
                 clock: Callable[[], float] = time.time):
        self.registry, self.link, self.config, self.clock = registry, link, config, clock
        self.db = registry.db
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        link.on_event.append(self.on_event)
        link.on_state.append(self.on_state)
        link.on_online.append(lambda _device: self._wake.set())

    # --- life cycle ---
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="edgeslm-rollouts", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a database hiccup must not end rollouts: the next tick retries
                log.exception("a rollout step failed; retrying in %.1f s", self.config.tick_s)
            if self._wake.wait(self.config.tick_s) and self.config.batch_s:
                # one wake-up per burst: at 1,000 devices a wave's events come in hundreds, and each step reads every
                # assignment of the rollout
                self._stop.wait(self.config.batch_s)
            self._wake.clear()

    def tick(self) -> None:
        # a halted rollout needs steps only while it has rollbacks to send or to hear back from
        with self.db.transaction(write=False) as tx:
            ids = [int(r["id"]) for r in tx.all(
                "SELECT id FROM rollouts r WHERE state IN (?, ?, ?) OR (state = ? AND EXISTS (SELECT 1 FROM "
                "rollout_assignments a WHERE a.rollout_id = r.id AND a.state IN (?, ?))) ORDER BY id",
                (RUNNING, PAUSED, ROLLING_BACK, HALTED, ROLLBACK_PENDING, ROLLBACK_SENT))]
        for rid in ids:
            self.step(rid)

    # --- what devices answer (paho's thread) ---
    def on_event(self, device_id: str, event: Event) -> None:
        rid = rollout_id_of(event.rollout)
        if rid is None:
            return
        now = self.clock()
        with self.db.transaction() as tx:
            a = tx.one("SELECT a.*, r.state AS rollout_state FROM rollout_assignments a JOIN rollouts r "
                       "ON r.id = a.rollout_id WHERE a.rollout_id = ? AND a.device_id = ?", (rid, device_id))
            if a is None:
                return
            kind, state = event.kind, a["state"]
            to: str | None = None
            reason = event.reason
            if kind == "install_started" and state == SENT:
                to = INSTALLING
            elif kind == "install_activated" and event.sha256 == a["bundle_sha256"] and state in (PENDING, *IN_FLIGHT):
                to = ACTIVE if a["rollout_state"] not in (HALTED, ROLLING_BACK) else ROLLBACK_PENDING
                reason = "active" if to == ACTIVE else "activated after the halt: to roll back"
            elif kind == "install_failed" and event.sha256 == a["bundle_sha256"] and state in (PENDING, *IN_FLIGHT):
                to = FAILED
            elif kind == "install_failed" and state == ROLLBACK_PENDING and event.sha256 == a["bundle_sha256"]:
                to = FAILED  # the install that the halt wanted undone never landed: nothing to roll back
            elif kind == "rolled_back" and state in (ROLLBACK_PENDING, ROLLBACK_SENT):
                to, reason = ROLLED_BACK_DEVICE, f"rolled back: {event.reason}" if event.reason else "rolled back"
            elif kind == "rollback_failed" and state in (ROLLBACK_PENDING, ROLLBACK_SENT):
                to = ROLLBACK_FAILED
            if to is None:
                return
            tx.run("UPDATE rollout_assignments SET state = ?, reason = ?, updated_at = ? WHERE rollout_id = ? AND "
                   "device_id = ? AND state = ?", (to, (reason or kind)[:500], now, rid, device_id, state))
        self._wake.set()

    def on_state(self, device_id: str, state: State) -> None:
        """A device that serves the rollout's version without our having heard its event (lost, or sent while the
        control plane was away and the broker dropped it) is active all the same."""
        if state.active is None or state.installing is not None:
            return
        with self.db.transaction() as tx:
            n = tx.run("UPDATE rollout_assignments SET state = ?, reason = ?, updated_at = ? WHERE device_id = ? AND "
                       "bundle_sha256 = ? AND state IN (?, ?) AND rollout_id IN (SELECT id FROM rollouts WHERE state IN "
                       "(?, ?))", (ACTIVE, "active (from the device's inventory)", self.clock(), device_id, state.active,
                                    *IN_FLIGHT, RUNNING, PAUSED))
        if n:
            self._wake.set()

    # --- one rollout ---
    def step(self, rid: int) -> None:
        with self.db.transaction(write=False) as tx:
            r = tx.one("SELECT * FROM rollouts WHERE id = ?", (rid,))
            if r is None:
                return
            waves = tx.all("SELECT * FROM rollout_waves WHERE rollout_id = ? ORDER BY idx", (rid,))
            assignments = tx.all("SELECT a.*, d.online, d.active_bundle AS device_active FROM rollout_assignments a "
                                 "JOIN devices d ON d.id = a.device_id WHERE a.rollout_id = ?", (rid,))
        config = load_config(r)
        now = self.clock()
        self._expire(rid, assignments, now)
        if r["state"] in (HALTED, ROLLING_BACK):
            self._drive_rollbacks(r, assignments, now)
            return
        wave = next((w for w in waves if w["state"] != WAVE_PASSED), None)
        if wave is None:  # every wave passed: devices that were offline get theirs when they return
            if r["state"] == RUNNING:
                self._send_installs(r, config, [a for a in assignments if a["wave_idx"] >= 0], now)
            if not any(a["state"] in (PENDING, *IN_FLIGHT) for a in assignments):
                self._finish(rid, COMPLETED, "every device runs the release")
            return
        if wave["state"] == WAVE_PENDING:
            if r["state"] != RUNNING:
                return
            with self.db.transaction() as tx:
                tx.run("UPDATE rollout_waves SET state = ?, started_at = ? WHERE rollout_id = ? AND idx = ? AND state = ?",
                       (WAVE_INSTALLING, now, rid, wave["idx"], WAVE_PENDING))
                self.registry.log_event(tx, ACTOR, "rollout.wave_started", f"rollout:{rid}",
                                        f"{wave['kind']} wave {wave['idx']} started", {"wave": wave["idx"]})
        if r["state"] == RUNNING:
            self._send_installs(r, config, [a for a in assignments if 0 <= a["wave_idx"] <= wave["idx"]], now)
        self._judge(r, config, wave, [a for a in assignments if a["wave_idx"] == wave["idx"]], now)

    def _expire(self, rid: int, assignments: list[dict[str, Any]], now: float) -> None:
        """An install the device already serves (its inventory says so: the event was lost) is active; one the device
        started and never finished (killed for good, wedged) fails after install_timeout_s."""
        limit = self.config.install_timeout_s
        for a in assignments:
            if a["state"] in IN_FLIGHT and a["device_active"] == a["bundle_sha256"]:
                with self.db.transaction() as tx:
                    tx.run("UPDATE rollout_assignments SET state = ?, reason = ?, updated_at = ? WHERE rollout_id = ? AND "
                           "device_id = ? AND state = ?", (ACTIVE, "active (from the device's inventory)", now, rid,
                                                           a["device_id"], a["state"]))
                a["state"], a["updated_at"] = ACTIVE, now
            elif a["state"] in IN_FLIGHT and now - a["updated_at"] > limit:
                with self.db.transaction() as tx:
                    tx.run("UPDATE rollout_assignments SET state = ?, reason = ?, updated_at = ? WHERE rollout_id = ? AND "
                           "device_id = ? AND state = ?", (FAILED, f"no answer from the device within {limit:g} s", now, rid,
                                                           a["device_id"], a["state"]))
                a["state"] = FAILED

    def _send_installs(self, r: dict[str, Any], config: RolloutConfig, assignments: list[dict[str, Any]], now: float) -> None:
        bundles: dict[str, dict[str, Any]] = {}  # a release has a few variants; a wave may have thousands of devices
        for a in assignments:
            due = a["state"] == PENDING or (a["state"] == SENT and now - a["updated_at"] >= self.config.resend_s)
            if not due or not a["online"]:
                continue
            previous = a["device_active"] if a["device_active"] != a["bundle_sha256"] else a["previous_bundle_sha256"]
            with self.db.transaction() as tx:
                if tx.run("UPDATE rollout_assignments SET state = ?, previous_bundle_sha256 = ?, updated_at = ? WHERE "
                          "rollout_id = ? AND device_id = ? AND state = ?",
                          (SENT, previous, now, r["id"], a["device_id"], a["state"])) != 1:
                    continue  # the device answered meanwhile
            for command in self._install_commands(r, config, a, bundles):
                self.link.send(a["device_id"], command)

    def _install_commands(self, r: dict[str, Any], config: RolloutConfig, a: dict[str, Any],
                          bundles: dict[str, dict[str, Any]]) -> list[Command]:
        if a["bundle_sha256"] not in bundles:
            bundles[a["bundle_sha256"]] = self.registry.bundle(a["bundle_sha256"])
        bundle = bundles[a["bundle_sha256"]]
        name = rollout_name(int(r["id"]))
        probe = Probe(min_accuracy=config.probe_floor, file=config.probe_file) if config.probe_file else None
        base = self.config.public_url.rstrip("/")
        policy = None
        if r["policy_sha256"]:
            if r["policy_sha256"] not in bundles:  # (the cache of one step: policies by sha256 too)
                bundles[r["policy_sha256"]] = self.registry.policy(r["policy_sha256"])
            record = bundles[r["policy_sha256"]]
            policy = PolicyRef(sha256=record["sha256"], url=f"{base}/v1/policies/{record['sha256']}",
                               size=int(record["size_bytes"]))
        spec = Install(sha256=bundle["sha256"], url=f"{base}/v1/bundles/{bundle['sha256']}/archive",
                       size=int(bundle["size_bytes"]), signers=list(config.signers), probe=probe, name=bundle["name"][:128],
                       policy=policy)
        now = self.clock()
        # `report` first: the device closes its telemetry window on the version it runs now, so the previous version's
        # figures are not mixed with the new one's (commands are done in order)
        return [Command(v=PROTOCOL_VERSION, id=f"{name}.report.{a['device_id']}", action="report", issued_at=now, rollout=name),
                Command(v=PROTOCOL_VERSION, id=f"{name}.install.{a['device_id']}", action="install", issued_at=now,
                        rollout=name, install=spec)]

    # --- judging a wave ---
    def _judge(self, r: dict[str, Any], config: RolloutConfig, wave: dict[str, Any], wave_rows: list[dict[str, Any]],
               now: float) -> None:
        rid, idx = int(r["id"]), int(wave["idx"])
        finished = [a for a in wave_rows if a["state"] in (ACTIVE, FAILED)]
        failed = [a for a in finished if a["state"] == FAILED]
        outstanding = [a for a in wave_rows if a["state"] in IN_FLIGHT or (a["state"] == PENDING and a["online"])]
        if failed:
            share = len(failed) / max(1, len(finished) + len(outstanding))
            if share > config.max_failed_fraction + 1e-12 or not outstanding:
                result = gates.install_gate(len(failed), len(finished), config.max_failed_fraction, _first_reason(failed))
                if not result.passed:
                    who = f"{len(failed)} of {len(finished)} installs in {wave['kind']} wave {idx} failed"
                    self._halt(rid, idx, [result], f"{who}: {_first_reason(failed)}")
                    return
        if outstanding or not finished:
            return  # the wave's devices have not all answered (offline ones wait for their return)
        active = [a for a in finished if a["state"] == ACTIVE]
        if wave["kind"] == CANARY and active:
            if not self._judge_canaries(r, config, idx, active, now):
                return
        elif failed:
            self._record(rid, idx, [gates.install_gate(len(failed), len(finished), config.max_failed_fraction,
                                                       _first_reason(failed))])
        with self.db.transaction() as tx:
            if tx.run("UPDATE rollout_waves SET state = ?, finished_at = ? WHERE rollout_id = ? AND idx = ? AND state = ?",
                      (WAVE_PASSED, now, rid, idx, WAVE_INSTALLING)) == 1:
                self.registry.log_event(tx, ACTOR, "rollout.wave_passed", f"rollout:{rid}",
                                        f"{wave['kind']} wave {idx} passed: {len(active)} device(s) on the new version",
                                        {"wave": idx})
        self._wake.set()

    def _judge_canaries(self, r: dict[str, Any], config: RolloutConfig, idx: int, active: list[dict[str, Any]],
                        now: float) -> bool:
        """True when the canaries passed every gate; False while waiting for traffic, or after a halt."""
        rid = int(r["id"])
        pairs = self._pairs(active)
        thresholds = config.thresholds()
        accuracy = gates.accuracy_gate(pairs, thresholds.max_accuracy_drop)
        if not accuracy.passed:  # known at activation: no need to wait for traffic to roll back
            self._halt(rid, idx, [accuracy], f"gate probe_accuracy failed on the canaries: {accuracy.reason}")
            return False
        since = max(a["updated_at"] for a in active)
        if not gates.enough_traffic(pairs, thresholds.min_requests):
            if now - since < config.observe_s:
                return False
            if config.require_traffic:
                served = min(c.requests for _, c in pairs.values())
                result = gates.GateResult("traffic", False, float(served), None, float(thresholds.min_requests),
                                          f"a canary served {served} request(s) on the new version in {config.observe_s:g} s; "
                                          f"the gates need {thresholds.min_requests} (require_traffic)")
                self._halt(rid, idx, [accuracy, result], f"not enough canary traffic to judge: {result.reason}")
                return False
        results = gates.evaluate(pairs, thresholds)
        had_previous = [a for a in active if a["previous_bundle_sha256"]]
        judged = max(g.devices for g in results if g.gate != "probe_accuracy")
        if config.require_traffic and had_previous and not judged:
            result = gates.GateResult("baseline", False, None, None, float(thresholds.min_requests),
                                      f"no canary served {thresholds.min_requests} requests on its previous version "
                                      f"within {self.config.baseline_window_s:g} s before the install: nothing to judge the "
                                      "new one against (require_traffic)")
            self._halt(rid, idx, [*results, result], f"cannot judge the canaries: {result.reason}")
            return False
        failed = [g for g in results if not g.passed]
        if failed:
            self._halt(rid, idx, results, "; ".join(f"gate {g.gate} failed on the canaries: {g.reason}" for g in failed))
            return False
        self._record(rid, idx, results)
        return True

    def _pairs(self, active: list[dict[str, Any]]) -> gates.Pairs:
        """Per canary: the previous version's measure (None when it ran none) and the new version's. The windows are
        split at the moment the device activated the new version, by its own clock (its telemetry's): the previous
        version's end before it, the new version's start after it, and the window across the swap counts for neither."""
        out: dict[str, tuple[gates.Measure | None, gates.Measure]] = {}
        for a in active:
            device = a["device_id"]
            activated, accuracy = self._activation(device, a["bundle_sha256"])
            activated = activated if activated is not None else a["updated_at"]
            cand = gates.aggregate(self._windows(device, a["bundle_sha256"], start_after=activated))
            if accuracy is not None:
                cand = gates.Measure(cand.requests, cand.errors, cand.escalations, cand.p90_ms, cand.joules_per_answer, accuracy)
            base = None
            if a["previous_bundle_sha256"]:
                rows = self._windows(device, a["previous_bundle_sha256"], end_after=activated - self.config.baseline_window_s,
                                     end_before=activated)
                base = gates.aggregate(rows) if rows else None
            out[device] = (base, cand)
        return out

    def _windows(self, device: str, sha: str, start_after: float | None = None, end_after: float | None = None,
                 end_before: float | None = None) -> list[gates.Window]:
        where, params = ["device_id = ?", "bundle_sha256 = ?"], [device, sha]
        for column, op, value in (("window_start", ">=", start_after), ("window_end", ">", end_after),
                                  ("window_end", "<=", end_before)):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        with self.db.transaction(write=False) as tx:
            rows = tx.all("SELECT requests, errors, escalations, latency_p90_ms, joules, probe_accuracy, window_end FROM "
                          f"telemetry WHERE {' AND '.join(where)} ORDER BY window_end DESC LIMIT 10000", params)
        return [gates.Window(int(r["requests"]), int(r["errors"]), int(r["escalations"]), r["latency_p90_ms"], r["joules"],
                             r["probe_accuracy"], r["window_end"]) for r in rows]

    def _activation(self, device: str, sha: str) -> tuple[float | None, float | None]:
        """When the device activated `sha` (its clock) and the probe accuracy it measured then: its install_activated event."""
        with self.db.transaction(write=False) as tx:
            rows = tx.all("SELECT details FROM events WHERE subject = ? AND kind = ? ORDER BY id DESC LIMIT 20",
                          (f"device:{device}", DEVICE_EVENT + "install_activated"))
        for row in rows:
            details = json.loads(row["details"])
            if details.get("sha256") == sha:
                ts, accuracy = details.get("ts"), details.get("probe_accuracy")
                return (float(ts) if isinstance(ts, (int, float)) else None,
                        float(accuracy) if isinstance(accuracy, (int, float)) else None)
        return None, None

    def _record(self, rid: int, idx: int, results: list[gates.GateResult]) -> None:
        now = self.clock()
        with self.db.transaction() as tx:
            for g in results:
                tx.execute("INSERT INTO gate_results (rollout_id, wave_idx, gate, candidate, baseline, threshold, passed, "
                           "reason, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (rid, idx, g.gate, g.candidate, g.baseline, g.threshold, int(g.passed), g.reason[:1000], now))

    def _halt(self, rid: int, idx: int, results: list[gates.GateResult], reason: str) -> None:
        """Record why, stop the rollout, and mark every device it changed for rollback (sent by _drive_rollbacks)."""
        now = self.clock()
        reason = reason[:1000]
        with self.db.transaction() as tx:
            if tx.run("UPDATE rollouts SET state = ?, halt_reason = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
                      (HALTED, reason, now, rid, RUNNING, PAUSED)) != 1:
                return
            for g in results:
                tx.execute("INSERT INTO gate_results (rollout_id, wave_idx, gate, candidate, baseline, threshold, passed, "
                           "reason, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (rid, idx, g.gate, g.candidate, g.baseline, g.threshold, int(g.passed), g.reason[:1000], now))
            tx.run("UPDATE rollout_waves SET state = ?, finished_at = ? WHERE rollout_id = ? AND idx = ?",
                   (WAVE_FAILED, now, rid, idx))
            mark_rollback(tx, rid, reason, now)  # (and the waves not started are cancelled)
            self.registry.log_event(tx, ACTOR, "rollout.halted", f"rollout:{rid}", reason,
                                    {"wave": idx, "failed_gates": [g.gate for g in results if not g.passed]})
        log.warning("rollout %d halted: %s", rid, reason)
        self._wake.set()

    # --- rolling back ---
    def _drive_rollbacks(self, r: dict[str, Any], assignments: list[dict[str, Any]], now: float) -> None:
        rid, name = int(r["id"]), rollout_name(int(r["id"]))
        reason = r["halt_reason"] or "rolled back"
        for a in assignments:
            due = a["state"] == ROLLBACK_PENDING or (a["state"] == ROLLBACK_SENT and now - a["updated_at"] >= self.config.resend_s)
            if not due or not a["online"]:
                continue
            with self.db.transaction() as tx:
                if tx.run("UPDATE rollout_assignments SET state = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ? "
                          "AND state = ?", (ROLLBACK_SENT, now, rid, a["device_id"], a["state"])) != 1:
                    continue
            self.link.send(a["device_id"], Command(
                v=PROTOCOL_VERSION, id=f"{name}.rollback.{a['device_id']}", action="rollback", issued_at=now, rollout=name,
                rollback_to=a["previous_bundle_sha256"], reason=_short(reason)))
        left = [a for a in assignments if a["state"] in (ROLLBACK_PENDING, ROLLBACK_SENT)]
        if not left and r["state"] == ROLLING_BACK:
            self._finish(rid, ROLLED_BACK, "every device the rollout changed is back on its previous version")

    def _finish(self, rid: int, to: str, reason: str) -> None:
        with self.db.transaction() as tx:
            if tx.run("UPDATE rollouts SET state = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
                      (to, self.clock(), rid, RUNNING, ROLLING_BACK)) == 1:
                self.registry.log_event(tx, ACTOR, f"rollout.{to}", f"rollout:{rid}", reason)


def _first_reason(rows: list[dict[str, Any]]) -> str:
    row = next((a for a in rows if a.get("reason")), None)
    return f"{row['device_id']}: {row['reason']}" if row else "no reason given"


def _short(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."



@dataclass
class RolloutService:
    """The MQTT link and the rollout engine, as `edgeslm fleet server --broker` runs them beside the API."""

    link: DeviceLink
    engine: RolloutEngine

    def stop(self) -> None:
        self.engine.stop()
        self.link.stop()


def start_rollouts(registry: Registry, link_config: LinkConfig, password: str, engine_config: EngineConfig) -> RolloutService:
    """Connect to the broker (in the background: paho retries until it is up) and start carrying rollouts out."""
    link = DeviceLink(registry, link_config, password)
    engine = RolloutEngine(registry, link, engine_config)
    link.start()
    engine.start()
    return RolloutService(link, engine)
