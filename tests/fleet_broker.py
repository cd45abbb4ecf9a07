"""A real Mosquitto for the fleet tests (tests/agent, tests/fleet): the product's launcher (fleet/mosquitto.py: a free
port, persistence on, no anonymous clients, restartable on the same port with its persisted sessions) with the ACL and
a password file of the test's users written as the product writes them.

Load it by path (--import-mode=importlib keeps tests/ off sys.path), as tests/agent/conftest.py does:
    spec = importlib.util.spec_from_file_location("fleet_broker", Path(__file__).parents[1] / "fleet_broker.py")
A missing mosquitto is an error, never a skip: `make test` installs Debian's package.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgeslm.agent.protocol import write_acl, write_passwd
from edgeslm.fleet.mosquitto import Mosquitto, MosquittoConfig

ADMIN = "controlplane"


class Broker(Mosquitto):
    """users: MQTT username -> password; ADMIN is the control plane's user (reads and writes every device topic)."""

    def __init__(self, folder: Path, users: dict[str, str]):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.users = dict(users)
        write_passwd(folder / "passwd", self.users)
        write_acl(folder / "acl", [ADMIN])
        super().__init__(folder, MosquittoConfig(password_file=folder / "passwd", acl_file=folder / "acl"))


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
