"""Signed bundles and policies (formats/signing.py) on the tiny synthetic bundle: the round trip, every
refusal with its reason, key files (0600 from creation, never overwritten), and the signature-file
parser under hypothesis: any input ends in a Signature or a SignatureError, nothing else."""

import base64
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.errors import BundleError, SignatureError
from edgeslm.formats.hashing import sha256_file
from edgeslm.formats.reader import open_bundle
from edgeslm.formats.signing import (
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
    Signature,
    TrustedKeys,
    generate_keys,
    load_private_key,
    load_trust,
    parse_signature,
    policy_signature_path,
    sign_bundle,
    sign_policy,
    verify_bundle,
    verify_policy,
    verify_signature,
)
from edgeslm.formats.writer import BundleWriter
from edgeslm.runtime.tiers.policy import Policy, write_policy


@pytest.fixture
def keys(tmp_path):
    return generate_keys(tmp_path / "keys", "release")


@pytest.fixture
def other(tmp_path):
    return generate_keys(tmp_path / "other-keys", "other")


@pytest.fixture
def signed(tiny_bundle_copy, keys):
    sign_bundle(tiny_bundle_copy, keys.private)
    return tiny_bundle_copy


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# --- round trips -------------------------------------------------------------------------------------------

def test_sign_then_verify(signed, keys):
    assert verify_bundle(signed, keys.public) == keys.key_id
    bundle = open_bundle(signed, trust=load_trust(keys.public))
    assert bundle.signed_by == keys.key_id and bundle.manifest.name == "tiny-encoder"
    sig = parse_signature((signed / SIGNATURE_FILE).read_bytes())
    assert sig.key_id == keys.key_id and sig.sha256 == sha256_file(signed / "manifest.json")


def test_a_folder_of_public_keys_is_trusted(signed, keys, other, tmp_path):
    folder = tmp_path / "trusted"
    folder.mkdir()
    shutil.copy(keys.public, folder)
    shutil.copy(other.public, folder)
    trust = load_trust(folder)
    assert set(trust.keys) == {keys.key_id, other.key_id}
    assert verify_bundle(signed, folder) == keys.key_id


def test_without_trust_signed_and_unsigned_bundles_both_verify(signed, tiny_bundle):
    assert open_bundle(signed).signed_by is None  # the signature is allowed beside the manifest, not required
    assert open_bundle(tiny_bundle).signed_by is None


def test_signing_again_replaces_the_signature(signed, keys, other):
    sign_bundle(signed, other.private)
    assert verify_bundle(signed, other.public) == other.key_id
    with pytest.raises(SignatureError, match="not trusted"):
        verify_bundle(signed, keys.public)
    assert not [p for p in signed.parent.iterdir() if p.name.startswith(".")]  # no temporary file left over


def test_policy_round_trip(tmp_path, keys):
    policy = tmp_path / "assist-policy.json"
    write_policy(Policy(), policy)
    sign_policy(policy, keys.private)
    assert policy_signature_path(policy).name == "assist-policy.json.sig"
    assert verify_policy(policy, keys.public) == keys.key_id


def test_the_signature_file_round_trips(keys):
    sig = Signature(keys.key_id, "ab" * 32, bytes(range(64)))
    assert parse_signature(sig.to_json().encode()) == sig


# --- refusals ----------------------------------------------------------------------------------------------

def test_unsigned_is_refused(tiny_bundle, keys):
    with pytest.raises(SignatureError, match="not signed .no signature.json.*edgeslm sign"):
        verify_bundle(tiny_bundle, keys.public)


def test_signed_by_an_untrusted_key_is_refused(signed, other):
    with pytest.raises(SignatureError, match="is not trusted here"):
        verify_bundle(signed, other.public)


def test_a_changed_manifest_is_refused_before_it_is_parsed(signed, keys):
    (signed / "manifest.json").write_bytes(b"{not json at all")  # parsing it would fail differently
    with pytest.raises(SignatureError, match="changed after it was signed"):
        verify_bundle(signed, keys.public)


def test_a_changed_manifest_with_a_matching_hash_is_a_wrong_signature(signed, keys):
    manifest = signed / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b"tiny-encoder", b"evil-encoder"))
    edit_json(signed / SIGNATURE_FILE, sha256=sha256_file(manifest))  # the forger updates the hash too
    with pytest.raises(SignatureError, match="wrong signature"):
        verify_bundle(signed, keys.public)


def test_a_flipped_signature_bit_is_refused(signed, keys):
    path = signed / SIGNATURE_FILE
    blob = bytearray(base64.b64decode(json.loads(path.read_text())["signature"]))
    blob[10] ^= 1
    edit_json(path, signature=base64.b64encode(bytes(blob)).decode())
    with pytest.raises(SignatureError, match="wrong signature"):
        verify_bundle(signed, keys.public)


