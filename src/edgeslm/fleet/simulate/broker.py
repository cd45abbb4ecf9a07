"""The simulator's Mosquitto (fleet/mosquitto.py) set for a fleet: the control plane writes its password file, its queues
hold a burst from every device, and it publishes $SYS counters every second, which SysMonitor reads and sums across
restarts."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from edgeslm.fleet.mosquitto import Mosquitto, MosquittoConfig

SYS_TOPICS = ("messages/received", "messages/sent", "publish/messages/received", "publish/messages/sent",
              "bytes/received", "bytes/sent", "clients/connected")


def fleet_broker(folder: Path, devices: int) -> Mosquitto:
    """A Mosquitto whose password file the control plane writes (FOLDER/auth/passwd, rewritten and SIGHUPed after each
    enrolment through FOLDER/mosquitto.pid), with the agents' ACL plus read access to $SYS for the control plane's
    account, which the simulator's monitor logs in with."""
    from edgeslm.agent.protocol import acl_lines
    from edgeslm.fleet.broker import CONTROL_PLANE_USER

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    acl = acl_lines([CONTROL_PLANE_USER])
    at = acl.index(f"user {CONTROL_PLANE_USER}") + 1
    (folder / "acl").write_text("\n".join([*acl[:at], "topic read $SYS/broker/#", *acl[at:]]) + "\n")
    # the control plane's queue must hold a burst from every device: when the broker comes back, each device publishes
    # presence and state, and the control plane's new subscription delivers both retained messages again (4 per
    # device); Mosquitto's default (1000) dropped device events at 1,000 devices, and a dropped install_activated left
    # the rollout waiting for devices that had long finished
    return Mosquitto(folder, MosquittoConfig(
        password_file=folder / "auth" / "passwd", acl_file=folder / "acl", autosave_interval_s=60, sys_interval_s=1,
        max_queued_messages=max(1000, 10 * devices), max_inflight_messages=20, log_connections=False))


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
        self.client.on_disconnect = self._on_disconnect
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

    def _on_disconnect(self, *_: Any) -> None:
        # paho calls this after every message of the old connection was handled, so no count of a stopped broker read
        # late (the restart runs on another thread) can stand in for the new broker's
        with self._lock:
            self.last.pop("clients/connected", None)

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

