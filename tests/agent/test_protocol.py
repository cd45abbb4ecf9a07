"""The MQTT protocol: every message round-trips, anything else is a ProtocolError (never another exception),
fuzzed with hypothesis: a few hundred cases here, 10,000 per message in the slow tier."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.agent.protocol import (
    MAX_PAYLOAD_BYTES,
    MESSAGES,
    BundleInfo,
    Command,
    Event,
    Install,
    Latency,
    PolicyRef,
    Presence,
    Probe,
    ProbeItem,
    ProtocolError,
    State,
    Telemetry,
    encode,
    parse,
    parse_for_topic,
    parse_topic,
    reason_text,
    subscription,
    topic,
)

SHA = "ab" * 32
SHA2 = "cd" * 32


def examples() -> list:
    probe = Probe(min_accuracy=0.9, items=[ProbeItem("turn on the lights", "TurnOn"), ProbeItem("weather?", "Weather")])
    return [
        Command(v=1, id="c-1", action="install", issued_at=1.7e9, rollout="r-1",
                install=Install(sha256=SHA, url="http://cp:8000/v1/bundles/x/archive", size=1234, signers=[SHA2],
                                probe=probe, name="intent-int8",
                                policy=PolicyRef(sha256=SHA2, url="http://cp:8000/v1/policies/" + SHA2, size=300))),
        Command(v=1, id="c-2", action="install", issued_at=1.7e9,
                install=Install(sha256=SHA, url="https://cp/a", size=1, probe=Probe(min_accuracy=0.5, file="probe.jsonl"))),
        Command(v=1, id="c-3", action="rollback", issued_at=1.7e9, rollback_to=SHA, reason="p90 latency gate failed"),
        Command(v=1, id="c-4", action="report", issued_at=0),
        State(v=1, device_id="dev-a", profile="rpi5", free_memory_mb=900, free_disk_mb=2000,
              installed=[BundleInfo(SHA, "intent", 10)], active=SHA, previous=None, agent_version="0.1.0", ts=1.7e9,
              policy=SHA2),
        Telemetry(v=1, device_id="dev-a", active=SHA, window_start=1.0, window_end=61.0, requests=10, errors=1, escalations=2,
                  error_rate=0.1, escalation_rate=0.2, latency_ms=Latency(1.0, 2.0, 3.5), tier_shares={"encoder": 0.8, "cache": 0.2},
                  joules_per_answer=0.05, probe_accuracy=0.97),
        Telemetry(v=1, device_id="dev-a", active=None, window_start=1.0, window_end=1.0, requests=0, errors=0, escalations=0,
                  error_rate=0.0, escalation_rate=0.0, latency_ms=None, tier_shares={}, joules_per_answer=None,
                  probe_accuracy=None),
        Event(v=1, device_id="dev-a", kind="install_failed", ts=1.7e9, command_id="c-1", rollout="r-1", sha256=SHA,
              active=SHA2, reason="probe set accuracy 0.333 is below the floor 0.900", probe_accuracy=0.333),
        Presence(v=1, device_id="dev-a", status="offline", ts=1.7e9),
    ]


@pytest.mark.parametrize("message", examples(), ids=lambda m: type(m).__name__)
def test_round_trip(message):
    payload = encode(message)
    assert parse(type(message), payload) == message
    # through its topic too, as the control plane reads it
    device = getattr(message, "device_id", "dev-a")
    assert parse_for_topic(topic(device, type(message).TOPIC_KIND), payload) == (device, message)


def test_topics():
    assert topic("dev-a", "cmd") == "edgeslm/v1/dev/dev-a/cmd"
    assert parse_topic("edgeslm/v1/dev/dev-a/telemetry") == ("dev-a", "telemetry")
    assert subscription("state") == "edgeslm/v1/dev/+/state"
    for bad in ("edgeslm/v1/dev/dev-a", "edgeslm/v1/dev/a/b/cmd", "edgeslm/v1/dev/+/cmd", "edgeslm/v1/dev/a/other",
                "other/dev-a/cmd", "edgeslm/v1/dev//cmd"):
        with pytest.raises(ProtocolError):
            parse_topic(bad)
    for bad_id in ("a/b", "+", "#", "", "-lead", "x" * 65, "a b"):
        with pytest.raises(ProtocolError):
            topic(bad_id, "cmd")


def test_payload_must_name_the_device_its_topic_names():
    payload = encode(Presence(v=1, device_id="dev-a", status="online", ts=1.0))
    with pytest.raises(ProtocolError, match="names device"):
        parse_for_topic(topic("dev-b", "presence"), payload)


def _command(**change) -> bytes:
    data = json.loads(encode(examples()[0]))
    for path, value in change.items():
        *parents, last = path.split("__")
        node = data
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize("payload,match", [
    (b"", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[]", "expected a JSON object"),
    (b'{"v": 1, "v": 1}', "appears twice"),
    (b"x" * (MAX_PAYLOAD_BYTES + 1), "cap"),
    (b"[" * 5000 + b"]" * 5000, "not valid JSON|nested"),
    (b'{"a":' * 20 + b"1" + b"}" * 20, "nested deeper"),
    (_command(extra=1), "unknown field"),
    (_command(id=KeyError), "missing field"),
    (_command(v=2), "protocol version 2"),
    (_command(v=True), "expected int"),
    (_command(issued_at="now"), "expected float"),
    (_command(issued_at=1.7e12), "outside"),
    (_command(action="format-disk"), "action"),
    (_command(install=None), "required for action install"),
    (_command(rollback_to=SHA), "only for action rollback"),
    (_command(install__sha256="AB" * 32), "sha256"),
    (_command(install__url="file:///etc/passwd"), "URL"),
    (_command(install__size=0), "outside"),
    (_command(install__size=1.5), "expected int"),
    (_command(install__signers=["nothex"]), "key id"),
    (_command(install__probe__min_accuracy=1.5), "outside"),
    (_command(install__probe__file="probe.jsonl"), "exactly one"),
    (_command(install__probe__items=[]), "1 to"),
    (_command(install__probe__items=[{"text": "a", "label": "b", "x": 1}]), "unknown field"),
    (_command(install__probe__items=[{"text": "", "label": "b"}]), "empty"),
    (_command(install__probe__items=["text"]), "expected a JSON object"),
    (_command(reason="line\nbreak"), "printable"),
    (_command(id="a/b"), "name"),
    (b'{"v": 1, "id": "\\udce9", "action": "report", "issued_at": 1}', "expected str"),
    (b'{"v": 1, "id": "c", "action": "report", "issued_at": NaN}', "not valid JSON"),
    (b'{"v": 1, "id": "c", "action": "report", "issued_at": 1e999}', "expected float"),
    (b'{"v": 1, "id": "c", "action": "report", "issued_at": ' + b"9" * 5000 + b"}", "not valid JSON"),
])
def test_command_refusals(payload, match):
    with pytest.raises(ProtocolError, match=match):
        parse(Command, payload)


def test_other_refusals():
    good = json.loads(encode(examples()[5]))
    for change, match in (({"errors": 11}, "cannot exceed"), ({"error_rate": -0.1}, "outside"),
                          ({"latency_ms": {"p50_ms": 3, "p90_ms": 2, "p99_ms": 4}}, "p50_ms <= p90_ms"),
                          ({"tier_shares": {"a b": 0.5}}, "name"), ({"tier_shares": {"x": True}}, "expected dict"),
                          ({"window_end": 0.5}, "before"), ({"device_id": "a/b"}, "device id")):
        with pytest.raises(ProtocolError, match=match):
            parse(Telemetry, json.dumps({**good, **change}).encode())
    with pytest.raises(ProtocolError, match="online or offline"):
        parse(Presence, b'{"v": 1, "device_id": "d", "status": "away", "ts": 1}')
    with pytest.raises(ProtocolError, match="Event.kind"):
        parse(Event, b'{"v": 1, "device_id": "d", "kind": "exploded", "ts": 1}')
    with pytest.raises(ProtocolError, match="expected a JSON object"):
        parse(State, b'"state"')
    with pytest.raises(ProtocolError, match="payload must be bytes"):
        parse(State, "{}")


def test_construction_validates_too():
    with pytest.raises(ProtocolError):
        Presence(v=1, device_id="d", status="online", ts=float("nan"))
    with pytest.raises(ProtocolError, match="cap"):
        encode(Command(v=1, id="big", action="install", issued_at=1, install=Install(
            sha256=SHA, url="http://x/", size=1, probe=Probe(min_accuracy=0.5, items=[ProbeItem("w" * 1999, "L")] * 1000))))


def test_reason_text_is_one_printable_line():
    assert reason_text("a\nb\tc\x00d") == "a b c d"
    assert len(reason_text("x" * 2000)) == 500
    Event(v=1, device_id="d", kind="install_failed", ts=1, reason=reason_text("Traceback\n  " + "y" * 3000))


# --- fuzzing: any bytes, and JSON near the real messages ---------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _mutated(draw, message) -> bytes:
    """A real message with one field replaced, removed or added: deep enough to reach every check."""
    data = json.loads(encode(message))
    node = data
    while True:
        keys = list(node)
        key = draw(st.sampled_from(keys)) if keys else None
        child = node.get(key) if key is not None else None
        if isinstance(child, dict) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(child, list) and child and isinstance(child[0], dict) and draw(st.booleans()):
            node = child[0]
            continue
        break
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace" and key is not None:
        node[key] = draw(json_values)
    elif action == "remove" and key is not None:
        del node[key]
    else:
        node[draw(st.text(max_size=10))] = draw(json_values)
    return json.dumps(data, allow_nan=True).encode()


@st.composite
def payloads(draw):
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    return _mutated(draw, draw(st.sampled_from(examples())))


def _check(kind_cls, payload: bytes) -> None:
    try:
        message = parse(kind_cls, payload)
    except ProtocolError:
        return
    assert parse(kind_cls, encode(message)) == message  # whatever is accepted round-trips


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(MESSAGES)), payload=payloads())
def test_fuzz_parsers_raise_only_protocol_errors(kind, payload):
    _check(MESSAGES[kind], payload)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(sorted(MESSAGES)), payload=payloads())
def test_fuzz_parsers_slow(kind, payload):
    """One parser behind five message kinds (protocol.parse): 10,000 cases spread over them, about 70 s."""
    _check(MESSAGES[kind], payload)
