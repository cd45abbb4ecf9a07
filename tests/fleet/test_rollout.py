"""Rollouts end to end: the real control plane (API, MQTT link, rollout engine), a real Mosquitto, real agents serving
real signed tiny bundles under real traffic (tests/fleet/rollout_env.py). Each test says what an operator would see:
every device on the variant that fits it, or a bad version rolled back with the rollout halted and the reason in the
API and the CLI, and no device left without a working, verified model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edgeslm.cli.main import cli
from edgeslm.formats.reader import open_bundle
from edgeslm.formats.signing import load_trust, sign_policy
from edgeslm.runtime.tiers.policy import Policy, write_policy


def _load_env():
    spec = importlib.util.spec_from_file_location("rollout_env", Path(__file__).parent / "rollout_env.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollout_env"] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


env = _load_env()

# The gates judge real telemetry: enough requests per canary to make a p90 out of, and time to serve them. Latency and
# energy are measured for real on a 2-core machine shared with other jobs, where an identical version has measured up
# to 4.6x the p90 of its predecessor (a broker restart, other work on the box): a test not about them gives them room
# (they are still measured and recorded); the p90 test keeps the default 1.5 against a version ~10x slower.
FAST = {"min_requests": 40, "observe_s": 30.0, "max_p90_ratio": 100.0, "max_joules_ratio": 100.0}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return env.make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, keys):
    """v1 (two variants: arm needs neon, x86 needs avx2), v2, and the bad ones: swapped (probe accuracy 1/3), slow
    (about 4x the p90 latency, for real), stranger (signed by a key the devices do not trust), resigned (a model
    swapped in after signing, the manifest rewritten to match: the signature no longer covers it)."""
    root = tmp_path_factory.mktemp("bundles")
    out = {
        "v1-arm": env.make_bundle(root / "v1-arm", keys.key, "v1 arm"),
        "v1-x86": env.make_bundle(root / "v1-x86", keys.key, "v1 x86"),
        "v1": env.make_bundle(root / "v1", keys.key, "v1"),
        "v2": env.make_bundle(root / "v2", keys.key, "v2"),
        "swapped": env.make_bundle(root / "swapped", keys.key, "swapped", labels=env.SWAPPED),
        "slow": env.make_bundle(root / "slow", keys.key, "slow", slow=True),
        "stranger": env.make_bundle(root / "stranger", keys.other_key, "stranger"),
    }
    resigned = root / "resigned"
    shutil.copytree(out["v2"], resigned)
    shutil.copy(out["swapped"] / "model.onnx", resigned / "model.onnx")
    manifest = json.loads((resigned / "manifest.json").read_text())
    data = (resigned / "model.onnx").read_bytes()
    manifest["files"]["model.onnx"] = {"sha256": __import__("hashlib").sha256(data).hexdigest(), "bytes": len(data)}
    (resigned / "manifest.json").write_text(json.dumps(manifest, indent=2))
    open_bundle(resigned)  # a consistent bundle...
    with pytest.raises(Exception, match="signature"):
        open_bundle(resigned, trust=load_trust(keys.trust))  # ...whose signature no longer holds
    out["resigned"] = resigned
    return out


@pytest.fixture
def fleet(tmp_path, keys):
    f = env.Fleet(tmp_path, keys)
    yield f
    f.close()


@pytest.fixture
def fleet_on(tmp_path, keys, db_target):
    """The same fleet on SQLite and on PostgreSQL (tests/fleet/conftest.py starts a real cluster)."""
    f = env.Fleet(tmp_path, keys, db=db_target)
    yield f
    f.close()


def cli_json(fleet, *args):
    result = CliRunner().invoke(cli, ["fleet", "rollout", *args, "--state", str(fleet.state), "--db", fleet.registry.db.target,
                                      "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def base_rollout(fleet, sha_release="1"):
    """Everyone on v1 first (every device is a canary: a first install has no previous version to compare with)."""
    record = fleet.rollouts.create(env_config(sha_release, canary_fraction=1.0, min_requests=10), actor="test")
    done = fleet.wait_rollout(record["id"], ("completed",))
    fleet.wait_served(FAST["min_requests"])  # a baseline on v1 for the next rollout to be judged against
    return done


def env_config(release, **kw):
    from edgeslm.fleet.rollout import RolloutConfig

    return RolloutConfig(bundle=env.NAME, release=release, group="all", **{**FAST, **kw})


def test_a_rollout_reaches_every_device_with_the_variant_that_fits_it(fleet_on, bundles):
    fleet = fleet_on
    arm = [fleet.add_device(env.ARM) for _ in range(2)]
    x86 = [fleet.add_device(env.X86) for _ in range(2)]
    small = fleet.add_device({"profile": "tiny-box", "isa": ["neon"], "memory_bytes": 1 << 10}, start=False)
    sha = {"arm": fleet.publish(bundles["v1-arm"], "1", "arm", ["neon"]),
           "x86": fleet.publish(bundles["v1-x86"], "1", "x86", ["avx2"])}
    fleet.start_traffic()

    status, created = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "all",
                                                         "canary_fraction": 0.25, "waves": [0.5, 1.0], **FAST})
    assert status == 201, created
    rid = created["id"]
    assert [w["devices"] for w in created["waves"]] == [1, 1, 2]
    skipped = [a for a in created["assignments"] if a["state"] == "skipped"]
    assert [a["device_id"] for a in skipped] == [small.id] and "the budget is 0 MiB" in skipped[0]["reason"]

    # the control plane restarts once the canaries passed: the next one carries on from the registry
    fleet.wait_rollout(rid, ("running", "completed"), until=lambda r: r["waves"][0]["state"] == "passed")
    fleet.stop_control_plane()
    fleet.start_control_plane()
    done = fleet.wait_rollout(rid, ("completed",))

    for device in arm + x86:
        want = sha["arm"] if device in arm else sha["x86"]
        assert fleet.active(device) == want  # what the device itself serves
    devices = {d["id"]: d for d in fleet.api("GET", "/v1/devices")[1]["devices"]}
    assert {devices[d.id]["active_bundle"] for d in arm} == {sha["arm"]}
    assert {devices[d.id]["active_bundle"] for d in x86} == {sha["x86"]}
    assert done["counts"] == {"active": 4, "skipped": 1}
    canary_gates = {g["gate"]: g for g in done["gates"] if g["wave_idx"] == 0}
    assert set(canary_gates) == {"probe_accuracy", "latency_p90", "error_rate", "escalation_rate", "joules_per_answer"}
    assert all(g["passed"] for g in canary_gates.values())
    assert "first install" in canary_gates["probe_accuracy"]["reason"]

    # v2 for everyone that fits it (one generic variant), judged against v1 on the same canary: it passes
    v2 = fleet.publish(bundles["v2"], "2")
    fleet.wait_served(FAST["min_requests"])
    second = fleet.rollouts.create(env_config("2", canary_fraction=0.25, waves=[1.0]), actor="test")
    done = fleet.wait_rollout(second["id"], ("completed",))
    assert all(fleet.active(d) == v2 for d in arm + x86)
    compared = {g["gate"]: g for g in done["gates"]}
    assert compared["probe_accuracy"]["baseline"] == 1.0 and compared["probe_accuracy"]["candidate"] == 1.0
    for gate in ("latency_p90", "joules_per_answer"):  # measured on the same canary against v1 (a ratio)
        assert compared[gate]["baseline"] == 1.0 and compared[gate]["candidate"] > 0 and compared[gate]["passed"]
    assert compared["error_rate"]["candidate"] == 0.0 and compared["error_rate"]["baseline"] == 0.0

    # an operator rolls it back from the CLI: every device returns to its v1 variant
    assert cli_json(fleet, "rollback", str(second["id"]), "--reason", "customer complaint")["state"] == "rolling_back"
    back = fleet.wait_rollout(second["id"], ("rolled_back",))
    assert back["counts"] == {"rolled_back": 4, "skipped": 1}
    for device in arm + x86:
        assert fleet.active(device) == (sha["arm"] if device in arm else sha["x86"])
    listed = cli_json(fleet, "status")["rollouts"]
    assert [(r["id"], r["state"]) for r in listed] == [(second["id"], "rolled_back"), (rid, "completed")]


def halted(fleet, bundles, name, devices=3, **gates):
    """Everyone on v1, then `name` as release 2 with one canary: the rollout that results, once it has halted and
    the canary is back on v1 (or never left it)."""
    group = [fleet.add_device(env.ARM) for _ in range(devices)]
    v1 = fleet.publish(bundles["v1"], "1")
    fleet.start_traffic()
    base_rollout(fleet)
    fleet.publish(bundles[name], "2")
    record = fleet.rollouts.create(env_config("2", canary_fraction=0.2, waves=[1.0], **gates), actor="test")
    done = fleet.wait_rollout(record["id"], ("halted",),
                              until=lambda r: not {"rollback_pending", "rolling_back"} & set(r["counts"]))
    for device in group:
        assert fleet.active(device) == v1  # no device left on the bad version, none without a verified model
    canary = [a for a in done["assignments"] if a["wave_idx"] == 0]
    assert len(canary) == 1
    assert {a["state"] for a in done["assignments"] if a["wave_idx"] == 1} == {"cancelled"}  # never sent
    assert [w["state"] for w in done["waves"]] == ["failed", "cancelled"]
    return done, canary[0]


def shown_everywhere(fleet, record, *words):
    """The reason for the halt, in the API, the CLI and the event log."""
    rid = record["id"]
    status, api = fleet.api("GET", f"/v1/rollouts/{rid}")
    assert status == 200 and api["state"] == "halted"
    for word in words:
        assert word in api["halt_reason"], api["halt_reason"]
    assert cli_json(fleet, "status", str(rid))["halt_reason"] == api["halt_reason"]
    text = CliRunner().invoke(cli, ["fleet", "rollout", "status", str(rid), "--state", str(fleet.state),
                                    "--db", fleet.registry.db.target]).output
    assert "halted: " + api["halt_reason"][:40] in text
    events = fleet.api("GET", f"/v1/events?subject=rollout:{rid}")[1]["events"]
    assert any(e["kind"] == "rollout.halted" and e["reason"] == api["halt_reason"] for e in events)
    return api


def test_a_bundle_whose_probe_accuracy_drops_is_rolled_back_and_the_rollout_halted(fleet_on, bundles):
    fleet = fleet_on
    record, canary = halted(fleet, bundles, "swapped")
    assert canary["state"] == "rolled_back"
    api = shown_everywhere(fleet, record, "probe_accuracy", "0.333 vs 1.000")
    gate = next(g for g in api["gates"] if g["gate"] == "probe_accuracy")
    assert not gate["passed"] and gate["candidate"] == pytest.approx(1 / 3) and gate["baseline"] == 1.0


def test_a_bundle_three_times_slower_fails_the_p90_gate(fleet, bundles):
    record, canary = halted(fleet, bundles, "slow", max_p90_ratio=1.5)
    assert canary["state"] == "rolled_back"
    api = shown_everywhere(fleet, record, "latency_p90")
    gate = next(g for g in api["gates"] if g["gate"] == "latency_p90")
    assert not gate["passed"] and gate["candidate"] > 1.5, gate  # measured here: 3.4-5.5x under the test's traffic
    assert next(g for g in api["gates"] if g["gate"] == "probe_accuracy")["passed"]  # it answers as well, only slower


def test_tampered_and_wrongly_signed_bundles_are_refused_by_the_devices_and_halt_the_rollout(fleet, bundles):
    record, canary = halted(fleet, bundles, "stranger")
    assert canary["state"] == "failed"  # refused before it ever served: nothing to roll back
    shown_everywhere(fleet, record, "installs", "not trusted here")

    # a model swapped in after signing, the manifest rewritten to match: the signature no longer covers the bytes
    fleet.publish(bundles["resigned"], "3")
    second = fleet.wait_rollout(fleet.rollouts.create(env_config("3", canary_fraction=0.2), actor="test")["id"], ("halted",))
    shown_everywhere(fleet, second, "signature")

    # a good release whose archive is changed in the store after publishing: its sha256 no longer matches
    sha = fleet.publish(bundles["v2"], "4")
    stored = next(p for p in (fleet.state / "bundles").rglob(sha) if p.is_file())
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    third = fleet.wait_rollout(fleet.rollouts.create(env_config("4", canary_fraction=0.2), actor="test")["id"], ("halted",))
    shown_everywhere(fleet, third, "tampered")
    v1 = fleet.registry.bundles(env.NAME, "1")[0]["sha256"]
    assert all(fleet.active(d) == v1 for d in fleet.devices)


def test_a_device_offline_during_the_rollout_gets_it_when_it_returns(fleet, bundles):
    devices = [fleet.add_device(env.ARM) for _ in range(3)]
    v1 = fleet.publish(bundles["v1"], "1")
    fleet.start_traffic()
    base_rollout(fleet)
    late = devices[2]
    fleet.stop_agent(late)
    env.wait_for(lambda: not fleet.registry.device(late.id)["online"], 10, "the control plane to see the device offline")
    v2 = fleet.publish(bundles["v2"], "2")
    rid = fleet.rollouts.create(env_config("2", canary_fraction=0.3, waves=[1.0]), actor="test")["id"]
    waiting = fleet.wait_rollout(rid, ("running",), until=lambda r: all(w["state"] == "passed" for w in r["waves"]))
    assert {a["device_id"]: a["state"] for a in waiting["assignments"]}[late.id] == "pending"
    assert fleet.active(devices[0]) == v2 and fleet.active(devices[1]) == v2 and fleet.active(late) == v1

    # the control plane restarts while the device is away; the device comes back later and gets the release
    fleet.stop_control_plane()
    fleet.start_control_plane()
    fleet.start_agent(late)
    fleet.wait_rollout(rid, ("completed",))
    assert fleet.active(late) == v2


def test_the_broker_restarted_mid_rollout(fleet, bundles):
    devices = [fleet.add_device(env.ARM) for _ in range(3)]
    fleet.publish(bundles["v1"], "1")
    fleet.start_traffic()
    base_rollout(fleet)
    v2 = fleet.publish(bundles["v2"], "2")
    rid = fleet.rollouts.create(env_config("2", canary_fraction=0.3, waves=[1.0]), actor="test")["id"]
    fleet.wait_rollout(rid, ("running",), until=lambda r: r["waves"][0]["state"] != "pending")
    fleet.broker.restart()  # sessions and queued messages persist; everyone reconnects
    fleet.wait_rollout(rid, ("completed",), timeout=90)
    assert all(fleet.active(d) == v2 for d in devices)


def test_the_fleet_server_command_carries_a_rollout_out(tmp_path, keys, bundles):
    """`edgeslm fleet server --broker` (a real process) runs the API, the MQTT link and the rollout engine; the
    operator publishes and rolls out with the CLI, an agent installs, the CLI sees the rollout complete."""
    import os
    import signal
    import subprocess
    import time

    from edgeslm.fleet.broker import control_plane_password

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    broker = env.fleet_broker.Broker(tmp_path / "broker", {env.fleet_broker.ADMIN: control_plane_password(state)})
    broker.start()
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{broker.proc.pid}\n")
    exe = Path(sys.executable).with_name("edgeslm")
    server = subprocess.Popen([str(exe), "fleet", "server", "--state", str(state), "--allow-unsigned", "--port", "0",
                               "--broker", f"{broker.host}:{broker.port}", "--mosquitto-dir", str(broker.folder),
                               "--mosquitto-pid-file", str(pid_file), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent = None
    try:
        url = json.loads(server.stdout.readline())["url"]
        token = (state / "admin-token").read_text().strip()
        fleet = env.Remote(url, token)
        assert fleet.api("POST", "/v1/groups", {"name": "all"})[0] == 201
        status, enrol_token = fleet.api("POST", "/v1/enrolment-tokens", {"group": "all"})
        status, creds = fleet.api("POST", "/v1/enrol", {"token": enrol_token["token"], **env.ARM}, token=None)
        assert status == 201, creds
        agent = env.start_agent(tmp_path / "device", creds, env.ARM, broker, keys.trust)

        runner = CliRunner()
        where = ["--state", str(state), "--json"]
        published = runner.invoke(cli, ["fleet", "publish", str(bundles["v1"]), "--allow-unsigned", "--release", "1", *where])
        assert published.exit_code == 0, published.output
        created = runner.invoke(cli, ["fleet", "rollout", "create", "--bundle", env.NAME, "--release", "1", "--group", "all",
                                      "--canary", "1", "--min-requests", "5", *where])
        assert created.exit_code == 0, created.output
        rid = json.loads(created.output)["id"]
        # Watched through the API, which the server answers from its own process: a CLI status per look (every 50 ms)
        # opened the registry each time (write transactions that check its migrations) and competed for the cores
        # and the SQLite writer lock with the server it was watching. The bound is a liveness bound for a loaded
        # 2-core CI machine: the whole test took 39-42 s here pinned to a ninth of one core, against a 60 s bound.
        deadline = time.monotonic() + 240
        while True:
            if agent.active is not None:
                agent.classify(["turn on the lights"])  # the canary's traffic on its new version
            state = fleet.api("GET", f"/v1/rollouts/{rid}")[1]["state"]
            if state not in ("running", "paused") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        record = json.loads(runner.invoke(cli, ["fleet", "rollout", "status", str(rid), *where]).output)
        assert record["state"] == "completed", record  # the operator's CLI sees it too
        assert agent.active == json.loads(published.output)["sha256"]
    finally:
        if agent is not None:
            agent.stop()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)  # (it stops uvicorn, then the rollout engine and the MQTT link: seconds, more when loaded)
        finally:
            if server.poll() is None:
                os.kill(server.pid, signal.SIGKILL)
            server.stdout.close()
            server.stderr.close()
        broker.stop()
    assert server.returncode == 0, server.returncode


def test_pause_resume_abort_and_rollback_through_the_api(fleet, bundles):
    """The operator's words, their refusals, and what they do to a rollout whose devices are away (nothing is sent)."""
    away = [fleet.add_device(env.ARM, start=False) for _ in range(2)]
    fleet.publish(bundles["v1"], "1")
    status, created = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "all", **FAST})
    assert status == 201
    rid = created["id"]
    assert fleet.api("GET", f"/v1/rollouts/{rid}")[1]["state"] == "running"

    def act(action: str, body: Any = None, expect: int = 200) -> dict[str, Any]:
        status, answer = fleet.api("POST", f"/v1/rollouts/{rid}/{action}", body)
        assert status == expect, answer
        return answer

    assert act("pause", {"reason": "holiday freeze"})["state"] == "paused"
    assert "is paused: cannot pause" in act("pause", expect=409)["error"]["message"]
    assert act("resume")["state"] == "running"
    assert "cannot resume" in act("resume", expect=409)["error"]["message"]
    aborted = act("abort", {"reason": "wrong release"})
    assert aborted["state"] == "aborted" and set(aborted["counts"]) == {"cancelled"}
    assert all(a["reason"] == "cancelled: wrong release" for a in aborted["assignments"])
    assert act("rollback")["state"] == "rolling_back"
    fleet.wait_rollout(rid, ("rolled_back",))  # nothing was changed, so nothing to send
    kinds = [e["kind"] for e in fleet.api("GET", f"/v1/events?subject=rollout:{rid}")[1]["events"]]
    # the engine's own tick may start the first wave between any two operator words (it sends nothing: the devices
    # are away); what the operator did is recorded in order, and the wave starts at most once
    assert kinds.count("rollout.wave_started") <= 1
    assert [k for k in kinds if k != "rollout.wave_started"][:6] == [
        "rollout.created", "rollout.paused", "rollout.resumed", "rollout.aborted", "rollout.rollback",
        "rollout.rolled_back"]
    assert all(fleet.active(d) is None for d in away)

    # refusals: a clear error each, nothing changed
    assert act("pause", {"reason": "x", "extra": 1}, 400)["error"]["message"] == 'the body is optional: {"reason": "why"}'
    assert fleet.api("GET", "/v1/rollouts/999")[0] == 404
    assert fleet.api("GET", "/v1/rollouts/abc")[0] == 404
    assert fleet.api("GET", "/v1/rollouts/%C2%B2")[0] == 404  # "²" passes str.isdigit(), not int()
    assert fleet.api("POST", "/v1/rollouts/1/explode")[0] == 404
    assert fleet.api("GET", "/v1/rollouts", token=None)[0] == 401
    assert fleet.api("POST", f"/v1/rollouts/{rid}/pause", token="d0000000000000000.wrongwrongwrongwrong")[0] == 401
    status, error = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "all", "waves": [0.5]})
    assert status == 400 and "last wave" in error["error"]["message"]
    status, error = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "9", "group": "all"})
    assert status == 404 and "no bundle" in error["error"]["message"]
    status, error = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "nobody"})
    assert status == 404 and "no group" in error["error"]["message"]
    status, error = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "all",
                                                       "probe_file": "missing.jsonl"})
    assert status == 400 and "ships no missing.jsonl" in error["error"]["message"]
    assert fleet.api("GET", "/v1/telemetry?since=abc")[0] == 400

    # one open rollout per device at a time
    second = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "all", **FAST})[1]
    status, error = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "all", **FAST})
    assert status == 409 and f"rollout {second['id']} is still open" in error["error"]["message"]


