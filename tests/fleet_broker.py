"""A real Mosquitto for the fleet tests (tests/agent, tests/fleet): started on a free port with a generated
config (persistence on, the ACL and password file the product writes, no anonymous clients), restartable on
the same port with its persisted sessions, stopped at the end.

Load it by path (--import-mode=importlib keeps tests/ off sys.path), as tests/agent/conftest.py does:
    spec = importlib.util.spec_from_file_location("fleet_broker", Path(__file__).parents[1] / "fleet_broker.py")
A missing mosquitto is an error, never a skip: `make test` installs Debian's package.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from edgeslm.agent.protocol import write_acl, write_passwd

ADMIN = "controlplane"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """users: MQTT username -> password; ADMIN is the control plane's user (reads and writes every device topic)."""

    def __init__(self, folder: Path, users: dict[str, str]):
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            raise RuntimeError("mosquitto is not installed: run `make test` (it installs Debian's mosquitto package) "
                               "or apt-get install -y mosquitto")
        self.exe = exe
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.users = dict(users)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "mosquitto.log"
        self.conf = self.folder / "mosquitto.conf"
        self._write_files()

    def _write_files(self) -> None:
        write_passwd(self.folder / "passwd", self.users)
        write_acl(self.folder / "acl", [ADMIN])
        (self.folder / "data").mkdir(exist_ok=True)
        self.conf.write_text("\n".join([
            f"listener {self.port} {self.host}",
            "allow_anonymous false",
            f"password_file {self.folder / 'passwd'}",
            f"acl_file {self.folder / 'acl'}",
            "persistence true",
            f"persistence_location {self.folder / 'data'}/",
            "autosave_interval 1",
            f"log_dest file {self.log}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to user mosquitto and lose our files
            "",
        ]))

    def add_user(self, name: str, password: str) -> None:
        """Enrol another client: rewrite the password file, then SIGHUP makes mosquitto reload it."""
        self.users[name] = password
        write_passwd(self.folder / "passwd", self.users)
        if self.running:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self._why()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout_s} s: {self._why()}")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queued messages (persistence) before it exits."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _why(self) -> str:
        err = self.proc.stderr.read().decode(errors="replace") if self.proc and self.proc.stderr else ""
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return (err + tail).strip()[-2000:] or "no output"

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def client(broker: Broker, username: str, client_id: str | None = None, clean: bool = True):
    """A connected paho client (MQTT 3.1.1) for a test to observe or publish with; caller disconnects it."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{username}-{os.getpid()}-{time.time_ns()}",
                    clean_session=clean, protocol=mqtt.MQTTv311)
    c.username_pw_set(username, broker.users[username])
    c.connect(broker.host, broker.port, keepalive=30)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not c.is_connected():
        if time.monotonic() > deadline:
            c.loop_stop()
            raise RuntimeError(f"{username} could not connect to mosquitto on port {broker.port}")
        time.sleep(0.01)
    return c
