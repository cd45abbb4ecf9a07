"""`edgeslm fleet simulate`: a fleet of N devices on this machine, to measure what a rollout costs the control plane and
the broker. Everything is the product's own: a real Mosquitto (password file written by the control plane, persistence
on, $SYS statistics every second), the real control plane in its own process (registry, HTTP API under uvicorn, MQTT link,
rollout engine: what `edgeslm fleet server` runs), and real agents (agent/agent.py: journal, resumable download,
signature and file checks, probe set, atomic swap) spread over a few processes, each enrolled through the HTTP API.

    report = simulate(SimulateConfig(devices=1000, processes=4, faults=["offline", "kill", "broker-restart"]))

Two rollouts run: release 1 to every device (no faults: every device then has a working model), then release 2 with
the faults injected while it runs. Faults:
  offline        a share of devices is switched off (their agents stop cleanly) before release 2 starts, and back on
                 `offline_s` later: they must get release 2 when they return;
  kill           a process holding another share of devices is SIGKILLed as soon as one of them is downloading, and
                 started again `kill_down_s` later: the agents resume from their journal and their partial downloads;
  broker-restart Mosquitto is stopped (it saves its sessions) when the first device activated release 2, and started
                 `broker_down_s` later on the same port: every client reconnects and nothing queued is lost.
The devices' state folders are on tmpfs (/dev/shm) when there is one: each real device has its own flash, and 1,000
agents fsyncing one disk would measure that disk, not the fleet.
"""

from __future__ import annotations

import getpass
import json
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import ConfigError, EdgeslmError

log = logging.getLogger(__name__)

FAULTS = ("offline", "kill", "broker-restart")
BUNDLE_NAME = "sim-intent"
GROUP = "sim"
PROFILE = "sim-box"
DEVICE_FACTS = {"profile": PROFILE, "isa": ["avx2"], "memory_bytes": 512 << 20}
SYS_TOPICS = ("messages/received", "messages/sent", "publish/messages/received", "publish/messages/sent",
              "bytes/received", "bytes/sent", "clients/connected")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SimulateConfig(Config):
    devices: int = 100
    processes: int = 4  # agent processes for the healthy devices; each fault's devices get one more of their own
    faults: list = field(default_factory=list)  # any of FAULTS
    fault_fraction: float = 0.05  # of the devices, for each of "offline" and "kill"
    offline_s: float = 20.0  # how long the offline devices stay away after release 2 starts
    kill_down_s: float = 2.0  # how long the killed agents stay dead
    broker_down_s: float = 3.0
    db: str | None = None  # a postgresql:// URL; default SQLite in the work folder
    bundle_kib: int = 64  # filler in the bundle standing in for weights: what each device downloads and hashes
    canary_fraction: float = 0.05
    waves: list = field(default_factory=lambda: [1.0])
    telemetry_interval_s: float = 60.0  # the agents' default: one telemetry message per device per minute
    reconnect_max_s: float = 10.0  # the agents' longest wait between reconnection attempts
    start_spread_s: float = 10.0  # the agents of a process start over this long (a fleet does not boot in one instant)
    timeout_s: float = 600.0  # per rollout
    workdir: str | None = None  # kept afterwards when given; default a temporary folder, removed
    device_dir: str | None = None  # the devices' state folders; default /dev/shm (tmpfs) when there is one

    def validate(self) -> None:
        if not 1 <= self.devices <= 20_000:
            raise ConfigError(f"SimulateConfig.devices: in [1, 20000], got {self.devices}")
        if not 1 <= self.processes <= 64:
            raise ConfigError(f"SimulateConfig.processes: in [1, 64], got {self.processes}")
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown or len(set(self.faults)) != len(self.faults):
            raise ConfigError(f"SimulateConfig.faults: each at most once, of {', '.join(FAULTS)}; got {self.faults}")
        if not 0 < self.fault_fraction <= 0.4:
            raise ConfigError(f"SimulateConfig.fault_fraction: in (0, 0.4], got {self.fault_fraction}")
        for name in ("offline_s", "kill_down_s", "broker_down_s"):
            if not 0 <= getattr(self, name) <= 3600:
                raise ConfigError(f"SimulateConfig.{name}: in [0, 3600] seconds")
        if not 0 <= self.bundle_kib <= 1 << 20:
            raise ConfigError("SimulateConfig.bundle_kib: in [0, 1048576]")
        if not 1 <= self.timeout_s <= 86400 or not 0 <= self.start_spread_s <= 600:
            raise ConfigError("SimulateConfig.timeout_s: in [1, 86400]; start_spread_s in [0, 600]")
        if not 0.05 <= self.telemetry_interval_s <= 86400 or not 1 <= self.reconnect_max_s <= 3600:
            raise ConfigError("SimulateConfig.telemetry_interval_s: in [0.05, 86400]; reconnect_max_s in [1, 3600]")
        from edgeslm.fleet.rollout import RolloutConfig

        RolloutConfig(bundle=BUNDLE_NAME, release="1", group=GROUP, canary_fraction=self.canary_fraction,
                      waves=list(self.waves))  # its own checks of the waves

    def fault_devices(self) -> int:
        return max(1, round(self.fault_fraction * self.devices))


