"""Planning a rollout (fleet/rollout.py): the variant that fits each device, wave sizes, canary order, the config."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.errors import ConfigError
from edgeslm.fleet.rollout import RolloutConfig, choose_variant, device_order, memory_budget, rollout_id_of, wave_sizes
from edgeslm.fleet.schemas import parse

MIB = 1 << 20


def variant(name, isa=(), memory=100 * MIB):
    return {"variant": name, "isa": list(isa), "memory_bytes": memory, "sha256": name * 4}


VARIANTS = [variant("generic"), variant("avx2", ["avx2"], 200 * MIB), variant("vnni", ["avx2", "avx512_vnni"], 300 * MIB),
            variant("neon", ["neon"], 150 * MIB), variant("neon-big", ["neon"], 3000 * MIB)]


def test_the_most_specialised_variant_the_device_can_run_wins():
    assert choose_variant({"isa": ["avx2", "avx512_vnni"]}, VARIANTS, 1 << 40)[0]["variant"] == "vnni"
    assert choose_variant({"isa": ["avx2"]}, VARIANTS, 1 << 40)[0]["variant"] == "avx2"
    assert choose_variant({"isa": []}, VARIANTS, 1 << 40)[0]["variant"] == "generic"


def test_a_variant_past_the_memory_budget_is_not_chosen():
    assert choose_variant({"isa": ["neon"]}, VARIANTS, 2048 * MIB)[0]["variant"] == "neon"
    assert choose_variant({"isa": ["neon"]}, VARIANTS, 4096 * MIB)[0]["variant"] == "neon-big"
    assert choose_variant({"isa": ["neon"]}, VARIANTS, None)[0]["variant"] == "neon-big"  # no budget known: ISA decides


def test_no_fitting_variant_says_why():
    chosen, why = choose_variant({"isa": []}, [variant("avx2", ["avx2"]), variant("big", (), 900 * MIB)], 512 * MIB)
    assert chosen is None
    assert "avx2 needs avx2" in why and "big needs 900 MiB, the budget is 512 MiB" in why


def test_memory_budget_from_the_device_or_its_profile():
    assert memory_budget({"memory_bytes": 123, "profile": "rpi4"}) == 123
    assert memory_budget({"memory_bytes": None, "profile": "rpi4"}) == 2048 * MIB  # the built-in profile's budget
    assert memory_budget({"memory_bytes": None, "profile": "no-such-profile"}) is None


@pytest.mark.parametrize("n, canary, waves, sizes", [
    (10, 0.1, [0.5, 1.0], [1, 4, 5]),
    (3, 0.1, [1.0], [1, 2]),
    (1, 0.1, [0.5, 1.0], [1]),  # one device: it is the canary, the empty waves are dropped
    (4, 1.0, [1.0], [4]),
    (1000, 0.01, [0.1, 0.5, 1.0], [10, 90, 400, 500]),
])
def test_wave_sizes(n, canary, waves, sizes):
    assert wave_sizes(n, canary, waves) == sizes
    assert sum(sizes) == n


def test_device_order_puts_online_devices_first_and_is_stable():
    devices = [{"id": f"d{i}", "online": i % 2 == 0} for i in range(10)]
    order = device_order(devices, "1/b/1")
    assert [d["online"] for d in order] == [True] * 5 + [False] * 5
    assert order == device_order(list(reversed(devices)), "1/b/1")
    assert [d["id"] for d in order] != [d["id"] for d in device_order(devices, "2/b/1")]  # another rollout, other canaries


def test_config_round_trips_and_refuses_bad_values():
    config = RolloutConfig(bundle="intent", release="3", group="kitchens", canary_fraction=0.2, waves=[0.5, 1.0])
    assert RolloutConfig.from_dict(config.to_dict()) == config
    assert config.thresholds().max_p90_ratio == 1.5
    for bad, message in [({"waves": [0.5]}, "last wave"), ({"waves": [0.05, 1.0]}, "above the one before"),
                         ({"canary_fraction": 0}, "canary_fraction"), ({"max_p90_ratio": 0.5}, "max_p90_ratio"),
                         ({"probe_file": "../x"}, "probe_file"), ({"signers": ["nothex"]}, "signers"),
                         ({"group": "a/b"}, "group"), ({"min_requests": 0}, "min_requests")]:
        with pytest.raises(ConfigError, match=message):
            RolloutConfig(**{"bundle": "intent", "release": "3", "group": "g", **bad})
    with pytest.raises(ConfigError, match="unknown field"):
        RolloutConfig.from_dict({"bundle": "b", "release": "1", "group": "g", "canary": 0.1})


def test_rollout_names_round_trip():
    assert rollout_id_of("rollout-12") == 12
    assert rollout_id_of("manual-7") is None and rollout_id_of(None) is None and rollout_id_of("rollout-x") is None
    assert rollout_id_of("rollout-\u00b2") is None and rollout_id_of("rollout-\u0663") is None  # not ASCII digits


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=20), lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=8)
FIELDS = [f.name for f in dataclasses.fields(RolloutConfig)]
bodies = st.one_of(json_values, st.dictionaries(st.sampled_from([*FIELDS, "extra"]), json_values, max_size=8),
                   st.fixed_dictionaries({"bundle": st.just("b"), "release": st.just("1"), "group": st.just("g")},
                                         optional={name: json_values for name in FIELDS[3:]}))


def _parse_body(body):
    try:
        return parse(RolloutConfig, body)
    except ConfigError:
        return None  # a clear refusal: the API answers 400 with its message


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_rollout_bodies_are_parsed_or_refused_clearly(body):
    _parse_body(body)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None)
@given(bodies)
def test_rollout_bodies_are_parsed_or_refused_clearly_slow(body):
    _parse_body(body)
