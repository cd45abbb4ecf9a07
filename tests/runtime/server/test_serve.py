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