def test_a_tampered_file_is_caught_by_its_manifest_hash(signed, keys):
    model = signed / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-5] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its sha256"):
        verify_bundle(signed, keys.public)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "a JSON object"),
    (b'{"format": "edgeslm-signature"}', "missing field"),
    (b"x" * (MAX_SIGNATURE_BYTES + 1), "larger than"),
])
def test_a_malformed_signature_file_is_refused(signed, keys, content, message):
    (signed / SIGNATURE_FILE).write_bytes(content)
    with pytest.raises(SignatureError, match=message):
        verify_bundle(signed, keys.public)


def test_a_signature_with_an_unknown_field_is_refused(signed, keys):
    edit_json(signed / SIGNATURE_FILE, comment="trust me")
    with pytest.raises(SignatureError, match="unknown field"):
        verify_bundle(signed, keys.public)


def test_a_symlinked_signature_is_refused(signed, keys, tmp_path):
    real = tmp_path / "elsewhere.json"
    shutil.move(signed / SIGNATURE_FILE, real)
    (signed / SIGNATURE_FILE).symlink_to(real)
    with pytest.raises(SignatureError, match="symbolic link"):
        verify_bundle(signed, keys.public)


def test_a_private_key_is_refused_as_trust(signed, keys):
    with pytest.raises(SignatureError, match="private key, where a public key"):
        verify_bundle(signed, keys.private)
    with pytest.raises(SignatureError, match="private key in the trusted-keys folder"):
        load_trust(keys.private.parent)  # NAME.key sits beside NAME.pub there


def test_a_public_key_is_refused_for_signing(tiny_bundle_copy, keys):
    with pytest.raises(SignatureError, match="this is a public key"):
        sign_bundle(tiny_bundle_copy, keys.public)


@pytest.mark.parametrize("content, message", [(b"not a key", "not a PEM public key"), (b"", "not a PEM public key")])
def test_garbage_as_trust_is_refused(tmp_path, content, message):
    (tmp_path / "k.pub").write_bytes(content)
    with pytest.raises(SignatureError, match=message):
        load_trust(tmp_path / "k.pub")


def test_an_empty_trust_folder_is_refused(tmp_path):
    with pytest.raises(SignatureError, match="no .pub files"):
        load_trust(tmp_path)


def test_trust_is_required_with_verification(signed, keys):
    with pytest.raises(BundleError, match="verify them too"):
        open_bundle(signed, verify=False, trust=load_trust(keys.public))


def test_a_tampered_or_unsigned_policy_is_refused(tmp_path, keys, other):
    policy = tmp_path / "assist-policy.json"
    write_policy(Policy(), policy)
    with pytest.raises(SignatureError, match="not signed"):
        verify_policy(policy, keys.public)
    sign_policy(policy, keys.private)
    with pytest.raises(SignatureError, match="not trusted"):
        verify_policy(policy, other.public)
    policy.write_bytes(policy.read_bytes().replace(b"0.98", b"0.10"))
    with pytest.raises(SignatureError, match="changed after it was signed"):
        verify_policy(policy, keys.public)


# --- the private key never travels in a bundle ---------------------------------------------------------

def test_sign_refuses_a_key_inside_the_bundle(tiny_bundle_copy, keys):
    inside = tiny_bundle_copy / "release.key"
    shutil.copy(keys.private, inside)
    with pytest.raises(SignatureError, match="sits inside the bundle"):
        sign_bundle(tiny_bundle_copy, inside)
    assert not (tiny_bundle_copy / SIGNATURE_FILE).exists()


def test_the_reader_refuses_a_private_key_listed_or_not(tiny_bundle_copy, keys):
    shutil.copy(keys.private, tiny_bundle_copy / "notes.txt")
    with pytest.raises(BundleError, match="notes.txt looks like a private key"):
        open_bundle(tiny_bundle_copy)
    files = json.loads((tiny_bundle_copy / "manifest.json").read_text())["files"]
    files["notes.txt"] = {"sha256": sha256_file(tiny_bundle_copy / "notes.txt"), "bytes": keys.private.stat().st_size}
    edit_json(tiny_bundle_copy / "manifest.json", files=files)  # listed with the right hash: still refused
    with pytest.raises(BundleError, match="notes.txt looks like a private key"):
        open_bundle(tiny_bundle_copy)


def test_the_writer_refuses_a_private_key(tmp_path, keys):
    with pytest.raises(BundleError, match="looks like a private key"), BundleWriter(tmp_path / "b") as w:
        w.path("model.gguf").write_bytes(b"GGUF")
        w.add(keys.private, "extra/key.pem")
        w.finish(name="x", family="decoder", architecture="llama", task="text-generation", engine="llama.cpp",
                 model_file="model.gguf")
    assert not (tmp_path / "b").exists()


