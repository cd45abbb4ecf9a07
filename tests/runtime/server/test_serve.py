"""Building the server from its config: what the config says reaches the engines."""

from __future__ import annotations

import pytest

from edgeslm.errors import ConfigError
from edgeslm.runtime.server.serve import ServeConfig, build_app


@pytest.fixture
def two_core_profile(tmp_path):
    path = tmp_path / "two-core.yaml"
    path.write_text("name: two-core\nmemory_budget_mb: 256\ncores: 2\nthreads: 2\nwatts_idle: 2\nwatts_busy: 5\n")
    return str(path)


@pytest.mark.parametrize("threads, expected", [(None, 2), (1, 1)])
def test_threads_reach_the_engine(tiny_bundle, two_core_profile, threads, expected):
    """--threads was read and then dropped: every engine got the profile's thread count."""
    app = build_app(ServeConfig(bundles=[str(tiny_bundle)], profile=two_core_profile, threads=threads))
    try:
        with app.governor.acquire("tiny-encoder") as engine:
            assert engine.session.get_session_options().intra_op_num_threads == expected
        assert app.governor.stats()["threads_per_engine"] == expected
    finally:
        app.close()


def test_more_threads_than_the_profile_has_cores_is_refused(tiny_bundle, two_core_profile):
    with pytest.raises(ConfigError, match="more than the 2 cores of profile two-core"):
        build_app(ServeConfig(bundles=[str(tiny_bundle)], profile=two_core_profile, threads=3))


def selected(threads: int) -> dict:
    """A selection block as `edgeslm select` writes one (formats/manifest.py SELECTION_REQUIRED)."""
    return {"budget": "p90_ms<=5", "profile": "rpi4", "candidate": f"int8-dynamic@{threads}t", "threads": threads,
            "predicted": {"p90_ms": 1.0}, "measured": {"p90_ms": 1.1}}


@pytest.mark.parametrize("chosen, threads, expected", [
    (1, None, 1),  # select chose 1 thread of the profile's 2: the engine gets 1
    (1, 2, 2),  # --threads overrides what select chose
    (4, None, 2),  # chosen for a bigger device: capped at this profile's budget, not refused
])
def test_a_selected_bundle_runs_on_the_threads_select_chose(make_tiny_bundle, tmp_path, two_core_profile, tiny_bundle,
                                                           chosen, threads, expected):
    bundle = make_tiny_bundle(tmp_path / "chosen", name="chosen", selection=selected(chosen))
    app = build_app(ServeConfig(bundles=[str(bundle), str(tiny_bundle)], profile=two_core_profile, threads=threads))
    try:
        with app.governor.acquire("chosen") as engine, app.governor.acquire("tiny-encoder") as plain:
            assert engine.session.get_session_options().intra_op_num_threads == expected
            # a bundle without a selection beside it keeps the profile's (or --threads') count
            assert plain.session.get_session_options().intra_op_num_threads == (threads or 2)
        assert {r["name"]: r["threads"] for r in app.governor.stats()["resident"]} == {"chosen": expected,
                                                                                       "tiny-encoder": threads or 2}
    finally:
        app.close()


@pytest.mark.parametrize("field, value, message", [
    ("sensor_ttl_s", 0, "sensor_ttl_s must be more than 0"),
    ("sensor_ttl_s", -5.0, "sensor_ttl_s must be more than 0"),
    ("sensor_ttl_s", float("nan"), "sensor_ttl_s must be more than 0"),
    ("sensor_ttl_s", 31 * 86_400, "at most 2,592,000"),
    ("sensor_ttl_s", "60", "expected float"),
    ("stream_hop", 0, "stream_hop must be >= 1"),
    ("max_sensors", 0, "max_sensors must be between 1"),
    ("max_sensors", 10**8, "max_sensors must be between 1"),
])
def test_bad_stream_settings_are_refused_before_any_bundle_loads(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        ServeConfig(bundles=["/no/such/bundle"], **{field: value})
