"""A Mosquitto process on this machine, started and stopped by edgeslm: the broker of `edgeslm fleet simulate` and of
the fleet tests (a deployment runs Debian's mosquitto service with the same password file and ACL instead). It listens
on a port picked free once, so a restart comes back on the same address; persistence is on, so a restart keeps the
clients' sessions and queued messages; no anonymous client may connect.

    broker = Mosquitto(folder, MosquittoConfig(password_file=folder / "passwd", acl_file=folder / "acl"))
    broker.start()    # FOLDER/mosquitto.pid then holds its pid: BrokerFiles(pid_file=...) SIGHUPs it after a rewrite
    broker.restart()  # SIGTERM (it saves its sessions), then the same port again
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgeslm.config import Config
from edgeslm.errors import ConfigError, EdgeslmError
from edgeslm.fleet.proc import cpu_seconds, more_files

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def find_mosquitto() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise ConfigError("mosquitto is not installed: apt-get install -y mosquitto (Debian's package; `make test` "
                          "installs it)")
    return exe


@dataclass(frozen=True)
class MosquittoConfig(Config):
    """What goes into mosquitto.conf beside the listener and persistence. The defaults are Mosquitto's own."""

    password_file: Path  # fleet/broker.BrokerFiles writes it from the registry (or agent/protocol.write_passwd)
    acl_file: Path  # agent/protocol.acl_lines: each device reads and writes only its own topics
    autosave_interval_s: int = 1  # how often sessions and queued messages are saved besides at exit
    sys_interval_s: int = 10  # how often the $SYS counters are published
    # messages kept per client beyond those in flight; the control plane's session takes a burst from every device
    max_queued_messages: int = 1000
    max_inflight_messages: int = 20
    log_connections: bool = True  # information-level log and a line per connection (tests read them); off for a fleet

    def validate(self) -> None:
        for name in ("autosave_interval_s", "sys_interval_s", "max_queued_messages", "max_inflight_messages"):
            if not 1 <= getattr(self, name) <= 10_000_000:
                raise ConfigError(f"MosquittoConfig.{name}: in [1, 10000000], got {getattr(self, name)}")


class Mosquitto:
    def __init__(self, folder: Path, config: MosquittoConfig):
        self.exe = find_mosquitto()
        self.folder, self.config = Path(folder), config
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host, self.port = HOST, free_port()
        self.conf = self.folder / "mosquitto.conf"
        self.log = self.folder / "mosquitto.log"
        self.pid_file = self.folder / "mosquitto.pid"
        self.proc: subprocess.Popen | None = None
        self.cpu_s = 0.0  # of the runs that ended
        self.write_config()

    def write_config(self) -> None:
        c = self.config
        (self.folder / "data").mkdir(exist_ok=True)
        levels = ["error", "warning", "notice", *(["information"] if c.log_connections else [])]
        self.conf.write_text("\n".join([
            f"listener {self.port} {self.host}", "allow_anonymous false",
            f"password_file {c.password_file}", f"acl_file {c.acl_file}",
            "persistence true", f"persistence_location {self.folder / 'data'}/", f"autosave_interval {c.autosave_interval_s}",
            f"sys_interval {c.sys_interval_s}", f"max_queued_messages {c.max_queued_messages}",
            f"max_inflight_messages {c.max_inflight_messages}",
            f"log_dest file {self.log}", *(f"log_type {level}" for level in levels),
            f"connection_messages {'true' if c.log_connections else 'false'}",
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to user mosquitto and lose our files
            ""]))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running else None

    def start(self, timeout_s: float = 15.0) -> None:
        with (self.folder / "mosquitto.stderr").open("wb") as err:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)
        more_files(self.proc.pid)  # before any client connects: it listens only after reading its files
        self.pid_file.write_text(f"{self.proc.pid}\n")  # what the control plane SIGHUPs after writing the password file
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise EdgeslmError(f"mosquitto exited with {code}: {self._why()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EdgeslmError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout_s:g} s: {self._why()}")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its sessions and queued messages (persistence) before it exits."""
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

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password file and ACL (between two network loops: asynchronously)."""
        if self.running:
            self.proc.send_signal(signal.SIGHUP)

    def cpu(self) -> float:
        """CPU seconds of every run so far."""
        return self.cpu_s + (cpu_seconds(self.proc.pid) if self.pid else 0.0)

    def _why(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.folder / "mosquitto.stderr", self.log) if p.exists()]
        return "".join(parts).strip()[-2000:] or "no output"

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
