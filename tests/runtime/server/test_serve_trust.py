"""`serve --trust`: the server loads only bundles (and a policy) signed by a trusted key, checked at start
and again whenever the governor loads a bundle, so a file changed after start is refused too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeslm.errors import SignatureError
from edgeslm.formats.signing import generate_keys, sign_bundle, sign_policy
from edgeslm.runtime.server.serve import ServeConfig, build_app
from edgeslm.runtime.tiers.policy import POLICY_FILE, Policy, write_policy

from .conftest import start_server

HOME = Path(__file__).resolve().parents[3] / "homes" / "harbor-loft.yaml"


@pytest.fixture
def keys(tmp_path):
    return generate_keys(tmp_path / "keys", "release")


@pytest.fixture
def signed(tiny_bundle_copy, keys):
    sign_bundle(tiny_bundle_copy, keys.private)
    return tiny_bundle_copy


def test_a_signed_bundle_is_served(signed, keys):
    running, stop = start_server(ServeConfig(bundles=[str(signed)], port=0, trust=str(keys.public)))
    try:
        status, body = running.json("POST", "/v1/classify", {"text": "turn on the lights"})
        assert status == 200 and body["label"] == "TurnOn", body
    finally:
        stop()


def test_an_unsigned_bundle_is_refused(tiny_bundle, keys):
    with pytest.raises(SignatureError, match="is not signed"):
        build_app(ServeConfig(bundles=[str(tiny_bundle)], port=0, trust=str(keys.public)))


def test_an_untrusted_signer_is_refused(signed, tmp_path):
    other = generate_keys(tmp_path / "other", "other")
    with pytest.raises(SignatureError, match="not trusted here"):
        build_app(ServeConfig(bundles=[str(signed)], port=0, trust=str(other.public)))


def test_a_bundle_changed_after_start_is_refused_at_load(signed, keys):
    app = build_app(ServeConfig(bundles=[str(signed)], port=0, warm=False, trust=str(keys.public)))
    try:
        manifest = signed / "manifest.json"
        manifest.write_bytes(manifest.read_bytes().replace(b'"TurnOff"', b'"TurnOn!"'))
        with pytest.raises(SignatureError, match="changed after it was signed"), app.governor.acquire("tiny-encoder"):
            pass
    finally:
        app.close()


@pytest.fixture
def deployed(tmp_path, signed, keys):
    """A signed bundle with a signed-or-not policy beside it, as `make demo` lays them out."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    bundle = Path(shutil.move(str(signed), str(folder / "tiny-encoder")))
    write_policy(Policy(), folder / POLICY_FILE)
    return bundle


def assistant_config(bundle: Path, keys, **extra) -> ServeConfig:
    return ServeConfig(bundles=[str(bundle)], port=0, warm=False, home=str(HOME), tiers=["cache", "templates"],
                       trust=str(keys.public), **extra)


def test_an_unsigned_policy_beside_the_bundle_is_refused(deployed, keys):
    with pytest.raises(SignatureError, match="assist-policy.json is not signed"):
        build_app(assistant_config(deployed, keys))
    sign_policy(deployed.parent / POLICY_FILE, keys.private)
    build_app(assistant_config(deployed, keys)).close()


def test_a_given_policy_must_be_signed_too(deployed, keys, tmp_path):
    sign_policy(deployed.parent / POLICY_FILE, keys.private)
    given = tmp_path / "mine.json"
    write_policy(Policy(cache_from=0.9), given)
    with pytest.raises(SignatureError, match="mine.json is not signed"):
        build_app(assistant_config(deployed, keys, policy=str(given)))
    sign_policy(given, keys.private)
    build_app(assistant_config(deployed, keys, policy=str(given))).close()
