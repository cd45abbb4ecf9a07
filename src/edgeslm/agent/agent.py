"""The device agent: an MQTT client of the control plane (paho-mqtt, QoS 1, a persistent session under a stable
client id, presence with a last will) and one worker thread that carries out commands in order and publishes
telemetry every window.

A command is written to the journal before the broker gets its acknowledgement (paho acknowledges a QoS-1
message when on_message returns), so a command survives a crash or a kill of the agent: the next agent
carries on with it, and a half-downloaded archive resumes where it stopped.

An install never disturbs what serves: the new bundle is downloaded, verified and checked beside the active
one, and only a bundle that loaded and passed its probe set replaces it, in one rename of the `active` link.
"""

from __future__ import annotations

import itertools
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeslm import __version__
from edgeslm.agent import install
from edgeslm.agent.config import AgentConfig, Credentials
from edgeslm.agent.protocol import (
    PROTOCOL_VERSION,
    QOS,
    BundleInfo,
    Command,
    Event,
    Message,
    Presence,
    ProtocolError,
    State,
    encode,
    parse,
    reason_text,
    topic,
)
from edgeslm.agent.store import DeviceStore
from edgeslm.agent.telemetry import TelemetryWindow
from edgeslm.errors import EdgeslmError

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: AgentConfig, credentials: Credentials | None = None, profile: Any = None):
        from edgeslm.formats.signing import load_trust
        from edgeslm.runtime.profiles import load_profile

        self.config = config
        self.credentials = credentials or Credentials.load(config.credentials)
        self.device_id = self.credentials.device_id
        self.profile = profile or load_profile(config.profile)
        self.trust = load_trust(config.trust)  # refused now (a missing or private key), not at the first install
        self.store = DeviceStore(config.state_dir)
        self.telemetry = TelemetryWindow()
        self.connected = threading.Event()  # set once the broker holds our command subscription
        self.last_connect_error: str | None = None
        self._commands: queue.Queue[tuple[Path, Command] | None] = queue.Queue()
        self._pending: set[str] = set()  # command ids journaled and not done
        self._seq = itertools.count(time.time_ns())
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._engine: Any = None
        self._engine_lock = threading.Lock()
        self._installing: str | None = None
        self._client = self._make_client()

    # --- life cycle ---
    def start(self) -> None:
        self.store.lock()
        try:
            self._recover()
            self._client.connect_async(self.config.broker_host, self.config.broker_port, self.config.keepalive_s)
            self._client.loop_start()  # paho's thread: reconnects with backoff, first connection included
        except BaseException:
            self.store.unlock()
            raise
        self._worker = threading.Thread(target=self._work, name=f"edgeslm-agent-{self.device_id}", daemon=True)
        self._worker.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Say offline, finish the command in hand, and disconnect (a clean disconnect sends no last will)."""
        self._stop.set()
        self._commands.put(None)
        if self._worker is not None:
            self._worker.join(timeout_s)
        if self.connected.is_set():
            info = self._publish(Presence(v=PROTOCOL_VERSION, device_id=self.device_id, status="offline", ts=time.time()),
                                 retain=True)
            if info is not None:
                try:
                    info.wait_for_publish(timeout=min(timeout_s, 5.0))
                except (RuntimeError, ValueError):
                    pass  # not sent: the broker learns it from the keepalive and publishes the last will instead
        self._client.disconnect()
        self._client.loop_stop()
        with self._engine_lock:
            install.close_engine(self._engine)
            self._engine = None
        self.store.unlock()

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    # --- serving through the active bundle (what the telemetry aggregates) ---
    def classify(self, texts: list[str], tier: str = "encoder") -> list[dict[str, Any]]:
        from edgeslm.runtime.energy import cpu_seconds, joules

        # requests hold the lock while they run, so a swap waits for the one in flight instead of closing its engine
        with self._engine_lock:
            engine = self._engine
            if engine is None:
                raise EdgeslmError("no verified bundle is active on this device yet")
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            try:
                answers = engine.predict(texts)
            except Exception:
                self.telemetry.record(time.perf_counter() - wall0, tier, error=True)
                raise
            wall = time.perf_counter() - wall0
        energy = joules(cpu_seconds() - cpu0, wall, self.profile)
        for _ in texts:
            self.telemetry.record(wall, tier, joules=energy / max(1, len(texts)))
        return answers

    def record(self, latency_s: float, tier: str, error: bool = False, escalated: bool = False,
               joules: float | None = None) -> None:
        """One request served by something beside the agent (the device's server): counted in the window."""
        self.telemetry.record(latency_s, tier, error, escalated, joules)

    @property
    def active(self) -> str | None:
        return self.store.pointer("active")

    @property
    def active_policy(self) -> Path | None:
        """The verified policy file (router and cache thresholds) the active bundle serves with, if it has one."""
        sha = self.store.policy_of(self.active)
        return self.store.policy_path(sha) if sha else None

    def state(self) -> State:
        from edgeslm.runtime.profiles import meminfo_mb

        infos = []
        for sha in self.store.kept():
            note = self.store.note(sha)
            infos.append(BundleInfo(sha256=sha, name=str(note.get("name", "?"))[:200], bytes=int(note.get("bytes", 0))))
        mem = meminfo_mb()
        return State(
            v=PROTOCOL_VERSION, device_id=self.device_id, profile=self.profile.name[:200],
            free_memory_mb=max(0, mem.get("MemAvailable", mem.get("MemTotal", 0))),
            free_disk_mb=shutil.disk_usage(self.store.root).free >> 20,
            installed=sorted(infos, key=lambda b: b.sha256), active=self.store.pointer("active"),
            previous=self.store.pointer("previous"), agent_version=__version__, ts=time.time(),
            installing=self._installing, policy=self.store.policy_of(self.store.pointer("active")),
        )

    # --- MQTT ---
    def _make_client(self) -> Any:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeslm-{self.device_id}",
                             clean_session=False, protocol=mqtt.MQTTv311)
        client.username_pw_set(self.credentials.mqtt_username, self.credentials.mqtt_password)
        will = Presence(v=PROTOCOL_VERSION, device_id=self.device_id, status="offline", ts=time.time())
        client.will_set(topic(self.device_id, "presence"), encode(will), qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=self.config.reconnect_min_s, max_delay=self.config.reconnect_max_s)
        client.max_queued_messages_set(self.config.max_queued_messages)
        if self.config.tls_ca is not None:
            client.tls_set(ca_certs=str(self.config.tls_ca))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            if reason_code.is_failure:
                # bad credentials answer "Not authorized": say so once per reason, paho keeps retrying with backoff
                if self.last_connect_error != str(reason_code):
                    log.error("the broker refused the connection: %s", reason_code)
                self.last_connect_error = str(reason_code)
                return
            self.last_connect_error = None
            client.subscribe(topic(self.device_id, "cmd"), qos=QOS)  # (the persistent session keeps it; cheap to renew)
            self._publish(Presence(v=PROTOCOL_VERSION, device_id=self.device_id, status="online", ts=time.time()),
                          retain=True)
            self._publish(self.state(), retain=True)
            log.info("connected to %s:%d (session present: %s)", self.config.broker_host, self.config.broker_port,
                     flags.session_present)
        except Exception:  # an exception escaping a paho callback would stop its network thread
            log.exception("handling the connection failed")

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        # connected means "commands reach us": the broker has the subscription in this device's session
        if reason_codes and not reason_codes[0].is_failure:
            self.connected.set()
        else:
            log.error("the broker refused the subscription to this device's commands: %s", reason_codes)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """Runs in paho's thread; the broker gets its acknowledgement when this returns, so the command is
        journaled first."""
        try:
            command = parse(Command, message.payload)
        except ProtocolError as exc:
            log.warning("refused a command on %s: %s", message.topic, exc)  # the message, never the payload
            return
        try:
            self._accept(command, bytes(message.payload))
        except Exception:
            log.exception("journaling command %s failed", command.id)

    def _accept(self, command: Command, payload: bytes) -> None:
        if command.id in self._pending:
            log.info("command %s was already received; ignoring the redelivery", command.id)
            return
        if command.id in self.store.done_ids():
            # done here, but the control plane sends it again: our answer was lost (a broker restart
            # at 1,000 devices dropped queued answers), so say where this device stands once more
            log.info("command %s is done; publishing the state again for the control plane", command.id)
            self._publish(self.state(), retain=True)
            return
        if len(self._pending) >= self.config.max_pending_commands:
            log.error("%d commands are waiting; dropping command %s", len(self._pending), command.id)
            return
        path = self.store.add_to_journal(next(self._seq), command.id, payload)
        self._pending.add(command.id)
        self._commands.put((path, command))

    def _publish(self, message: Message, retain: bool = False) -> Any:
        import paho.mqtt.client as mqtt

        info = self._client.publish(topic(self.device_id, message.TOPIC_KIND), encode(message), qos=QOS, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:  # kept, and sent once the broker is back (QoS 1)
            return info
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("%s not queued for the broker (paho rc %s)", message.TOPIC_KIND, info.rc)
            return None
        return info

    def _event(self, kind: str, command: Command | None, sha: str | None, reason: str | None = None,
               probe_accuracy: float | None = None) -> None:
        self._publish(Event(v=PROTOCOL_VERSION, device_id=self.device_id, kind=kind, ts=time.time(),
                            command_id=command.id if command else None, rollout=command.rollout if command else None,
                            sha256=sha, active=self.store.pointer("active"),
                            reason=reason_text(reason) if reason else None, probe_accuracy=probe_accuracy))

    # --- the worker: commands in order, telemetry every window ---
    def _recover(self) -> None:
        """Before connecting: pick up journaled commands, clear what a crash left half-done, load the active bundle."""
        waiting = []
        for path in self.store.journal():
            try:
                command = parse(Command, path.read_bytes())
            except (OSError, ProtocolError) as exc:
                log.error("dropping unreadable journal entry %s: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            waiting.append(command.install.sha256 if command.install else None)
            self._pending.add(command.id)
            self._commands.put((path, command))
        self.store.collect(keep={sha for sha in waiting if sha})
        self._load_active()

    def _load_active(self) -> None:
        """Serve the active bundle after checking it again (its files may have changed since); when it fails,
        go back to the previous version if that passes, and say so in an event."""
        active = self.store.pointer("active")
        if active is None:
            return
        try:
            self._serve(self._recheck(active))
            return
        except EdgeslmError as exc:
            failure = f"the active bundle fails its check at start: {exc}"
        previous = self.store.pointer("previous")
        if previous is not None:
            try:
                engine = self._recheck(previous)
            except EdgeslmError as exc:
                failure += f"; the previous version fails too: {exc}"
            else:
                self._serve(engine, lambda: self.store.swap_back(previous))
                log.error("%s; serving the previous version %s", failure, previous[:16])
                self._event("rolled_back", None, active, reason=failure, probe_accuracy=self._accuracy(previous))
                return
        log.error("%s; no verified model serves on this device", failure)
        self._event("rollback_failed", None, active, reason=failure)

    def _recheck(self, sha: str) -> Any:
        """The engine of an installed bundle whose signature, files and health check pass again, and whose policy
        (if it serves with one) passes its signature and checks again."""
        install.verify(self.store.bundle_dir(sha), self.trust, ())
        policy = self.store.policy_of(sha)
        if policy is not None:
            install.verify_policy(self.store.policy_path(policy), self.trust, ())
        return install.check(self.store.bundle_dir(sha), None, self.profile.threads).engine

    def _serve(self, engine: Any, switch: Callable[[], Any] | None = None) -> None:
        """Serve `engine`. `switch`, the store's change of the `active` link, runs under the same lock: a request
        sees the old link and engine or the new ones, never the new link before its engine is in place."""
        with self._engine_lock:
            if switch is not None:
                switch()
            old, self._engine = self._engine, engine if self.config.keep_engine else None
        install.close_engine(old)
        if not self.config.keep_engine:
            install.close_engine(engine)

    def _work(self) -> None:
        next_report = time.monotonic() + self.config.telemetry_interval_s
        while not self._stop.is_set():
            try:
                item = self._commands.get(timeout=max(0.0, next_report - time.monotonic()))
            except queue.Empty:
                item = None
            if item is not None:
                path, command = item
                try:
                    self._handle(command)
                except Exception:
                    log.exception("command %s failed unexpectedly", command.id)
                try:
                    self.store.mark_done(command.id)
                    path.unlink(missing_ok=True)
                except OSError as exc:  # a full disk must not stop the worker: the journal entry is redone, harmlessly
                    log.error("cannot record command %s as done: %s", command.id, exc.strerror)
                self._pending.discard(command.id)
            if time.monotonic() >= next_report and not self._stop.is_set():
                self._report_telemetry()
                next_report = time.monotonic() + self.config.telemetry_interval_s

    def _report_telemetry(self) -> None:
        active = self.store.pointer("active")
        self._publish(self.telemetry.snapshot(self.device_id, active, self._accuracy(active)))

    def _accuracy(self, sha: str | None) -> float | None:
        """The probe accuracy measured when `sha` was activated, from its note."""
        value = self.store.note(sha).get("probe_accuracy") if sha else None
        return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else None

    def _handle(self, command: Command) -> None:
        log.info("command %s: %s", command.id, command.action)
        if command.action == "install":
            self._install(command)
        elif command.action == "rollback":
            self._rollback(command)
        else:
            self._report_telemetry()
        self._publish(self.state(), retain=True)

    def _install(self, command: Command) -> None:
        spec = command.install
        assert spec is not None  # Command.validate: an install command carries its spec
        sha = spec.sha256
        policy = spec.policy.sha256 if spec.policy else None
        if sha == self.store.pointer("active") and policy in (None, self.store.policy_of(sha)):
            self._event("install_activated", command, sha, reason="already active", probe_accuracy=self._accuracy(sha))
            return
        self._installing = sha
        self._publish(self.state(), retain=True)
        self._event("install_started", command, sha)
        target = self.store.bundle_dir(sha)
        try:
            if not target.is_dir():  # a bundle kept as `previous` is checked again, not fetched again
                self._fetch(spec, target)
            signer = install.verify(target, self.trust, spec.signers)
            staged_policy = None
            if spec.policy is not None:  # checked before the (slower) load and probe set
                headers = {"Authorization": f"Bearer {self.credentials.secret}"}
                staged_policy, _ = install.fetch_policy(spec.policy, self.store.root / "staging", headers,
                                                        self.config.download_timeout_s, self.config.download_attempts,
                                                        self.trust, spec.signers)
            self._event("install_verified", command, sha)
            checked = install.check(target, spec.probe, self.profile.threads)
            if staged_policy is not None:
                try:
                    self.store.add_policy(policy, staged_policy)
                except OSError as exc:
                    install.close_engine(checked.engine)
                    raise install.InstallError(f"cannot keep the policy: {exc.strerror}") from None
        except EdgeslmError as exc:
            if target.is_dir() and sha not in self.store.kept():
                shutil.rmtree(target, ignore_errors=True)
            self._installing = None
            self._event("install_failed", command, sha, reason=str(exc), probe_accuracy=getattr(exc, "probe_accuracy", None))
            log.warning("install of %s failed: %s", sha[:16], exc)
            return
        # the bundle's policy goes into its note: with the `active` link, a rollback swaps both back
        self.store.write_note(sha, {"name": checked.name, "bytes": _folder_bytes(target), "signed_by": signer,
                                    "probe_accuracy": checked.probe_accuracy, "probe_size": checked.probe_size,
                                    "installed_at": time.time(), "policy": policy})
        self._serve(checked.engine, lambda: self.store.activate(sha))  # the commit point: one rename of the `active` link
        self._installing = None
        self._event("install_activated", command, sha, probe_accuracy=checked.probe_accuracy)
        log.info("bundle %s (%s) is active", sha[:16], checked.name)

    def _fetch(self, spec: Any, target: Path) -> None:
        part = self.store.partial(spec.sha256)
        have = part.stat().st_size if part.exists() else 0
        install.check_disk(self.store.root, (spec.size - have) + spec.size)  # the rest of the archive, then its unpacked copy
        headers = {"Authorization": f"Bearer {self.credentials.secret}"}  # DEVICE_ID.SECRET, from enrolment
        install.download(spec, part, headers, self.config.download_timeout_s, self.config.download_attempts)
        root = install.unpack(part, self.store.root / "staging", spec.sha256)
        try:
            root.rename(target)
        except OSError as exc:
            raise install.InstallError(f"cannot move the unpacked bundle into place: {exc.strerror}") from None
        finally:
            self.store.collect(keep={spec.sha256})  # empties staging
        part.unlink(missing_ok=True)

    def _rollback(self, command: Command) -> None:
        active = self.store.pointer("active")
        target = command.rollback_to or self.store.pointer("previous")
        if target is None or not self.store.bundle_dir(target).is_dir():
            self._event("rollback_failed", command, target, reason="no previous version is installed on this device")
            return
        if target == active:
            self._event("rolled_back", command, target, reason=command.reason or "already active")
            return
        try:
            engine = self._recheck(target)
        except EdgeslmError as exc:
            self._event("rollback_failed", command, target, reason=f"the previous version fails its check: {exc}")
            return
        self._serve(engine, lambda: self.store.swap_back(target))
        # sha256: the bundle rolled back from; active: the one serving now
        self._event("rolled_back", command, active, reason=command.reason, probe_accuracy=self._accuracy(target))
        log.info("rolled back from %s to %s", (active or "none")[:16], target[:16])


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
