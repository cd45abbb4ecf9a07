"""What an operator or a device may ask of the control plane, one validated Config per verb. The API builds
them from request bodies with `parse` (unknown or missing fields refused, each problem named), the CLI
and the library from arguments; either way the same ranges hold."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.runtime.profiles import ISA_FLAGS

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # names: releases, variants, groups, profiles
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}")  # tags may carry a value: site=lyon
MAX_TAGS = 32
MAX_TEXT = 200
MAX_POLICY_CHARS = 1 << 20
MAX_SIGNATURE_CHARS = 4096
MAX_MEMORY_BYTES = 1 << 50
MAX_ENROL_USES = 100_000
MAX_TOKEN_TTL_S = 90 * 86400

C = TypeVar("C", bound=Config)


def check_label(value: Any, where: str, pattern: re.Pattern[str] = LABEL) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{where}: {str(value)[:80]!r} is not a name: 1-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    return value


def check_tags(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ConfigError(f"{where}: a list of at most {MAX_TAGS} tags")
    for tag in value:
        check_label(tag, f"{where}[]", TAG)
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a tag is repeated")
    return value


def check_isa(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) > len(ISA_FLAGS):
        raise ConfigError(f"{where}: a list of ISA names from {', '.join(ISA_FLAGS)}")
    for name in value:
        if not isinstance(name, str) or name not in ISA_FLAGS:
            raise ConfigError(f"{where}: unknown ISA {str(name)[:40]!r}; known: {', '.join(ISA_FLAGS)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: an ISA is repeated")
    return value


def check_text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise ConfigError(f"{where}: printable text of at most {limit} characters")
    return value


@dataclass(frozen=True)
class PublishConfig(Config):
    """How a bundle is filed: its release (default: the next integer for its name), its variant label
    (default: the manifest's profile), and what it needs of a device to be chosen for it."""
    release: str | None = None
    variant: str | None = None
    isa: list = field(default_factory=list)  # ISA names the variant needs (runtime/profiles.py ISA_FLAGS)
    memory_bytes: int | None = None  # what it needs resident; default: the size of its files

    def validate(self) -> None:
        if self.release is not None:
            check_label(self.release, "PublishConfig.release")
        if self.variant is not None:
            check_label(self.variant, "PublishConfig.variant")
        check_isa(self.isa, "PublishConfig.isa")
        if self.memory_bytes is not None and not 0 < self.memory_bytes <= MAX_MEMORY_BYTES:
            raise ConfigError("PublishConfig.memory_bytes: a positive number of bytes")


@dataclass(frozen=True)
class EnrolTokenConfig(Config):
    """A one-time (or few-times) token an operator hands to devices to enrol: what they join, how long it lasts."""
    group: str | None = None
    tags: list = field(default_factory=list)
    uses: int = 1
    ttl_s: int = 86400

    def validate(self) -> None:
        if self.group is not None:
            check_label(self.group, "EnrolTokenConfig.group")
        check_tags(self.tags, "EnrolTokenConfig.tags")
        if not 1 <= self.uses <= MAX_ENROL_USES:
            raise ConfigError(f"EnrolTokenConfig.uses: between 1 and {MAX_ENROL_USES}")
        if not 60 <= self.ttl_s <= MAX_TOKEN_TTL_S:
            raise ConfigError(f"EnrolTokenConfig.ttl_s: between 60 s and {MAX_TOKEN_TTL_S} s (90 days)")


@dataclass(frozen=True)
class EnrolRequest(Config):
    """What a device sends to enrol: the operator's token and the facts a rollout chooses variants by."""
    token: str
    profile: str
    name: str = ""
    isa: list = field(default_factory=list)
    memory_bytes: int | None = None  # the profile's memory budget on this device

    def validate(self) -> None:
        if not 1 <= len(self.token) <= 300:
            raise ConfigError("EnrolRequest.token: the enrolment token an operator created")
        check_label(self.profile, "EnrolRequest.profile")
        check_text(self.name, "EnrolRequest.name", 64)
        check_isa(self.isa, "EnrolRequest.isa")
        if self.memory_bytes is not None and not 0 < self.memory_bytes <= MAX_MEMORY_BYTES:
            raise ConfigError("EnrolRequest.memory_bytes: a positive number of bytes")


@dataclass(frozen=True)
class GroupConfig(Config):
    """A group: its explicit members plus every device of `profile` (when given) carrying all of `tags`
    (when given). A group with neither selector holds its explicit members only."""
    name: str
    description: str = ""
    profile: str | None = None
    tags: list = field(default_factory=list)

    def validate(self) -> None:
        check_label(self.name, "GroupConfig.name")
        check_text(self.description, "GroupConfig.description")
        if self.profile is not None:
            check_label(self.profile, "GroupConfig.profile")
        check_tags(self.tags, "GroupConfig.tags")


@dataclass(frozen=True)
class PolicyUpload(Config):
    """A policy file's exact text (what its signature covers) and its signature file's text, if signed."""
    policy: str
    signature: str | None = None

    def validate(self) -> None:
        if not 0 < len(self.policy) <= MAX_POLICY_CHARS:
            raise ConfigError(f"PolicyUpload.policy: the policy file's text, at most {MAX_POLICY_CHARS} characters")
        if self.signature is not None and not 0 < len(self.signature) <= MAX_SIGNATURE_CHARS:
            raise ConfigError(f"PolicyUpload.signature: the signature file's text, at most {MAX_SIGNATURE_CHARS} characters")


@dataclass(frozen=True)
class DeviceUpdate(Config):
    """What an operator may change on a device record."""
    tags: list

    def validate(self) -> None:
        check_tags(self.tags, "DeviceUpdate.tags")


def parse(cls: type[C], body: Any) -> C:
    """A request body as `cls`: a JSON object with only its fields, every required one present.
    Raises ConfigError naming the problem (the API answers 400 with it)."""
    name = cls.__name__
    if not isinstance(body, dict):
        raise ConfigError(f"{name}: the body must be a JSON object")
    fields = dataclasses.fields(cls)
    known = {f.name for f in fields}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ConfigError(f"{name}: unknown field(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
                          f"known: {', '.join(sorted(known))}")
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in body]
    if missing:
        raise ConfigError(f"{name}: missing field(s) {', '.join(missing)}")
    return cls(**body)