# --- processes: CPU and memory from /proc ------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of proc(5))


def peak_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def more_files(pid: int = 0) -> None:
    """Raise a process's soft limit on open files to its hard limit: a socket per device, and the usual default soft
    limit (1024) is below a fleet."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the broker --------------------------------------------------------------------------------------------------

class Mosquitto:
    """A Mosquitto on a fixed port whose password file the control plane writes (auth/passwd, rewritten and SIGHUPed
    after each enrolment through pid_file), with the agents' ACL plus read access to $SYS for the control plane's
    account, which the simulator's monitor logs in with."""

    def __init__(self, folder: Path, devices: int):
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            raise ConfigError("mosquitto is not installed: apt-get install -y mosquitto (Debian's package)")
        self.exe, self.folder = exe, Path(folder)
        self.auth = self.folder / "auth"  # the control plane's BrokerFiles write passwd (and an acl we do not use) here
        self.pid_file = self.folder / "mosquitto.pid"
        self.host, self.port = "127.0.0.1", free_port()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.devices = devices
        self.cpu_s = 0.0  # of the runs that ended

    def write_config(self) -> None:
        from edgeslm.agent.protocol import acl_lines
        from edgeslm.fleet.broker import CONTROL_PLANE_USER

        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        acl = acl_lines([CONTROL_PLANE_USER])
        at = acl.index(f"user {CONTROL_PLANE_USER}") + 1
        (self.folder / "acl").write_text("\n".join([*acl[:at], "topic read $SYS/broker/#", *acl[at:]]) + "\n")
        (self.folder / "mosquitto.conf").write_text("\n".join([
            f"listener {self.port} {self.host}", "allow_anonymous false",
            f"password_file {self.auth / 'passwd'}", f"acl_file {self.folder / 'acl'}",
            "persistence true", f"persistence_location {self.folder / 'data'}/", "autosave_interval 60",
            # the control plane's queue must hold a burst from every device: when the broker comes back, each device
            # publishes presence and state, and the control plane's new subscription delivers both retained messages
            # again (4 per device); Mosquitto's default (1000) dropped device events at 1,000 devices, and a dropped
            # install_activated left the rollout waiting for devices that had long finished
            "sys_interval 1", f"max_queued_messages {max(1000, 10 * self.devices)}", "max_inflight_messages 20",
            f"log_dest file {self.folder / 'mosquitto.log'}", "log_type error", "log_type warning", "log_type notice",
            "connection_messages false", f"user {getpass.getuser()}", ""]))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, timeout_s: float = 15.0) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.folder / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        more_files(self.proc.pid)  # before any device connects: it listens only after reading its files
        self.pid_file.write_text(f"{self.proc.pid}\n")  # what the control plane SIGHUPs after writing the password file
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgeslmError(f"mosquitto exited with {self.proc.returncode}; see {self.folder / 'mosquitto.log'}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EdgeslmError(f"mosquitto did not listen on port {self.port} within {timeout_s:g} s")

    def cpu(self) -> float:
        return self.cpu_s + (cpu_seconds(self.proc.pid) if self.pid else 0.0)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its sessions and queued messages before it exits."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.cpu_s += cpu_seconds(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class SysMonitor:
    """Mosquitto's $SYS counters, summed across broker restarts (each restart starts them at 0 again)."""

    def __init__(self, broker: Mosquitto, password: str):
        import paho.mqtt.client as mqtt

        from edgeslm.fleet.broker import CONTROL_PLANE_USER

        self._lock = threading.Lock()
        self.last: dict[str, int] = {}
        self.base: dict[str, int] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeslm-simulate-sys-{os.getpid()}",
                                  clean_session=True, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(CONTROL_PLANE_USER, password)
        self.client.reconnect_delay_set(0.2, 2.0)
        self.client.on_connect = lambda c, *_: c.subscribe([(f"$SYS/broker/{t}", 0) for t in SYS_TOPICS])
        self.client.on_message = self._on_message
        self.client.connect_async(broker.host, broker.port, 30)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        name = message.topic.removeprefix("$SYS/broker/")
        try:
            value = int(float(message.payload.decode()))
        except ValueError:
            return
        with self._lock:
            if name != "clients/connected" and value < self.last.get(name, 0):  # the broker restarted
                self.base[name] = self.base.get(name, 0) + self.last[name]
            self.last[name] = value

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {name: self.base.get(name, 0) + value for name, value in self.last.items()}

    def connected(self) -> int:
        with self._lock:
            return self.last.get("clients/connected", 0)

    def broker_restarted(self) -> None:
        """Forget the old broker's client count: the new one publishes its own once clients are back."""
        with self._lock:
            self.last.pop("clients/connected", None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- the control plane's process ---------------------------------------------------------------------------------

class _Counting:
    """ASGI middleware (the simulator's instrument, not the product's): requests and body bytes by route kind."""

    def __init__(self, app: Any, stats: dict[str, int]):
        self.app, self.stats = app, stats

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        kind = "archive" if scope["path"].endswith("/archive") else "enrol" if scope["path"] == "/v1/enrol" else "other"
        self.stats[f"http_{kind}_requests"] = self.stats.get(f"http_{kind}_requests", 0) + 1

        ranged = dict(scope["headers"]).get(b"range", b"bytes=0-")

        async def counted(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 206 and ranged != b"bytes=0-":
                self.stats["http_archive_resumed"] = self.stats.get("http_archive_resumed", 0) + 1  # a download resumed
            elif message["type"] == "http.response.body":
                self.stats[f"http_{kind}_bytes"] = self.stats.get(f"http_{kind}_bytes", 0) + len(message.get("body", b""))
            await send(message)
        await self.app(scope, receive, counted)


def _count_transactions(db: Any, stats: dict[str, int]) -> None:
    """Count the registry's write and read transactions (the simulator's instrument: the same object every part uses)."""
    inner = db.transaction

    def transaction(write: bool = True) -> Any:
        key = "db_write_transactions" if write else "db_read_transactions"
        stats[key] = stats.get(key, 0) + 1
        return inner(write)
    db.transaction = transaction


def _control_plane_main(spec: dict[str, Any], conn: Any) -> None:
    """The control plane as `edgeslm fleet server` composes it (server.build: registry, admin token, broker files; the
    API under uvicorn; the MQTT link and the rollout engine), until the simulator says stop."""
    logging.basicConfig(filename=spec["log"], level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    more_files()
    from edgeslm.fleet.broker import control_plane_password
    from edgeslm.fleet.link import DeviceLink, LinkConfig
    from edgeslm.fleet.rollout_engine import EngineConfig, RolloutEngine
    from edgeslm.fleet.server import FleetServerConfig, build, uvicorn_server

    stats: dict[str, int] = {}
    app = build(FleetServerConfig(state=spec["state"], db=spec["db"], trust=spec["trust"], host="127.0.0.1", port=0,
                                  mosquitto_dir=spec["mosquitto_dir"], mosquitto_pid_file=spec["mosquitto_pid_file"]))
    _count_transactions(app.registry.db, stats)
    server = uvicorn_server(_Counting(app.asgi(), stats), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    conn.send({"url": url, "pid": os.getpid()})
    link = DeviceLink(app.registry, LinkConfig(broker_host=spec["broker_host"], broker_port=spec["broker_port"],
                                               reconnect_min_s=0.2, reconnect_max_s=2.0),
                      control_plane_password(Path(spec["state"])))
    engine = RolloutEngine(app.registry, link, EngineConfig(public_url=url))
    link.start()
    engine.start()
    try:
        while True:
            message = conn.recv()
            if message == "stop":
                break
            if message == "stats":
                conn.send({**stats, "link_received": link.received, "link_refused": link.refused,
                           "link_connected": link.connected.is_set(), "threads": threading.active_count()})
    finally:
        engine.stop()
        link.stop()
        server.should_exit = True
        thread.join(10)
        app.registry.close()


class ControlPlane:
    def __init__(self, spec: dict[str, Any]):
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks inherited from ours
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_control_plane_main, args=(spec, child), name="edgeslm-controlplane", daemon=True)
        self.proc.start()
        if not self._conn.poll(120):
            raise EdgeslmError(f"the control plane did not start within 120 s; see {spec['log']}")
        hello = self._conn.recv()
        self.url, self.pid = hello["url"], hello["pid"]

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return self._conn.recv() if self._conn.poll(30) else {}

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self._conn.send("stop")
            except OSError:
                pass
            self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)


# --- agent processes ---------------------------------------------------------------------------------------------

def _agents_main(spec: dict[str, Any]) -> None:
    """Many real agents in one process, each with its own MQTT connection, state folder and credentials file."""
    logging.basicConfig(filename=spec["log"], level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    more_files()
    from edgeslm.agent.agent import Agent
    from edgeslm.agent.config import AgentConfig
    from edgeslm.runtime.profiles import DeviceProfile

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    profile = DeviceProfile(name=PROFILE, memory_budget_mb=512, cores=1, threads=1, watts_idle=2.0, watts_busy=6.0,
                            isa=tuple(DEVICE_FACTS["isa"]))
    agents = []
    pause = spec["start_spread_s"] / max(1, len(spec["devices"]))
    for state_dir in spec["devices"]:
        if stop.is_set():
            break
        config = AgentConfig(profile=PROFILE, state_dir=Path(state_dir), broker_host=spec["broker_host"],
                             broker_port=spec["broker_port"], credentials=Path(state_dir) / "credentials.json",
                             trust=Path(spec["trust"]), telemetry_interval_s=spec["telemetry_interval_s"],
                             reconnect_min_s=1.0, reconnect_max_s=spec["reconnect_max_s"], keep_engine=False)
        agent = Agent(config, profile=profile)
        agent.start()
        agents.append(agent)
        stop.wait(pause)
    stop.wait()
    with ThreadPoolExecutor(32) as pool:  # each stop says offline and waits for its worker: in parallel
        list(pool.map(lambda a: a.stop(5.0), agents))


class AgentGroup:
    """One process of agents, which the simulator can stop (cleanly), kill and start again on the same folders."""

    def __init__(self, name: str, spec: dict[str, Any]):
        self.name, self.spec = name, spec
        self.devices = [Path(d) for d in spec["devices"]]
        self.proc: Any = None
        self.cpu_s = 0.0  # of the processes that ended

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(target=_agents_main, args=(self.spec,), name=f"edgeslm-sim-{self.name}", daemon=True)
        self.proc.start()

    def cpu(self) -> float:
        return self.cpu_s + (cpu_seconds(self.proc.pid) if self.proc is not None and self.proc.is_alive() else 0.0)

    def _ended(self) -> None:
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.cpu_s += cpu_seconds(self.proc.pid)
            self.proc.terminate()
            self.proc.join(60)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(10)
            self._ended()

    def kill(self) -> None:
        if self.proc is not None:
            self.cpu_s += cpu_seconds(self.proc.pid)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.join(10)
            self._ended()


def device_view(folder: Path, sha: str) -> str:
    """Where a device stands with bundle `sha`, read from its own folder: active, partial (downloading), journaled
    (the install command is in its journal), or waiting."""
    if _active(folder) == sha:
        return "active"
    part = folder / "downloads" / f"{sha}.part"
    if part.exists():
        return "partial"
    if any(".install." in p.name for p in (folder / "journal").glob("*.cmd")):
        return "journaled"
    return "waiting"


def _active(folder: Path) -> str | None:
    try:
        return Path(os.readlink(folder / "active")).name
    except OSError:
        return None


# --- the operator's side: the HTTP API ----------------------------------------------------------------------------

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


# --- the simulation ----------------------------------------------------------------------------------------------

class _Clock:
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
        return _Simulation(config, root, device_root, stack).run()


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


class _Simulation:
    def __init__(self, config: SimulateConfig, root: Path, device_root: Path, stack: ExitStack):
        self.config, self.root, self.device_root, self.stack = config, root, device_root, stack
        self.groups: list[AgentGroup] = []
        self.faults: dict[str, dict[str, Any]] = {}

    # -- set up ------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from edgeslm.fleet.sim_bundle import make_bundle
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
        self.broker = Mosquitto(root / "broker", c.devices)
        self.broker.write_config()
        state = root / "controlplane"
        self.cp = ControlPlane({"state": str(state), "db": c.db, "trust": str(keys.public), "log": str(root / "controlplane.log"),
                                "mosquitto_dir": str(self.broker.auth), "mosquitto_pid_file": str(self.broker.pid_file),
                                "broker_host": self.broker.host, "broker_port": self.broker.port})
        stack.callback(self.cp.stop)
        self.broker.start()  # after the control plane wrote its password file
        stack.callback(self.broker.stop)
        from edgeslm.fleet.broker import control_plane_password
        from edgeslm.fleet.credentials import load_or_create_admin_token

        self.monitor = SysMonitor(self.broker, control_plane_password(state))
        stack.callback(self.monitor.close)
        self.api = Api(self.cp.url, load_or_create_admin_token(state))
        self.clock = _Clock(self.cp, self.monitor)
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
        kinds = [f for f in ("offline", "kill") if f in c.faults]
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
        plan = _FaultPlan(self, sha, t0) if faults else None
        healthy_at = None
        state, record = "running", {}
        last_poll = last_look = 0.0
        while True:
            now = time.monotonic()
            if plan is not None:
                plan.tick(now)
            if healthy_at is None and now - last_look >= 0.2:
                last_look = now
                if all(_active(f) == sha for f in self.healthy):
                    healthy_at = now - t0
            if now - last_poll >= 0.5:
                last_poll = now
                record = next(r for r in self.api.call("GET", "/v1/rollouts?limit=5")["rollouts"] if r["id"] == rid)
                state = record["state"]
                if state not in ("running", "paused") and (plan is None or plan.done()):
                    break
            if now - t0 > c.timeout_s:
                break
            time.sleep(0.02 if plan is not None and plan.watching() else 0.2)
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


class _FaultPlan:
    """The faults of one rollout, driven by the simulator's loop (`tick`), each recording what it did."""

    def __init__(self, sim: _Simulation, sha: str, t0: float):
        self.sim, self.sha, self.t0 = sim, sha, t0
        c = sim.config
        self.kill = sim.fault_groups.get("kill")
        self.offline = sim.fault_groups.get("offline")
        self.broker = "broker-restart" in c.faults
        self.killed_at: float | None = None
        self.offline_back: float | None = None
        self.broker_at: float | None = None
        self.broker_back: float | None = None
        self.last_look = self.last_broker_look = 0.0
        if self.offline is not None:
            sim.faults["offline"] = {"devices": len(self.offline.devices), "off_before_rollout": True}
        if self.kill is not None:
            sim.faults["kill"] = {"devices": len(self.kill.devices)}
        if self.broker:
            sim.faults["broker-restart"] = {}

    def watching(self) -> bool:
        return self.kill is not None and self.killed_at is None

    def done(self) -> bool:
        """Every fault happened, and the clients the broker restart cut off are back (or the rollout's time is up)."""
        back = not self.broker or "reconnected_s" in self.sim.faults["broker-restart"]
        return back and all(x is not None for x, on in ((self.killed_at, self.kill), (self.offline_back, self.offline),
                                                        (self.broker_at, self.broker or None)) if on is not None)

    def tick(self, now: float) -> None:
        c, f = self.sim.config, self.sim.faults
        if self.kill is not None and self.killed_at is None:
            views = [device_view(d, self.sha) for d in self.kill.devices]
            # when a tenth of them are downloading (the main wave reached them); a small group at its first install
            busy = views.count("partial") + views.count("journaled")
            if views.count("active") == len(views):  # every one finished between two looks: nothing left to kill
                self.killed_at = now
                f["kill"].update({"missed": "every device of the group installed between two looks (20 ms apart)"})
            elif views.count("partial") >= max(1, len(views) // 10) or (busy and (len(views) < 20 or now - self.t0 > 30)):
                self.kill.kill()
                self.killed_at = now
                after = [device_view(d, self.sha) for d in self.kill.devices]  # what the kill left on each device
                f["kill"].update({"at_s": round(now - self.t0, 2), "signal": "SIGKILL",
                                  "states_at_kill": {s: after.count(s) for s in sorted(set(after))},
                                  "partial_bytes": sum((d / "downloads" / f"{self.sha}.part").stat().st_size
                                                       for d in self.kill.devices
                                                       if (d / "downloads" / f"{self.sha}.part").exists())})
        if self.killed_at is not None and self.kill.proc is None and now - self.killed_at >= c.kill_down_s:
            self.kill.start()
            f["kill"]["restarted_at_s"] = round(now - self.t0, 2)
        if self.offline is not None and self.offline_back is None and now - self.t0 >= c.offline_s:
            self.offline.start()
            self.offline_back = now
            f["offline"]["back_at_s"] = round(now - self.t0, 2)
        active = -1
        if self.broker and self.broker_at is None and now - self.last_broker_look >= 0.2:
            self.last_broker_look = now  # mid-wave: a quarter of the healthy devices on the new release
            active = sum(1 for d in self.sim.healthy if _active(d) == self.sha)
        if active >= max(1, len(self.sim.healthy) // 4):
            self.broker_at = now
            broker = self.sim.broker
            broker.stop()
            self.sim.monitor.broker_restarted()
            time.sleep(c.broker_down_s)
            broker.start()
            broker.restarts += 1
            f["broker-restart"].update({"at_s": round(now - self.t0, 2), "down_s": c.broker_down_s,
                                        "healthy_active_before": active, "of": len(self.sim.healthy)})
            self.broker_back = time.monotonic()
        if self.broker_back is not None and "reconnected_s" not in f["broker-restart"]:
            running = sum(len(g.devices) for g in self.sim.groups if g.proc is not None) + 2  # + the control plane, monitor
            if self.sim.monitor.connected() >= running:
                f["broker-restart"]["reconnected_s"] = round(time.monotonic() - self.broker_back, 2)
        for kind, group in (("kill", self.kill), ("offline", self.offline)):
            if group is not None and "all_reached_at_s" not in f[kind] and now - self.last_look >= 0.2:
                self.last_look = now
                if all(_active(d) == self.sha for d in group.devices):
                    f[kind]["all_reached_at_s"] = round(now - self.t0, 2)

    def finish(self) -> None:
        f, sim = self.sim.faults, self.sim
        for kind, group in (("kill", self.kill), ("offline", self.offline)):
            if group is not None:
                got = sum(1 for d in group.devices if _active(d) == self.sha)
                f[kind]["reached_release"] = f"{got} of {len(group.devices)}"
        if self.broker and self.broker_at is not None:
            f["broker-restart"]["clients_connected_after"] = sim.monitor.connected()


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise EdgeslmError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.25)
