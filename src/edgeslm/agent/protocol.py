"""The fleet's MQTT protocol, written as code: topics, the payload of every message both sides send, and
the broker's access rules. The control plane imports this module; a device never trusts a payload it
has not parsed here.

Topics: edgeslm/v1/dev/{device_id}/{kind}, kind one of
  cmd        control plane -> device: install a bundle, roll back, report now (QoS 1, not retained)
  state      device -> control plane: inventory (QoS 1, retained: the latest is always there)
  telemetry  device -> control plane: aggregates over a window, never request text (QoS 1)
  event      device -> control plane: install started/verified/activated/failed, rolled back (QoS 1)
  presence   device -> control plane: online, or offline as the last will (QoS 1, retained)

A device's MQTT username is its device id, so one set of ACL patterns (`acl_lines`) confines every
device to its own topics and enrolling a device changes only the password file (`write_passwd`).

Payloads are UTF-8 JSON objects with "v": PROTOCOL_VERSION. Parsing is strict: size-capped before
parsing, repeated keys, NaN and unknown fields refused, every type and range checked; any failure is
a ProtocolError, never another exception.

Protocol version history:
  1 - first release (Install.policy and State.policy, both optional, were added before any device ran it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from edgeslm.errors import ConfigError, EdgeslmError
from edgeslm.formats import strict_json

PROTOCOL_VERSION = 1
TOPIC_ROOT = "edgeslm/v1/dev"
KINDS = ("cmd", "state", "telemetry", "event", "presence")
DEVICE_KINDS = ("state", "telemetry", "event", "presence")  # what a device publishes
QOS = 1
MAX_PAYLOAD_BYTES = 256 << 10  # an inline probe set of a few hundred texts fits; nothing we send is near it
MAX_DEPTH = 8  # the deepest message nests 4 (command -> install -> probe -> items -> item)
MAX_TEXT = 2000  # characters of one free-text field (a probe text, a failure reason)
MAX_TIERS = 16  # tier names in one telemetry window
MAX_INSTALLED = 64  # bundles one state message lists
MAX_PROBE_ITEMS = 1000
MAX_SIGNERS = 16
MAX_TIME = 1e11  # seconds since the epoch, past the year 5000: refuses a timestamp in ms or ns by mistake
MAX_BUNDLE_BYTES = 64 << 30
MAX_POLICY_BYTES = 1 << 20  # runtime/tiers/policy.py's cap

DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # no '/', '+', '#': it sits in topics and ACL patterns
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")  # command, rollout, bundle, profile, tier names
SHA256 = re.compile(r"[0-9a-f]{64}")
URL = re.compile(r"https?://[^\s]{1,2040}")
EVENT_KINDS = ("install_started", "install_verified", "install_activated", "install_failed", "rolled_back",
               "rollback_failed")
ACTIONS = ("install", "rollback", "report")
PRESENCE = ("online", "offline")


class ProtocolError(EdgeslmError):
    """An MQTT payload or topic that is not one this protocol version defines."""


# --- topics -------------------------------------------------------------------------------------------------

def topic(device_id: str, kind: str) -> str:
    """The topic of one device's `kind` messages."""
    _check_device_id(device_id)
    if kind not in KINDS:
        raise ProtocolError(f"topic kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return f"{TOPIC_ROOT}/{device_id}/{kind}"


def subscription(kind: str) -> str:
    """The control plane's wildcard subscription for one kind from every device."""
    if kind not in KINDS:
        raise ProtocolError(f"topic kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return f"{TOPIC_ROOT}/+/{kind}"


def parse_topic(name: str) -> tuple[str, str]:
    """(device_id, kind) of a topic this protocol defines."""
    if not isinstance(name, str) or not name.startswith(TOPIC_ROOT + "/"):
        raise ProtocolError(f"topic {str(name)[:80]!r} is not under {TOPIC_ROOT}/")
    parts = name[len(TOPIC_ROOT) + 1:].split("/")
    if len(parts) != 2 or parts[1] not in KINDS or not DEVICE_ID.fullmatch(parts[0]):
        raise ProtocolError(f"topic {name[:80]!r} is not {TOPIC_ROOT}/DEVICE_ID/{{{'|'.join(KINDS)}}}")
    return parts[0], parts[1]


def _check_device_id(device_id: Any) -> None:
    if not isinstance(device_id, str) or not DEVICE_ID.fullmatch(device_id):
        raise ProtocolError(f"device id {str(device_id)[:80]!r}: use 1-64 letters, digits, '_', '.' or '-', "
                            "starting with a letter or digit")


# --- payloads -----------------------------------------------------------------------------------------------

M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    """A payload: validated on construction, so a message that exists can always be encoded and parsed back."""

    TOPIC_KIND: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_value(f"{type(self).__name__}.{f.name}", getattr(self, f.name), hints[f.name])
        self.validate()

    def validate(self) -> None:
        """Ranges and patterns; subclasses raise ProtocolError."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Message):
                value = value.to_dict()
            elif isinstance(value, list):
                value = [v.to_dict() if isinstance(v, Message) else v for v in value]
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out


def encode(message: Message) -> bytes:
    """The payload bytes of a message, checked against the same cap the parser applies."""
    data = json.dumps(message.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{type(message).__name__}: {len(data)} bytes encoded, over the {MAX_PAYLOAD_BYTES}-byte cap; "
                            "ship a large probe set inside the bundle instead of in the command")
    return data


def parse(cls: type[M], payload: bytes | bytearray | memoryview) -> M:
    """Parse untrusted payload bytes as a `cls` message, or raise ProtocolError."""
    name = cls.__name__
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"{name}: payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{name}: payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte cap")
    try:
        data = strict_json.loads(bytes(payload))
    except UnicodeDecodeError:
        raise ProtocolError(f"{name}: payload is not UTF-8") from None
    except (ValueError, RecursionError) as exc:  # bad JSON, a repeated key, NaN, a 5,000-digit int, deep nesting
        raise ProtocolError(f"{name}: payload is not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    if strict_json.depth(data, stop_past=MAX_DEPTH) > MAX_DEPTH:
        raise ProtocolError(f"{name}: nested deeper than {MAX_DEPTH} levels")
    return _build(cls, data, name)


def _build(cls: type[M], data: Any, where: str) -> M:
    if not isinstance(data, dict):
        raise ProtocolError(f"{where}: expected a JSON object, got {_json_type(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(repr(u)[:40] for u in unknown[:5])}; "
                            f"known: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING]
    if missing:
        raise ProtocolError(f"{where}: missing field(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    values = {key: _convert(f"{where}.{key}", value, hints[key]) for key, value in data.items()}
    try:
        return cls(**values)
    except ProtocolError:
        raise
    except (TypeError, ValueError) as exc:  # (defence in depth: validate() raises ProtocolError itself)
        raise ProtocolError(f"{where}: {exc}") from None


def _convert(where: str, value: Any, hint: Any) -> Any:
    """JSON value -> the field's Python value: nested messages built, lists and dicts walked."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        return None  # _check_value refuses it where None is not allowed
    for option in options:
        origin = typing.get_origin(option)
        if isinstance(option, type) and issubclass(option, Message):
            return _build(option, value, where)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            return [_convert(f"{where}[{i}]", v, item) for i, v in enumerate(value)]
    return value


def _check_value(where: str, value: Any, hint: Any) -> None:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if _is(value, option):
            return
    names = " or ".join(_type_name(o) for o in options)
    raise ProtocolError(f"{where}: expected {names}, got {_json_type(value)}")


def _is(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str) and _encodable(value)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_is(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(_is(k, key) and _is(v, item) for k, v in value.items())
    return isinstance(hint, type) and isinstance(value, hint)


def _encodable(text: str) -> bool:
    """A lone surrogate ("\\udce9" in JSON) parses into a str that no log, file or terminal can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", None) or str(hint)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


# range and pattern checks shared by the messages
def _version(owner: str, v: int) -> None:
    if v != PROTOCOL_VERSION:
        raise ProtocolError(f"{owner}.v: protocol version {v} is not the one this edgeslm speaks ({PROTOCOL_VERSION}); "
                            "upgrade the older side")


def _match(where: str, value: str | None, pattern: re.Pattern[str], what: str) -> None:
    if value is not None and not pattern.fullmatch(value):
        raise ProtocolError(f"{where}: {value[:80]!r} is not {what}")


def _range(where: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise ProtocolError(f"{where}: {value} is outside [{low}, {high}]")


def _text(where: str, value: str | None, limit: int = MAX_TEXT) -> None:
    if value is not None and (len(value) > limit or not value.isprintable()):
        raise ProtocolError(f"{where}: must be printable text of at most {limit} characters")


def _time(where: str, value: float) -> None:
    _range(where, value, 0, MAX_TIME)


SHA = "a sha256 (64 lowercase hex digits)"
A_NAME = "a name (1-128 letters, digits, '_', '.', ':' or '-')"


@dataclass(frozen=True)
class ProbeItem(Message):
    """One labelled text of a probe set: the bundle must predict `label` for `text`."""

    text: str
    label: str

    def validate(self) -> None:
        if not self.text:
            raise ProtocolError("ProbeItem.text: must not be empty")
        _text("ProbeItem.text", self.text)
        if not self.label:
            raise ProtocolError("ProbeItem.label: must not be empty")
        _text("ProbeItem.label", self.label, 200)


@dataclass(frozen=True)
class Probe(Message):
    """The probe set a new bundle must pass before it serves: a JSONL file inside the (signed) bundle, or
    items given in the command; accuracy must reach `min_accuracy`."""

    min_accuracy: float
    file: str | None = None  # a path inside the bundle, listed in its manifest
    items: list[ProbeItem] | None = None

    def validate(self) -> None:
        _range("Probe.min_accuracy", self.min_accuracy, 0.0, 1.0)
        if (self.file is None) == (self.items is None):
            raise ProtocolError("Probe: give exactly one of file (inside the bundle) or items (in the command)")
        if self.file is not None:
            parts = self.file.split("/")
            if (not self.file or len(self.file) > 256 or "\\" in self.file or any(p in ("", ".", "..") for p in parts)
                    or not self.file.isprintable()):
                raise ProtocolError(f"Probe.file: {self.file[:80]!r} must be a plain relative path inside the bundle")
        if self.items is not None and not 1 <= len(self.items) <= MAX_PROBE_ITEMS:
            raise ProtocolError(f"Probe.items: give 1 to {MAX_PROBE_ITEMS} items, got {len(self.items)}")


@dataclass(frozen=True)
class PolicyRef(Message):
    """The adaptive policy (router and cache thresholds) a device serves with the bundle: `url` answers the control
    plane's policy record (the file's text and its signature file's text); the device checks the text's sha256, then
    the signature against its trusted keys, before the policy is kept."""

    sha256: str  # of the policy file's bytes: what its signature covers
    url: str
    size: int

    def validate(self) -> None:
        _match("PolicyRef.sha256", self.sha256, SHA256, SHA)
        _match("PolicyRef.url", self.url, URL, "an http:// or https:// URL")
        _range("PolicyRef.size", self.size, 1, MAX_POLICY_BYTES)


@dataclass(frozen=True)
class Install(Message):
    """What to install: the archive (an uncompressed tar of the signed bundle folder) by its sha256, where
    to fetch it, who must have signed it, and the probe set it must pass."""

    sha256: str  # of the archive's bytes: its content address
    url: str
    size: int  # archive bytes: the device checks its free disk before downloading
    signers: list[str] = dataclasses.field(default_factory=list)  # key ids allowed; empty: any key the device trusts
    probe: Probe | None = None
    name: str | None = None  # the bundle's name, for people reading events
    policy: PolicyRef | None = None  # installed with the bundle, and rolled back with it

    def validate(self) -> None:
        _match("Install.sha256", self.sha256, SHA256, SHA)
        _match("Install.url", self.url, URL, "an http:// or https:// URL")
        _range("Install.size", self.size, 1, MAX_BUNDLE_BYTES)
        if len(self.signers) > MAX_SIGNERS:
            raise ProtocolError(f"Install.signers: at most {MAX_SIGNERS} key ids")
        for key in self.signers:
            _match("Install.signers", key, SHA256, "a key id (64 lowercase hex digits)")
        _match("Install.name", self.name, NAME, A_NAME)


@dataclass(frozen=True)
class Command(Message):
    """Control plane -> device, on topic(device, "cmd")."""

    TOPIC_KIND: ClassVar[str] = "cmd"
    v: int
    id: str  # unique per command: a device acts on a command id once, however often QoS 1 delivers it
    action: str  # install | rollback | report
    issued_at: float
    rollout: str | None = None
    install: Install | None = None  # action == install
    rollback_to: str | None = None  # action == rollback: this installed sha256; None: the previous version
    reason: str | None = None  # why the control plane sent it (a gate that failed), echoed in events

    def validate(self) -> None:
        _version("Command", self.v)
        _match("Command.id", self.id, NAME, A_NAME)
        if self.action not in ACTIONS:
            raise ProtocolError(f"Command.action: must be one of {', '.join(ACTIONS)}, got {self.action[:40]!r}")
        _time("Command.issued_at", self.issued_at)
        _match("Command.rollout", self.rollout, NAME, A_NAME)
        if (self.action == "install") != (self.install is not None):
            raise ProtocolError("Command.install: required for action install, and only there")
        if self.rollback_to is not None and self.action != "rollback":
            raise ProtocolError("Command.rollback_to: only for action rollback")
        _match("Command.rollback_to", self.rollback_to, SHA256, SHA)
        _text("Command.reason", self.reason)


@dataclass(frozen=True)
class BundleInfo(Message):
    """An installed bundle, as a device's inventory lists it."""

    sha256: str
    name: str
    bytes: int

    def validate(self) -> None:
        _match("BundleInfo.sha256", self.sha256, SHA256, SHA)
        _text("BundleInfo.name", self.name, 200)
        _range("BundleInfo.bytes", self.bytes, 0, MAX_BUNDLE_BYTES * 4)


@dataclass(frozen=True)
class State(Message):
    """Device -> control plane, retained: the device's inventory."""

    TOPIC_KIND: ClassVar[str] = "state"
    v: int
    device_id: str
    profile: str
    free_memory_mb: int
    free_disk_mb: int
    installed: list[BundleInfo]
    active: str | None  # sha256 of the serving bundle
    previous: str | None  # what a rollback returns to
    agent_version: str
    ts: float
    installing: str | None = None  # sha256 of an install in progress
    policy: str | None = None  # sha256 of the policy file the active bundle serves with

    def validate(self) -> None:
        _version("State", self.v)
        _check_device_id(self.device_id)
        _text("State.profile", self.profile, 200)
        _range("State.free_memory_mb", self.free_memory_mb, 0, 1 << 40)
        _range("State.free_disk_mb", self.free_disk_mb, 0, 1 << 40)
        if len(self.installed) > MAX_INSTALLED:
            raise ProtocolError(f"State.installed: at most {MAX_INSTALLED} bundles")
        for name in ("active", "previous", "installing", "policy"):
            _match(f"State.{name}", getattr(self, name), SHA256, SHA)
        _text("State.agent_version", self.agent_version, 64)
        _time("State.ts", self.ts)


@dataclass(frozen=True)
class Latency(Message):
    p50_ms: float
    p90_ms: float
    p99_ms: float

    def validate(self) -> None:
        for name in ("p50_ms", "p90_ms", "p99_ms"):
            _range(f"Latency.{name}", getattr(self, name), 0.0, 1e9)
        if not self.p50_ms <= self.p90_ms <= self.p99_ms:
            raise ProtocolError("Latency: need p50_ms <= p90_ms <= p99_ms")


@dataclass(frozen=True)
class Telemetry(Message):
    """Device -> control plane: what the active bundle did over one window. Counts and rates only: no request
    text, no answer text, no secret ever goes into this message."""

    TOPIC_KIND: ClassVar[str] = "telemetry"
    v: int
    device_id: str
    active: str | None
    window_start: float
    window_end: float
    requests: int
    errors: int
    escalations: int  # requests sent past the first tier
    error_rate: float
    escalation_rate: float
    latency_ms: Latency | None  # None: no request in the window
    tier_shares: dict[str, float]  # tier name -> share of requests it answered
    joules_per_answer: float | None
    probe_accuracy: float | None  # of the active bundle, measured when it was activated

    def validate(self) -> None:
        _version("Telemetry", self.v)
        _check_device_id(self.device_id)
        _match("Telemetry.active", self.active, SHA256, SHA)
        _time("Telemetry.window_start", self.window_start)
        _time("Telemetry.window_end", self.window_end)
        if self.window_end < self.window_start:
            raise ProtocolError("Telemetry: window_end is before window_start")
        for name in ("requests", "errors", "escalations"):
            _range(f"Telemetry.{name}", getattr(self, name), 0, 1 << 53)
        if self.errors > self.requests or self.escalations > self.requests:
            raise ProtocolError("Telemetry: errors and escalations cannot exceed requests")
        for name in ("error_rate", "escalation_rate", "probe_accuracy"):
            _range(f"Telemetry.{name}", getattr(self, name), 0.0, 1.0)
        _range("Telemetry.joules_per_answer", self.joules_per_answer, 0.0, 1e9)
        if len(self.tier_shares) > MAX_TIERS:
            raise ProtocolError(f"Telemetry.tier_shares: at most {MAX_TIERS} tiers")
        for tier, share in self.tier_shares.items():
            _match("Telemetry.tier_shares", tier, NAME, A_NAME)
            _range(f"Telemetry.tier_shares[{tier}]", share, 0.0, 1.0)


@dataclass(frozen=True)
class Event(Message):
    """Device -> control plane: a step of an install or a rollback, with the reason when it failed."""

    TOPIC_KIND: ClassVar[str] = "event"
    v: int
    device_id: str
    kind: str
    ts: float
    command_id: str | None = None
    rollout: str | None = None
    sha256: str | None = None  # the bundle the event is about
    active: str | None = None  # what serves after the event
    reason: str | None = None
    probe_accuracy: float | None = None

    def validate(self) -> None:
        _version("Event", self.v)
        _check_device_id(self.device_id)
        if self.kind not in EVENT_KINDS:
            raise ProtocolError(f"Event.kind: must be one of {', '.join(EVENT_KINDS)}, got {self.kind[:40]!r}")
        _time("Event.ts", self.ts)
        _match("Event.command_id", self.command_id, NAME, A_NAME)
        _match("Event.rollout", self.rollout, NAME, A_NAME)
        _match("Event.sha256", self.sha256, SHA256, SHA)
        _match("Event.active", self.active, SHA256, SHA)
        _text("Event.reason", self.reason)
        _range("Event.probe_accuracy", self.probe_accuracy, 0.0, 1.0)


@dataclass(frozen=True)
class Presence(Message):
    """Device -> control plane, retained. The offline one is the device's last will: the broker publishes it
    when the device vanishes, so its `ts` is the time the device connected."""

    TOPIC_KIND: ClassVar[str] = "presence"
    v: int
    device_id: str
    status: str
    ts: float

    def validate(self) -> None:
        _version("Presence", self.v)
        _check_device_id(self.device_id)
        if self.status not in PRESENCE:
            raise ProtocolError(f"Presence.status: must be online or offline, got {self.status[:40]!r}")
        _time("Presence.ts", self.ts)


MESSAGES: dict[str, type[Message]] = {cls.TOPIC_KIND: cls for cls in (Command, State, Telemetry, Event, Presence)}


def parse_for_topic(name: str, payload: bytes) -> tuple[str, Message]:
    """(device_id, message) of a payload received on one of the protocol's topics."""
    device_id, kind = parse_topic(name)
    message = parse(MESSAGES[kind], payload)
    sender = getattr(message, "device_id", device_id)
    if sender != device_id:  # the ACL lets a device write only its own topics; its payload must agree
        raise ProtocolError(f"{kind} on {name[:80]!r} names device {sender!r}")
    return device_id, message


# --- the broker's access rules -------------------------------------------------------------------------------

def acl_lines(admin_users: Sequence[str]) -> list[str]:
    """Mosquitto's acl_file: each admin (the control plane) reads and writes every device's topics; any other
    user is a device whose username is its id, and may read only its own cmd topic and write only its own
    state, telemetry, event and presence topics. Anything not granted is denied."""
    if not admin_users:
        raise ConfigError("acl_lines: name at least one admin user (the control plane's MQTT user)")
    lines = ["# written by edgeslm (agent/protocol.py): do not edit, it is regenerated"]
    for user in admin_users:
        _check_user(user)
        lines += [f"user {user}", f"topic readwrite {TOPIC_ROOT}/#", ""]
    lines.append("# every other user is a device: its MQTT username is its device id")
    lines.append(f"pattern read {TOPIC_ROOT}/%u/cmd")
    lines += [f"pattern write {TOPIC_ROOT}/%u/{kind}" for kind in DEVICE_KINDS]
    return lines


def write_acl(path: Path, admin_users: Sequence[str]) -> None:
    _write_atomic(Path(path), ("\n".join(acl_lines(admin_users)) + "\n").encode("utf-8"))


def write_passwd(path: Path, users: Mapping[str, str], binary: str = "mosquitto_passwd") -> None:
    """Mosquitto's password_file for `users` (username -> password), hashed by Debian's mosquitto_passwd.
    Plain passwords touch the disk only in a 0600 file beside `path` that is hashed in place (`-U`) and renamed
    over it, never on a command line where `ps` would show them."""
    exe = shutil.which(binary)
    if exe is None:
        raise ConfigError(f"{binary} not found: install Debian's mosquitto package (apt-get install -y mosquitto)")
    for user, password in users.items():
        _check_user(user)
        if not isinstance(password, str) or not password or not password.isprintable() or len(password) > 256:
            raise ConfigError(f"the MQTT password of {user!r} must be 1-256 printable characters")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(f"{user}:{password}\n" for user, password in users.items())
        done = subprocess.run([exe, "-U", tmp], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise ConfigError(f"{binary} -U failed (exit {done.returncode}): {done.stderr.strip()[:200]}")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_user(user: Any) -> None:
    # a username is a device id or the control plane's name: the same alphabet keeps ACL patterns and the
    # password file (user:hash lines) unambiguous
    if not isinstance(user, str) or not DEVICE_ID.fullmatch(user):
        raise ConfigError(f"MQTT username {str(user)[:80]!r}: use 1-64 letters, digits, '_', '.' or '-'")


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def reason_text(text: str, limit: int = 500) -> str:
    """A failure reason as an Event may carry it: one printable line, cut to `limit` characters."""
    line = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