def test_sign_refuses_a_manifest_that_lists_the_signature_name(tiny_bundle_copy, keys):
    (tiny_bundle_copy / SIGNATURE_FILE).write_text("{}")
    files = json.loads((tiny_bundle_copy / "manifest.json").read_text())["files"]
    files[SIGNATURE_FILE] = {"sha256": sha256_file(tiny_bundle_copy / SIGNATURE_FILE), "bytes": 2}
    edit_json(tiny_bundle_copy / "manifest.json", files=files)
    with pytest.raises(SignatureError, match="lists signature.json"):
        sign_bundle(tiny_bundle_copy, keys.private)


def test_sign_refuses_a_damaged_bundle(tiny_bundle_copy, keys):
    (tiny_bundle_copy / "tokenizer.json").write_text("{}")
    with pytest.raises(BundleError, match="tokenizer.json is"):
        sign_bundle(tiny_bundle_copy, keys.private)
    assert not (tiny_bundle_copy / SIGNATURE_FILE).exists()


# --- key files -----------------------------------------------------------------------------------------------

def test_keys_are_0600_from_creation(tmp_path, monkeypatch):
    def no_chmod(*_a, **_k):  # a chmod after creation would leave a window where the key is readable
        raise AssertionError("the private key must be created 0600, not chmod-ed afterwards")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    old = os.umask(0)  # nothing masks a too-wide creation mode away
    try:
        pair = generate_keys(tmp_path / "k", "a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(pair.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(pair.public.stat().st_mode) == 0o644
    assert load_private_key(pair.private).public_key() is not None
    assert b"PRIVATE KEY" in pair.private.read_bytes() and b"PUBLIC KEY" in pair.public.read_bytes()


@pytest.mark.parametrize("existing", ["a.key", "a.pub"])
def test_keys_are_never_overwritten(tmp_path, existing):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / existing).write_text("precious")
    with pytest.raises(SignatureError, match="already exists; refusing to overwrite"):
        generate_keys(folder, "a")
    assert (folder / existing).read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == [existing]


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65, "sp ace"])
def test_bad_key_names_are_refused(tmp_path, name):
    with pytest.raises(SignatureError, match="key name"):
        generate_keys(tmp_path, name)


# --- the signature-file parser under hypothesis ----------------------------------------------------------

KEY_ID = "ab" * 32
GOOD = json.loads(Signature(KEY_ID, "cd" * 32, bytes(64)).to_json())
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)
ODD = st.sampled_from([KEY_ID, KEY_ID.upper(), KEY_ID[:-1], "A" * 88, "AAAA", base64.b64encode(bytes(63)).decode(),
                       base64.b64encode(bytes(65)).decode(), GOOD["signature"] + "\n", "é" * 88, 1, 0, 2, -1, True,
                       1 << 70, "ed25519", "rsa", "edgeslm-signature", "edgeslm-bundle"])


@st.composite
def signature_docs(draw):
    data = dict(GOOD)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*GOOD, "extra"]))
        if draw(st.integers(0, 4)) == 0:
            data.pop(key, None)
        else:
            data[key] = draw(JSON | ODD)
    return data


def check_signature(data):
    try:
        sig = parse_signature(json.dumps(data).encode())
    except SignatureError:
        return
    assert parse_signature(sig.to_json().encode()) == sig
    assert len(sig.signature) == 64 and len(sig.key_id) == 64


@pytest.fixture(scope="module")
def fuzz_trust(tmp_path_factory):
    return load_trust(generate_keys(tmp_path_factory.mktemp("fuzz-keys"), "k").public)


def check_signature_bytes(tmp_path, trust: TrustedKeys, blob: bytes):
    path = tmp_path / SIGNATURE_FILE
    path.unlink(missing_ok=True)
    path.write_bytes(blob)
    try:
        verify_signature(b"the signed bytes", path, trust, "fuzzed")
    except SignatureError:
        return
    raise AssertionError("a fuzzed signature verified")


FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BLOBS = st.binary(max_size=400) | signature_docs().map(lambda d: json.dumps(d).encode()).flatmap(
    lambda b: st.tuples(st.integers(0, len(b)), st.binary(max_size=4)).map(lambda cut: b[: cut[0]] + cut[1]))


@FAST
@given(data=signature_docs())
def test_property_mutated_signatures(data):
    check_signature(data)


@FAST
@given(blob=BLOBS)
def test_property_signature_bytes(tmp_path, fuzz_trust, blob):
    check_signature_bytes(tmp_path, fuzz_trust, blob)


@pytest.mark.slow
@SLOW
@given(data=signature_docs())
def test_property_mutated_signatures_slow(data):
    check_signature(data)


@pytest.mark.slow
@SLOW
@given(blob=BLOBS)
def test_property_signature_bytes_slow(tmp_path, fuzz_trust, blob):
    check_signature_bytes(tmp_path, fuzz_trust, blob)
