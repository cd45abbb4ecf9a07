"""The agent's config (one object for `edgeslm fleet agent`) and the device credentials it reads from the
file the control plane's enrolment gave (POST /v1/enrol)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.agent.protocol import DEVICE_ID
from edgeslm.config import Config, is_decimal
from edgeslm.errors import ConfigError

MAX_CREDENTIALS_BYTES = 64 << 10


@dataclass(frozen=True)
class AgentConfig(Config):
    profile: str  # a device profile name or YAML (runtime/profiles.py): reported, and sets threads and watts
    state_dir: Path  # bundles/, active, previous, downloads/, journal/
    broker_host: str
    broker_port: int
    credentials: Path  # JSON from enrolment: device_id, secret, mqtt_username, mqtt_password
    trust: Path  # a .pub file or a folder of them: a bundle must be signed by one of these keys
    telemetry_interval_s: float = 60.0
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0  # paho doubles the wait after each failed attempt up to reconnect_max_s
    reconnect_max_s: float = 60.0
    download_timeout_s: float = 30.0  # per socket operation, not the whole download
    download_attempts: int = 3  # within one install command; a partial file is kept between attempts
    max_queued_messages: int = 1000  # outgoing QoS-1 messages kept while the broker is away (bounded memory)
    max_pending_commands: int = 64
    keep_engine: bool = True  # keep the active bundle loaded (serving); False: load it only to check it
    tls_ca: Path | None = None  # a CA file: connect with TLS (port 8883 in a real deployment)

    def validate(self) -> None:
        if not self.broker_host:
            raise ConfigError("AgentConfig.broker_host: must not be empty")
        if not 1 <= self.broker_port <= 65535:
            raise ConfigError(f"AgentConfig.broker_port: must be in [1, 65535], got {self.broker_port}")
        if not 0.05 <= self.telemetry_interval_s <= 86400:
            raise ConfigError("AgentConfig.telemetry_interval_s: must be in [0.05, 86400] seconds")
        if not 5 <= self.keepalive_s <= 3600:
            raise ConfigError("AgentConfig.keepalive_s: must be in [5, 3600] seconds")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s <= 3600:
            raise ConfigError("AgentConfig.reconnect_min_s/max_s: need 0 < min <= max <= 3600 seconds")
        if not 0.1 <= self.download_timeout_s <= 3600:
            raise ConfigError("AgentConfig.download_timeout_s: must be in [0.1, 3600] seconds")
        if not 1 <= self.download_attempts <= 100:
            raise ConfigError("AgentConfig.download_attempts: must be in [1, 100]")
        if self.max_queued_messages < 10 or self.max_pending_commands < 1:
            raise ConfigError("AgentConfig.max_queued_messages must be >= 10 and max_pending_commands >= 1")


def parse_broker(text: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port)."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not is_decimal(port) or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--broker {text!r}: give HOST:PORT, e.g. localhost:1883")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Credentials:
    """A device's secrets. repr and str never show them, so a log line or a traceback cannot leak them."""

    device_id: str
    mqtt_username: str
    mqtt_password: str = field(repr=False)
    secret: str = field(repr=False)  # the control plane's HTTP secret (bundle downloads)

    FIELDS = ("device_id", "mqtt_username", "mqtt_password", "secret")

    @classmethod
    def load(cls, path: Path) -> Credentials:
        path = Path(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the credentials file: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: the credentials file is not a regular file")
        if st.st_mode & 0o077:
            raise ConfigError(f"{path}: the credentials file is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                              f"run `chmod 600 {path}`")
        if st.st_size > MAX_CREDENTIALS_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CREDENTIALS_BYTES} bytes; not a credentials file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            raise ConfigError(f"{path}: not a JSON credentials file (save the enrolment's JSON answer)") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "credentials") -> Credentials:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object with {', '.join(cls.FIELDS)}")
        missing = [f for f in cls.FIELDS if f not in data]
        if missing:
            raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
        values = {}
        for name in cls.FIELDS:  # other fields an enrolment answer carries (the broker's address, ...) are not secrets we use
            value = data[name]
            if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
                raise ConfigError(f"{where}: {name} must be 1-256 printable characters")
            values[name] = value
        if not DEVICE_ID.fullmatch(values["device_id"]):
            raise ConfigError(f"{where}: device_id {values['device_id'][:80]!r} is not a device id")
        if values["mqtt_username"] != values["device_id"]:
            # the broker's ACL patterns confine a device by its username (protocol.acl_lines)
            raise ConfigError(f"{where}: mqtt_username must equal device_id, got {values['mqtt_username'][:80]!r}")
        return cls(**values)
