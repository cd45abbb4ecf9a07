"""The control plane's verbs as Config objects (fleet/schemas.py): each round-trips through a dict, and
`parse` refuses unknown and missing fields and values out of range, naming them."""

from __future__ import annotations

import pytest

from edgeslm.errors import ConfigError
from edgeslm.fleet.schemas import (
    DeviceUpdate,
    EnrolRequest,
    EnrolTokenConfig,
    GroupConfig,
    PolicyUpload,
    PublishConfig,
    parse,
)

EXAMPLES = [
    PublishConfig(release="3", variant="rpi4", isa=["neon", "dotprod"], memory_bytes=1 << 28),
    EnrolTokenConfig(group="kitchen", tags=["site=lyon", "floor=2"], uses=10, ttl_s=3600),
    EnrolRequest(token="et0123456789abcdef.secret", profile="rpi4", name="pi kitchen", isa=["neon"], memory_bytes=2 << 30),
    GroupConfig(name="canaries", description="first to update", profile="rpi5", tags=["lab"]),
    PolicyUpload(policy='{"order": []}', signature=None),
    DeviceUpdate(tags=["floor=1"]),
]


@pytest.mark.parametrize("config", EXAMPLES, ids=lambda c: type(c).__name__)
def test_round_trip(config):
    data = config.to_dict()
    assert data["version"] == type(config).VERSION
    assert type(config).from_dict(data) == config
    assert parse(type(config), {k: v for k, v in data.items() if k != "version"}) == config


@pytest.mark.parametrize("cls, body, message", [
    (GroupConfig, {"name": "g", "extra": 1}, "unknown field(s) 'extra'"),
    (GroupConfig, {"name": "g", "version": 1}, "unknown field(s) 'version'"),
    (GroupConfig, {}, "missing field(s) name"),
    (GroupConfig, [], "must be a JSON object"),
    (GroupConfig, {"name": "a/b"}, "is not a name"),
    (GroupConfig, {"name": "g", "tags": ["x", "x"]}, "repeated"),
    (GroupConfig, {"name": "g", "description": "bell\x07"}, "printable text"),
    (EnrolTokenConfig, {"uses": 0}, "between 1 and"),
    (EnrolTokenConfig, {"uses": True}, "expected int"),
    (EnrolTokenConfig, {"ttl_s": 10}, "between 60 s"),
    (EnrolRequest, {"token": "t", "profile": "rpi4", "isa": ["sse9"]}, "unknown ISA"),
    (EnrolRequest, {"token": "t", "profile": "rpi4", "isa": [[]]}, "unknown ISA"),  # found by the API fuzz
    (PublishConfig, {"isa": [{}]}, "unknown ISA"),
    (GroupConfig, {"name": "g", "tags": [{}]}, "is not a name"),
    (EnrolRequest, {"token": "", "profile": "rpi4"}, "enrolment token"),
    (EnrolRequest, {"token": "t", "profile": "rpi4", "memory_bytes": -1}, "positive"),
    (PublishConfig, {"release": ""}, "is not a name"),
    (PolicyUpload, {"policy": ""}, "policy file's text"),
    (DeviceUpdate, {"tags": "lab"}, "expected list"),
])
def test_refusals_name_the_problem(cls, body, message: str):
    with pytest.raises(ConfigError) as info:
        parse(cls, body)
    assert message in str(info.value)