# --- a rollout that carries an adaptive policy (router and cache thresholds, signed like a bundle) ---------------

@pytest.fixture(scope="module")
def policies(tmp_path_factory, keys):
    """Two signed policies, one unsigned and one signed by a key the devices do not trust: each a policy file as
    `edgeslm calibrate` writes it."""
    root = tmp_path_factory.mktemp("policies")
    out = {}
    for name, cache_from, key in (("p1", 0.98, keys.key), ("p2", 0.9, keys.key), ("unsigned", 0.8, None),
                                  ("stranger", 0.7, keys.other_key)):
        path = root / name / "assist-policy.json"
        write_policy(Policy(cache_from=cache_from), path)
        if key is not None:
            sign_policy(path, key)
        out[name] = path
    return out


def _upload(fleet, path: Path) -> str:
    sig = path.with_name(path.name + ".sig")
    body = {"policy": path.read_bytes().decode(), "signature": sig.read_text() if sig.exists() else None}
    status, record = fleet.api("POST", "/v1/policies", body)
    assert status in (200, 201), record
    return record["sha256"]


def _serves(fleet, device, bundle: str, policy: Path | None) -> None:
    """What the device itself serves: the bundle, and the policy's exact bytes beside it (or none)."""
    assert fleet.active(device) == bundle
    served = device.agent.active_policy
    if policy is None:
        assert served is None
    else:
        assert served.read_bytes() == policy.read_bytes()
        assert served.with_name(served.name + ".sig").is_file()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_rollout_carries_its_signed_policy_and_a_rollback_takes_both_back(fleet, keys, bundles, policies):
    devices = [fleet.add_device(env.ARM) for _ in range(2)]
    v1 = fleet.publish(bundles["v1"], "1")
    fleet.start_traffic()

    # through the API: release 1 with policy p1, every device a canary (a first install)
    p1 = _upload(fleet, policies["p1"])
    status, created = fleet.api("POST", "/v1/rollouts", {"bundle": env.NAME, "release": "1", "group": "all",
                                                         "canary_fraction": 1.0, "policy": p1, **FAST, "min_requests": 10})
    assert status == 201 and created["policy"] == p1, created
    fleet.wait_rollout(created["id"], ("completed",))
    for device in devices:
        _serves(fleet, device, v1, policies["p1"])
    env.wait_for(lambda: {d["active_policy"] for d in fleet.api("GET", "/v1/devices")[1]["devices"]} == {p1}, 10,
                 "the registry to show the policy every device serves")
    fleet.wait_served(FAST["min_requests"])

    # through the CLI: release 2 with policy p2 given as a file (published with its signature, checked on the way)
    v2 = fleet.publish(bundles["v2"], "2")
    result = CliRunner().invoke(cli, ["fleet", "rollout", "create", "--bundle", env.NAME, "--release", "2", "--group", "all",
                                      "--canary", "0.5", "--min-requests", str(FAST["min_requests"]), "--observe", "30",
                                      "--max-p90-ratio", "100", "--max-joules-ratio", "100",
                                      "--policy", str(policies["p2"]), "--trust", str(keys.trust),
                                      "--state", str(fleet.state), "--db", fleet.registry.db.target, "--json"])
    assert result.exit_code == 0, result.output
    second = json.loads(result.output)
    assert second["policy"] == _sha(policies["p2"])
    fleet.wait_rollout(second["id"], ("completed",))
    for device in devices:
        _serves(fleet, device, v2, policies["p2"])

    # the operator rolls release 2 back: each device returns to v1 with p1, verified again, in the same swap
    fleet.rollouts.rollback(second["id"], actor="test", reason="policy too eager to cache")
    fleet.wait_rollout(second["id"], ("rolled_back",))
    for device in devices:
        _serves(fleet, device, v1, policies["p1"])
    env.wait_for(lambda: {d["active_policy"] for d in fleet.api("GET", "/v1/devices")[1]["devices"]} == {p1}, 10,
                 "the registry to show the policy rolled back")

    # an agent restarted on its folder serves the same pair after checking both again
    fleet.stop_agent(devices[0])
    fleet.start_agent(devices[0])
    _serves(fleet, devices[0], v1, policies["p1"])


