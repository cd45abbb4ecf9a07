"""The broker's files written by the control plane (fleet/broker.py), read by a real Mosquitto: an enrolled
device logs in with the MQTT password it was given once (the registry kept only its hash), a wrong password
and a revoked device are refused, and the control plane's own account works."""

from __future__ import annotations

import importlib.util
import os
import stat
import time
from pathlib import Path

import pytest

from edgeslm.fleet.broker import CONTROL_PLANE_USER, BrokerFiles, control_plane_password
from edgeslm.fleet.credentials import mosquitto_hash
from edgeslm.fleet.schemas import EnrolRequest, EnrolTokenConfig

_spec = importlib.util.spec_from_file_location("fleet_broker", Path(__file__).parents[1] / "fleet_broker.py")
fleet_broker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_broker)


def _can_connect(broker, user: str, password: str) -> bool:
    """Whether Mosquitto accepts the login: its CONNACK, success or refusal, decides (no waiting out a timeout)."""
    import threading

    import paho.mqtt.client as mqtt

    answered, result = threading.Event(), []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        result.append(not reason_code.is_failure)
        answered.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.time_ns()}", protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.on_connect = on_connect
    c.connect(broker.host, broker.port, keepalive=10)
    c.loop_start()
    try:
        assert answered.wait(10), "Mosquitto did not answer the CONNECT"
        return result[0]
    finally:
        c.disconnect()
        c.loop_stop()


def test_mosquitto_hash_matches_mosquitto_passwd(tmp_path: Path):
    """Our hash of a password is the one Debian's mosquitto_passwd writes, given its salt."""
    import base64
    import subprocess

    path = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), "alice", "s3cret"], check=True, capture_output=True)
    _, hashed = path.read_text().strip().split(":", 1)
    salt = base64.b64decode(hashed.split("$")[3])
    assert mosquitto_hash("s3cret", salt) == hashed


def test_enrolled_devices_log_in_and_revoked_ones_cannot(tmp_path: Path):
    from edgeslm.fleet.registry import Registry, RegistryConfig

    registry = Registry.open(RegistryConfig(db=str(tmp_path / "r.sqlite"), store=str(tmp_path / "store")))
    tok = registry.create_enrolment_token(EnrolTokenConfig(uses=2), "admin")
    a, b = (registry.enrol(EnrolRequest(token=tok["token"], profile="rpi4")) for _ in range(2))
    with fleet_broker.Broker(tmp_path / "broker", {CONTROL_PLANE_USER: "placeholder-replaced-below"}) as broker:
        state = tmp_path / "state"
        state.mkdir()
        (state / "mosquitto.pid").write_text(str(broker.proc.pid))
        files = BrokerFiles(broker.folder, state, pid_file=state / "mosquitto.pid")  # SIGHUPs it after each write
        files.write(registry)
        registry.on_credentials_changed.append(files)
        assert stat.S_IMODE(os.stat(broker.folder / "passwd").st_mode) == 0o600
        assert a["mqtt_password"] not in (broker.folder / "passwd").read_text()
        time.sleep(0.5)  # (the SIGHUP is asynchronous: Mosquitto rereads between network loops)
        assert _can_connect(broker, a["mqtt_username"], a["mqtt_password"])
        assert _can_connect(broker, CONTROL_PLANE_USER, control_plane_password(state))
        assert not _can_connect(broker, a["mqtt_username"], b["mqtt_password"])
        registry.revoke_device(a["device_id"], "admin", "lost")  # the hook rewrites the files and signals the broker
        time.sleep(0.5)
        assert not _can_connect(broker, a["mqtt_username"], a["mqtt_password"])
        assert _can_connect(broker, b["mqtt_username"], b["mqtt_password"])
    registry.close()


def test_control_plane_password_file_is_private(tmp_path: Path):
    first = control_plane_password(tmp_path)
    assert control_plane_password(tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / "mqtt-controlplane-password").st_mode) == 0o600
    os.chmod(tmp_path / "mqtt-controlplane-password", 0o644)
    with pytest.raises(Exception, match="chmod 600"):
        control_plane_password(tmp_path)
