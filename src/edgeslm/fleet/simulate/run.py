"""The simulation itself: set up (bundles, keys, broker, control plane), enrol every device through the API, start the
agents, run release 1 and release 2 (with the faults), then check every device's own folder and report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edgeslm.errors import ConfigError, EdgeslmError
from edgeslm.fleet.proc import cpu_seconds, peak_rss_bytes
from edgeslm.fleet.simulate.agents import AgentGroup, active_sha
from edgeslm.fleet.simulate.broker import SysMonitor, fleet_broker
from edgeslm.fleet.simulate.config import BUNDLE_NAME, DEVICE_FACTS, GROUP, SimulateConfig
from edgeslm.fleet.simulate.controlplane import ControlPlane
from edgeslm.fleet.simulate.faults import FaultPlan


class Api:
    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def call(self, method: str, path: str, body: Any = None, data: bytes | None = None, auth: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read()[:500].decode(errors="replace")
            raise EdgeslmError(f"the control plane refused {method} {path}: HTTP {exc.code} {detail}") from None


class Clock:
    """Phase marks: wall time, control-plane CPU and broker counters at each."""

    def __init__(self, cp: ControlPlane, monitor: SysMonitor | None):
        self.cp, self.monitor = cp, monitor

    def mark(self) -> dict[str, Any]:
        return {"t": time.monotonic(), "cpu": cpu_seconds(self.cp.pid),
                "sys": self.monitor.counters() if self.monitor else {}, "cp": self.cp.stats()}

    def since(self, start: dict[str, Any], wait_sys: bool = True) -> dict[str, Any]:
        if wait_sys:
            time.sleep(1.5)  # $SYS is published every second: let the last second's counts arrive
        end = self.mark()
        wall = end["t"] - start["t"] - (1.5 if wait_sys else 0.0)
        cpu = end["cpu"] - start["cpu"]
        sys = {k: end["sys"].get(k, 0) - start["sys"].get(k, 0) for k in end["sys"] if k != "clients/connected"}
        cp = {k: v - start["cp"].get(k, 0) for k, v in end["cp"].items() if isinstance(v, int) and not isinstance(v, bool)
              and k != "threads"}
        return {"seconds": round(wall, 2), "controlplane_cpu_s": round(cpu, 2),
                "controlplane_avg_cores": round(cpu / wall, 3) if wall > 0 else None, "broker": sys, "controlplane": cp}


def simulate(config: SimulateConfig) -> dict[str, Any]:
    """Run the simulation and return its report (see the module's docstring)."""
    with ExitStack() as stack:
        if config.workdir:
            root = Path(config.workdir)
            root.mkdir(parents=True, exist_ok=True)
            if any(root.iterdir()):
                raise ConfigError(f"--workdir {root}: not empty; give a new or empty folder (its files are kept afterwards)")
        else:
            root = Path(tempfile.mkdtemp(prefix="edgeslm-simulate-"))
            stack.callback(shutil.rmtree, root, True)
        device_root = _device_root(config, root, stack)
        return Simulation(config, root, device_root, stack).run()


def _device_root(config: SimulateConfig, root: Path, stack: ExitStack) -> Path:
    if config.device_dir:
        path = Path(config.device_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        path = Path(tempfile.mkdtemp(prefix="edgeslm-simulate-devices-", dir="/dev/shm"))
        stack.callback(shutil.rmtree, path, True)
        return path
    return root / "devices"


class Simulation:
    def __init__(self, config: SimulateConfig, root: Path, device_root: Path, stack: ExitStack):
        self.config, self.root, self.device_root, self.stack = config, root, device_root, stack
        self.groups: list[AgentGroup] = []
        self.faults: dict[str, dict[str, Any]] = {}

    # -- set up ------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from edgeslm.fleet.simulate.bundle import make_bundle
        from edgeslm.formats.archive import write_archive
        from edgeslm.formats.signing import generate_keys, sign_bundle

        c, root, stack = self.config, self.root, self.stack
        t_setup = time.monotonic()
        keys = generate_keys(root / "keys", "simulate")
        archives = []
        for release in ("1", "2"):
            folder = make_bundle(root / "bundles" / release, BUNDLE_NAME, f"release {release}", c.bundle_kib << 10)
            sign_bundle(folder, keys.private)
            archive = root / "bundles" / f"{release}.tar"
            with archive.open("wb") as fh:
                write_archive(folder, fh)
            archives.append(archive)
        self.broker = fleet_broker(root / "broker", c.devices)
        state = root / "controlplane"
        self.cp = ControlPlane({"state": str(state), "db": c.db, "trust": str(keys.public), "log": str(root / "controlplane.log"),
                                "mosquitto_dir": str(self.broker.config.password_file.parent),
                                "mosquitto_pid_file": str(self.broker.pid_file),
                                "broker_host": self.broker.host, "broker_port": self.broker.port})
        stack.callback(self.cp.stop)
        self.broker.start()  # after the control plane wrote its password file
        stack.callback(self.broker.stop)
        from edgeslm.fleet.broker import control_plane_password
        from edgeslm.fleet.credentials import load_or_create_admin_token

        self.monitor = SysMonitor(self.broker, control_plane_password(state))
        stack.callback(self.monitor.close)
        self.api = Api(self.cp.url, load_or_create_admin_token(state))
        self.clock = Clock(self.cp, self.monitor)
        _wait(lambda: self.cp.stats().get("link_connected"), 30, "the control plane to connect to the broker")
        shas = [self.api.call("POST", f"/v1/bundles?release={i + 1}&variant=generic", data=a.read_bytes())["sha256"]
                for i, a in enumerate(archives)]
        self.sha1, self.sha2 = shas
        self.archive_bytes = archives[1].stat().st_size
        setup_s = time.monotonic() - t_setup

        mark = self.clock.mark()
        folders = self._enrol(keys.public)
        enrol = self.clock.since(mark, wait_sys=False)
        mark = self.clock.mark()
        for group in self.groups:
            group.start()
        stack.callback(self._stop_groups)
        n = len(folders)
        _wait(lambda: self.monitor.connected() >= n + 2, 120 + c.start_spread_s, f"{n} agents to connect to the broker")
        _wait(lambda: self._online() >= n, 60, "the control plane to see every device online")
        connect = self.clock.since(mark)

        first = self._rollout("1", self.sha1, faults=False)
        second = self._rollout("2", self.sha2, faults=True)
        stats = self.cp.stats()
        peak = peak_rss_bytes(self.cp.pid)
        registry_view = {d["id"]: d["active_bundle"] for d in self.api.call("GET", "/v1/devices")["devices"]}
        self._stop_groups()
        check = self._check_devices(keys.public)
        agents_cpu = sum(g.cpu() for g in self.groups)
        per_device = second["broker"].get("publish/messages/received", 0) + second["broker"].get("publish/messages/sent", 0)
        return {
            "devices": n, "processes": len(self.groups), "faults": self.faults,
            "rollout_seconds": second["rollout_seconds"], "healthy_reached_seconds": second["healthy_reached_seconds"],
            "rollout_state": second["state"], "halt_reason": second["halt_reason"],
            "devices_without_working_model": check["without_working_model"],
            "devices_on_release": check["on_release"], "registry_disagrees": sum(
                1 for d, sha in check["active"].items() if registry_view.get(d) != sha),
            "controlplane_cpu_s": second["controlplane_cpu_s"], "controlplane_avg_cores": second["controlplane_avg_cores"],
            "controlplane_peak_rss_mb": round(peak / (1 << 20), 1),
            "broker_messages_received": second["broker"].get("messages/received", 0),
            "broker_messages_sent": second["broker"].get("messages/sent", 0),
            "broker_publish_per_device": round(per_device / n, 2),
            "archive_bytes": self.archive_bytes, "bundle_kib": c.bundle_kib,
            "phases": {"setup": {"seconds": round(setup_s, 2)}, "enrol": enrol, "connect": connect,
                       "rollout_release_1": first, "rollout_release_2": second},
            "controlplane_counters": stats, "agents_cpu_s": round(agents_cpu, 1),
            "broker_cpu_s": round(self.broker.cpu(), 1),
            "machine": {"cpus": os.cpu_count(), "device_dir": str(self.device_root),
                        "db": "postgresql" if c.db else "sqlite"},
        }

    def _enrol(self, trust: Path) -> list[Path]:
        """Enrol every device through the HTTP API, as a device does, and give each its credentials file (0600)."""
        c = self.config
        self.api.call("POST", "/v1/groups", {"name": GROUP, "description": "simulated devices"})
        token = self.api.call("POST", "/v1/enrolment-tokens", {"group": GROUP, "uses": c.devices})["token"]

        def enrol(i: int) -> Path:
            creds = self.api.call("POST", "/v1/enrol", {"token": token, "name": f"sim{i}", **DEVICE_FACTS}, auth=False)
            folder = self.device_root / f"device-{i:05d}"
            folder.mkdir(parents=True)
            fd = os.open(folder / "credentials.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(creds, fh)
            return folder

        with ThreadPoolExecutor(8) as pool:
            folders = list(pool.map(enrol, range(c.devices)))
        k = c.fault_devices()
        kinds = c.device_faults()
        fault_sets = {kind: folders[len(folders) - (j + 1) * k: len(folders) - j * k] for j, kind in enumerate(kinds)}
        healthy = folders[: len(folders) - len(kinds) * k]
        base = {"broker_host": self.broker.host, "broker_port": self.broker.port, "trust": str(trust),
                "telemetry_interval_s": c.telemetry_interval_s, "reconnect_max_s": c.reconnect_max_s,
                "start_spread_s": c.start_spread_s}
        for p in range(c.processes):
            share = [str(f) for f in healthy[p::c.processes]]
            if share:
                self.groups.append(AgentGroup(f"agents-{p}", {**base, "devices": share, "log": str(self.root / f"agents-{p}.log")}))
        self.healthy = healthy
        self.fault_groups = {}
        for kind, members in fault_sets.items():
            group = AgentGroup(kind, {**base, "devices": [str(f) for f in members], "log": str(self.root / f"agents-{kind}.log")})
            self.groups.append(group)
            self.fault_groups[kind] = group
        return folders

    def _online(self) -> int:
        return sum(1 for d in self.api.call("GET", "/v1/devices")["devices"] if d["online"])

    def _stop_groups(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.groups))) as pool:
            list(pool.map(lambda g: g.stop(), self.groups))

    # -- a rollout -----------------------------------------------------------------------------------------------
    def _rollout(self, release: str, sha: str, faults: bool) -> dict[str, Any]:
        c = self.config
        offline = self.fault_groups.get("offline") if faults else None
        if offline is not None:  # switched off before the rollout starts: the control plane must wait for them
            offline.stop()
            expected = len(self.healthy) + sum(len(g.devices) for k, g in self.fault_groups.items() if k != "offline")
            _wait(lambda: self._online() <= expected, 60, "the control plane to see the offline devices go")
        mark = self.clock.mark()
        t0 = time.monotonic()
        body = {"bundle": BUNDLE_NAME, "release": release, "group": GROUP, "canary_fraction": c.canary_fraction,
                "waves": list(c.waves), "require_traffic": False, "observe_s": 0.0,
                "description": f"fleet simulate: release {release}"}
        rid = self.api.call("POST", "/v1/rollouts", body)["id"]
        plan = FaultPlan(self, sha, t0) if faults else None
        if plan is not None:
            plan.start()
        healthy_at = None
        state, record = "running", {}
        last_poll = last_look = 0.0
        while True:
            now = time.monotonic()
            if healthy_at is None and now - last_look >= 0.2:
                last_look = now
                if all(active_sha(f) == sha for f in self.healthy):
                    healthy_at = now - t0
            if now - last_poll >= 0.5:
                last_poll = now
                record = next(r for r in self.api.call("GET", "/v1/rollouts?limit=5")["rollouts"] if r["id"] == rid)
                state = record["state"]
                if state not in ("running", "paused") and (plan is None or plan.done(state == "completed")):
                    break
            if now - t0 > c.timeout_s:
                break
            time.sleep(0.2)
        rollout_s = time.monotonic() - t0
        phase = self.clock.since(mark)
        if plan is not None:
            plan.finish()
        return {"release": release, "rollout_id": rid, "state": state if rollout_s <= c.timeout_s else f"timed out ({state})",
                "halt_reason": record.get("halt_reason"), "counts": record.get("counts", {}),
                "rollout_seconds": round(rollout_s, 2),
                "healthy_reached_seconds": round(healthy_at, 2) if healthy_at is not None else None, **phase}

    # -- the end: every device's own folder ---------------------------------------------------------------------
    def _check_devices(self, trust: Path) -> dict[str, Any]:
        """A working model: the device's `active` bundle passes the agent's own checks again (signature by a trusted
        key, every file's sha256, it loads and answers)."""
        from edgeslm.agent import install
        from edgeslm.agent.store import DeviceStore
        from edgeslm.formats.signing import load_trust

        keys = load_trust(trust)
        active: dict[str, str | None] = {}
        without = 0
        for folder in sorted(self.device_root.glob("device-*")):
            device_id = json.loads((folder / "credentials.json").read_text())["device_id"]
            store = DeviceStore(folder)
            sha = store.pointer("active")
            active[device_id] = sha
            try:
                if sha is None:
                    raise EdgeslmError("nothing active")
                install.verify(store.bundle_dir(sha), keys, ())
                install.close_engine(install.check(store.bundle_dir(sha), None, 1).engine)
            except EdgeslmError:
                without += 1
        return {"active": active, "without_working_model": without,
                "on_release": sum(1 for sha in active.values() if sha == self.sha2)}


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise EdgeslmError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.25)
