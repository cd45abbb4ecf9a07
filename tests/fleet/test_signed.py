"""Publishing with trusted keys (`fleet server --trust`): a bundle or policy is filed only when one of them
signed it, and the signer's key id is recorded; unsigned, tampered, wrongly or untrustedly signed ones are
refused with the reason, over the API too (400)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeslm.errors import ConfigError, SignatureError
from edgeslm.fleet.registry import Registry, RegistryConfig
from edgeslm.fleet.schemas import PolicyUpload, PublishConfig
from edgeslm.fleet.server import FleetServerConfig
from edgeslm.formats.signing import load_trust, policy_signature_path, sign_bundle, sign_policy


@pytest.fixture
def trusted(tmp_path: Path, fleet_keys):
    with Registry.open(RegistryConfig(db=str(tmp_path / "r.sqlite"), store=str(tmp_path / "store"),
                                      trust=str(fleet_keys.trust))) as reg:
        yield reg


def test_a_signed_bundle_is_published_with_its_signer(trusted, decoder_bundle: Path, fleet_keys):
    sign_bundle(decoder_bundle, fleet_keys.key)
    record, created = trusted.publish_folder(decoder_bundle, PublishConfig(), "test")
    assert created and record["signed_by"] == next(iter(load_trust(fleet_keys.trust).keys))


def test_unsigned_untrusted_and_tampered_bundles_are_refused(trusted, make_bundle, tmp_path: Path, fleet_keys):
    unsigned = make_bundle(tmp_path / "unsigned")
    with pytest.raises(SignatureError, match="not signed"):
        trusted.publish_folder(unsigned, PublishConfig(), "test")
    stranger = make_bundle(tmp_path / "stranger", seed=1)
    sign_bundle(stranger, fleet_keys.other_key)
    with pytest.raises(SignatureError, match="not trusted here"):
        trusted.publish_folder(stranger, PublishConfig(), "test")
    tampered = make_bundle(tmp_path / "tampered", seed=2)
    sign_bundle(tampered, fleet_keys.key)
    manifest = tampered / "manifest.json"
    manifest.write_text(manifest.read_text().replace("tiny-decoder", "evil-decoder"))
    with pytest.raises(SignatureError, match="changed after it was signed"):
        trusted.publish_folder(tampered, PublishConfig(), "test")
    assert trusted.bundles() == [] and list(trusted.store.staging_dir().iterdir()) == []


def test_over_http_unsigned_and_wrongly_signed_archives_are_400(trusted, make_bundle, tmp_path: Path, fleet_keys,
                                                               archive_of, start_fleet_server):
    server, stop = start_fleet_server(trusted)
    try:
        unsigned = archive_of(make_bundle(tmp_path / "u"))
        stranger = make_bundle(tmp_path / "s", seed=1)
        sign_bundle(stranger, fleet_keys.other_key)
        for data, reason in ((unsigned, "not signed"), (archive_of(stranger), "not trusted here")):
            status, _, raw = server.request("POST", "/v1/bundles", data, {}, server.admin_token)
            assert status == 400 and reason in json.loads(raw)["error"]["message"]
        good = make_bundle(tmp_path / "g", seed=2)
        sign_bundle(good, fleet_keys.key)
        status, _, raw = server.request("POST", "/v1/bundles", archive_of(good), {}, server.admin_token)
        assert status == 201 and json.loads(raw)["signed_by"]
    finally:
        stop()


def test_policies_need_a_trusted_signature(trusted, tmp_path: Path, fleet_keys):
    from edgeslm.runtime.tiers.policy import Policy, write_policy

    path = tmp_path / "assist-policy.json"
    write_policy(Policy(), path)
    text = path.read_text()
    with pytest.raises(SignatureError, match="not signed"):
        trusted.publish_policy(PolicyUpload(policy=text), "test")
    sign_policy(path, fleet_keys.other_key)
    with pytest.raises(SignatureError, match="not trusted here"):
        trusted.publish_policy(PolicyUpload(policy=text, signature=policy_signature_path(path).read_text()), "test")
    sign_policy(path, fleet_keys.key)
    record, created = trusted.publish_policy(PolicyUpload(policy=text, signature=policy_signature_path(path).read_text()),
                                             "test")
    assert created and record["signed_by"] == next(iter(load_trust(fleet_keys.trust).keys))
    with pytest.raises(SignatureError):
        trusted.publish_policy(PolicyUpload(policy=text.replace("0.98", "0.97"),
                                            signature=policy_signature_path(path).read_text()), "test")


def test_publishing_without_keys_needs_an_explicit_choice(tmp_path: Path, decoder_bundle: Path):
    with Registry.open(RegistryConfig(db=str(tmp_path / "r.sqlite"), store=str(tmp_path / "store"))) as reg:
        with pytest.raises(ConfigError, match="--trust KEYS.*--allow-unsigned"):
            reg.publish_folder(decoder_bundle, PublishConfig(), "test")
        assert reg.devices() == []  # reading needs no keys
    with pytest.raises(ConfigError, match="--trust KEYS"):
        FleetServerConfig(state=str(tmp_path / "state"))
    shutil.rmtree(tmp_path / "store")
    assert json.dumps(FleetServerConfig(state="s", allow_unsigned=True).to_dict())