def _registry_shows_what_they_serve(fleet, devices, bundle: str, policy: str | None, what: str) -> None:
    """The registry's view of each device (the API's devices list) is what its own folder holds: the bundle, and the
    policy's sha256 or null when it serves none."""
    for device in devices:
        assert fleet.active(device) == bundle
        served = device.agent.active_policy
        assert (_sha(served) if served is not None else None) == policy

    def shown() -> bool:
        listed = {d["id"]: d for d in fleet.api("GET", "/v1/devices")[1]["devices"]}
        return all((listed[d.id]["active_bundle"], listed[d.id]["active_policy"]) == (bundle, policy) for d in devices)
    env.wait_for(shown, 30, f"the registry to show {what}")


def test_a_bundle_without_a_policy_clears_the_policy_the_registry_shows(fleet, tmp_path, keys, bundles, policies):
    """Installing, or rolling back to, a bundle that carries no policy leaves the device serving none: the registry
    says so (it once kept showing the old policy as active, since a state message without one changed nothing)."""
    devices = [fleet.add_device(env.ARM) for _ in range(2)]
    v1, v2 = fleet.publish(bundles["v1"], "1"), fleet.publish(bundles["v2"], "2")
    v3 = fleet.publish(env.make_bundle(tmp_path / "v3", keys.key, "v3"), "3")
    p1, p2 = _upload(fleet, policies["p1"]), _upload(fleet, policies["p2"])
    fleet.start_traffic()

    def roll(release: str, policy: str | None) -> int:
        record = fleet.rollouts.create(env_config(release, canary_fraction=1.0, policy=policy), actor="test")
        fleet.wait_rollout(record["id"], ("completed",))
        return record["id"]

    roll("1", p1)
    _registry_shows_what_they_serve(fleet, devices, v1, p1, "release 1 with p1")
    fleet.wait_served(FAST["min_requests"])

    roll("2", None)  # installs a bundle that carries no policy: p1 goes with v1
    _registry_shows_what_they_serve(fleet, devices, v2, None, "release 2 with no policy")
    fleet.wait_served(FAST["min_requests"])

    third = roll("3", p2)
    _registry_shows_what_they_serve(fleet, devices, v3, p2, "release 3 with p2")
    fleet.rollouts.rollback(third, actor="test", reason="back to release 2")  # whose bundle carries no policy
    fleet.wait_rollout(third, ("rolled_back",))
    _registry_shows_what_they_serve(fleet, devices, v2, None, "the rollback to release 2, with no policy")


@pytest.mark.parametrize("name, words", [("unsigned", "is not signed"), ("stranger", "not trusted here")])
def test_a_policy_the_devices_cannot_trust_halts_the_rollout_and_nothing_changes(fleet, bundles, policies, name, words):
    devices = [fleet.add_device(env.ARM) for _ in range(2)]
    v1 = fleet.publish(bundles["v1"], "1")
    fleet.start_traffic()
    first = fleet.rollouts.create(env_config("1", canary_fraction=1.0, min_requests=10), actor="test")
    fleet.wait_rollout(first["id"], ("completed",))
    fleet.publish(bundles["v2"], "2")
    bad = _upload(fleet, policies[name])  # this registry takes it (no trusted keys given); the devices do not
    record = fleet.rollouts.create(env_config("2", canary_fraction=0.5, policy=bad), actor="test")
    done = fleet.wait_rollout(record["id"], ("halted",))
    assert words in done["halt_reason"] and "policy" in done["halt_reason"], done["halt_reason"]
    canary = next(a for a in done["assignments"] if a["wave_idx"] == 0)
    assert canary["state"] == "failed"  # refused before the swap: nothing to roll back
    for device in devices:
        _serves(fleet, device, v1, None)

