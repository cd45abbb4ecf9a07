"""The control plane's MQTT client: it files what devices report (presence, inventory, telemetry, install and rollback
events) in the registry, hands device events to listeners (the rollout engine), and sends commands.

It connects as the control plane's MQTT user (fleet/broker.py) under a fixed client id with a persistent session,
so what devices publish while the control plane restarts waits at the broker (QoS 1) instead of being lost. Every
payload is parsed by agent/protocol.py before it is believed; a refused one is logged by topic, never by content.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.agent.protocol import (
    QOS,
    Command,
    Event,
    Message,
    Presence,
    ProtocolError,
    State,
    Telemetry,
    encode,
    parse_for_topic,
    subscription,
    topic,
)
from edgeslm.config import Config
from edgeslm.errors import ConfigError, EdgeslmError
from edgeslm.fleet.broker import CONTROL_PLANE_USER
from edgeslm.fleet.devices import Telemetry as TelemetryRow
from edgeslm.fleet.errors import NotFound
from edgeslm.fleet.registry import Registry

log = logging.getLogger(__name__)

DEVICE_EVENT = "device."  # prefix of the event-log kinds of what devices report (device.install_failed, ...)


@dataclass(frozen=True)
class LinkConfig(Config):
    broker_host: str
    broker_port: int
    client_id: str = "edgeslm-controlplane"  # one per control plane: its persistent session at the broker
    username: str = CONTROL_PLANE_USER
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    max_queued_messages: int = 100_000  # commands kept while the broker is away (one per device per step)
    tls_ca: Path | None = None

    def validate(self) -> None:
        if not self.broker_host:
            raise ConfigError("LinkConfig.broker_host: the MQTT broker's host")
        if not 1 <= self.broker_port <= 65535:
            raise ConfigError(f"LinkConfig.broker_port: in [1, 65535], got {self.broker_port}")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s <= 3600:
            raise ConfigError("LinkConfig.reconnect_min_s/max_s: need 0 < min <= max <= 3600 seconds")
        if not 5 <= self.keepalive_s <= 3600:
            raise ConfigError("LinkConfig.keepalive_s: in [5, 3600] seconds")


EventListener = Callable[[str, Event], None]
StateListener = Callable[[str, State], None]


class DeviceLink:
    def __init__(self, registry: Registry, config: LinkConfig, password: str):
        self.registry, self.config = registry, config
        self.connected = threading.Event()
        self.on_event: list[EventListener] = []
        self.on_state: list[StateListener] = []
        self.on_online: list[Callable[[str], None]] = []
        self._online_since: dict[str, float] = {}  # device -> ts of its latest online presence (a stale will is ignored)
        self.received = 0  # messages filed (a figure for the simulation's report)
        self.refused = 0
        self._stopping = False
        self._client = self._make_client(password)

    def _make_client(self, password: str) -> Any:
        import paho.mqtt.client as mqtt

        c = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=c.client_id, clean_session=False,
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(c.username, password)
        client.reconnect_delay_set(min_delay=c.reconnect_min_s, max_delay=c.reconnect_max_s)
        client.max_queued_messages_set(c.max_queued_messages)
        if c.tls_ca is not None:
            client.tls_set(ca_certs=str(c.tls_ca))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # --- life cycle ---
    def start(self) -> None:
        self._stopping = False
        self._client.connect_async(self.config.broker_host, self.config.broker_port, self.config.keepalive_s)
        self._client.loop_start()  # paho's thread: reconnects with backoff

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    def wait_connected(self, timeout_s: float) -> None:
        if not self.connected.wait(timeout_s):
            raise EdgeslmError(f"the control plane could not connect to the MQTT broker {self.config.broker_host}:"
                               f"{self.config.broker_port} within {timeout_s:g} s (is it running, and does its password "
                               "file hold the control plane's account? see edgeslm fleet server --mosquitto-dir)")

    # --- commands ---
    def send(self, device_id: str, command: Command) -> bool:
        """Queue a command for a device (QoS 1: paho keeps it until the broker has it, across reconnects). False when
        paho dropped it; the rollout engine sends it again after resend_s, as for any command left unanswered."""
        import paho.mqtt.client as mqtt

        info = self._client.publish(topic(device_id, "cmd"), encode(command), qos=QOS)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:  # paho keeps a QoS-1 message while disconnected and sends it on reconnect
            log.debug("command %s for %s queued until the broker is back", command.id, device_id)
            return True
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            log.warning("command %s for %s dropped: paho already holds %d unsent messages (max_queued_messages); "
                        "it goes again after resend_s", command.id, device_id, self.config.max_queued_messages)
            return False
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("command %s for %s not sent (paho rc %s); it goes again after resend_s", command.id, device_id,
                        info.rc)
            return False
        return True

    # --- what devices report ---
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            if reason_code.is_failure:
                log.error("the MQTT broker refused the control plane: %s", reason_code)
                return
            client.subscribe([(subscription(kind), QOS) for kind in ("presence", "state", "telemetry", "event")])
            self.connected.set()
            log.info("control plane connected to MQTT %s:%d (session present: %s)", self.config.broker_host,
                     self.config.broker_port, flags.session_present)
        except Exception:  # an exception escaping a paho callback stops its network thread
            log.exception("handling the MQTT connection failed")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("control plane disconnected from MQTT (%s); reconnecting", reason_code)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """paho acknowledges the message when this returns: it is filed in the registry first."""
        try:
            device_id, parsed = parse_for_topic(message.topic, bytes(message.payload))
        except ProtocolError as exc:
            self.refused += 1
            log.warning("refused a message on %s: %s", str(message.topic)[:120], exc)
            return
        try:
            self.file(device_id, parsed)
            self.received += 1
        except NotFound:
            log.warning("a message from %s, which the registry does not know (revoked or removed); dropped", device_id)
        except Exception:
            log.exception("filing a %s message from %s failed", type(parsed).__name__, device_id)

    def file(self, device_id: str, message: Message) -> None:
        """Record one parsed device message and tell the listeners."""
        reg = self.registry
        if isinstance(message, Presence):
            if message.status == "online":
                self._online_since[device_id] = message.ts
            elif message.ts < self._online_since.get(device_id, 0.0):
                return  # the will of a connection older than the one that said online since
            reg.record_presence(device_id, online=message.status == "online")
            if message.status == "online":
                for fn in self.on_online:
                    fn(device_id)
        elif isinstance(message, State):
            inventory = {k: v for k, v in message.to_dict().items() if k not in ("v", "device_id")}
            # the whole snapshot, None included: no policy in it means the device serves none
            reg.record_state(device_id, inventory=inventory, active_bundle=message.active, previous_bundle=message.previous,
                             active_policy=message.policy)
            for fn in self.on_state:
                fn(device_id, message)
        elif isinstance(message, Telemetry):
            lat = message.latency_ms
            reg.record_telemetry(device_id, TelemetryRow(
                window_start=message.window_start, window_end=message.window_end, requests=message.requests,
                errors=message.errors, escalations=message.escalations,
                latency_p50_ms=lat.p50_ms if lat else None, latency_p90_ms=lat.p90_ms if lat else None,
                latency_p99_ms=lat.p99_ms if lat else None,
                joules=message.joules_per_answer,  # per answer, as the agent measures it (runtime/energy.py)
                probe_accuracy=message.probe_accuracy, tier_shares=dict(message.tier_shares), bundle_sha256=message.active))
        elif isinstance(message, Event):
            details = {k: v for k, v in message.to_dict().items() if k not in ("v", "device_id", "kind", "reason") and v is not None}
            with reg.db.transaction() as tx:
                reg.log_event(tx, f"device:{device_id}", DEVICE_EVENT + message.kind, f"device:{device_id}",
                              message.reason or message.kind.replace("_", " "), details)
            for fn in self.on_event:
                fn(device_id, message)
