"""A rollout that carries an adaptive policy (router and cache thresholds, signed like a bundle) with its bundle, end to
end: the real control plane, a real Mosquitto and real agents (tests/fleet/rollout_env.py). The devices verify the
policy's signature before they keep it, serve it with the bundle, and a rollback takes both back; a policy the devices
cannot trust halts the rollout with the reason, and no device changes what it serves."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeslm.cli.main import cli
from edgeslm.formats.signing import sign_policy
from edgeslm.runtime.tiers.policy import Policy, write_policy


def _load_env():
    if "rollout_env" in sys.modules:  # (test_rollout.py may have loaded it: one copy of its dataclasses)
        return sys.modules["rollout_env"]
    spec = importlib.util.spec_from_file_location("rollout_env", Path(__file__).parent / "rollout_env.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollout_env"] = module
    spec.loader.exec_module(module)
    return module


env = _load_env()
FAST = {"min_requests": 20, "observe_s": 30.0, "max_p90_ratio": 100.0, "max_joules_ratio": 100.0}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return env.make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, keys):
    root = tmp_path_factory.mktemp("bundles")
    return {name: env.make_bundle(root / name, keys.key, name) for name in ("v1", "v2")}


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


@pytest.fixture
def fleet(tmp_path, keys):
    f = env.Fleet(tmp_path, keys)
    yield f
    f.close()


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


@pytest.mark.parametrize("name, words", [("unsigned", "is not signed"), ("stranger", "not trusted here")])
def test_a_policy_the_devices_cannot_trust_halts_the_rollout_and_nothing_changes(fleet, bundles, policies, name, words):
    devices = [fleet.add_device(env.ARM) for _ in range(2)]
    v1 = fleet.publish(bundles["v1"], "1")
    fleet.start_traffic()
    first = fleet.rollouts.create(_config("1", canary_fraction=1.0, min_requests=10), actor="test")
    fleet.wait_rollout(first["id"], ("completed",))
    fleet.publish(bundles["v2"], "2")
    bad = _upload(fleet, policies[name])  # this registry takes it (no trusted keys given); the devices do not
    record = fleet.rollouts.create(_config("2", canary_fraction=0.5, policy=bad), actor="test")
    done = fleet.wait_rollout(record["id"], ("halted",))
    assert words in done["halt_reason"] and "policy" in done["halt_reason"], done["halt_reason"]
    canary = next(a for a in done["assignments"] if a["wave_idx"] == 0)
    assert canary["state"] == "failed"  # refused before the swap: nothing to roll back
    for device in devices:
        _serves(fleet, device, v1, None)


def _config(release: str, **kw):
    from edgeslm.fleet.rollout import RolloutConfig

    return RolloutConfig(bundle=env.NAME, release=release, group="all", **{**FAST, **kw})
