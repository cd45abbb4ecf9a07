"""`edgeslm keys new`, `sign` and `verify` as an operator runs them (a real process, --json), and
`serve --trust` refusing an unsigned bundle before it listens."""

import json
import stat
import subprocess
import sys

from edgeslm.runtime.tiers.policy import Policy, write_policy


def edgeslm(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgeslm.cli.main", *args], check=False, capture_output=True, text=True,
                          timeout=timeout)


def ok(r):
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def assert_clean_error(r, pattern):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and pattern in r.stderr, r.stderr


def test_keys_sign_verify_a_bundle(tmp_path, tiny_bundle_copy):
    keys = ok(edgeslm("keys", "new", "--out", str(tmp_path / "keys"), "--name", "release", "--json"))
    private, public = tmp_path / "keys" / "release.key", tmp_path / "keys" / "release.pub"
    assert (keys["private_key"], keys["public_key"]) == (str(private), str(public)) and len(keys["key_id"]) == 64
    assert stat.S_IMODE(private.stat().st_mode) == 0o600

    assert_clean_error(edgeslm("keys", "new", "--out", str(tmp_path / "keys"), "--name", "release"), "refusing to overwrite")
    assert_clean_error(edgeslm("verify", str(tiny_bundle_copy), "--trust", str(public)), "is not signed")

    signed = ok(edgeslm("sign", str(tiny_bundle_copy), "--key", str(private), "--json"))
    assert signed["kind"] == "bundle" and signed["key_id"] == keys["key_id"]
    checked = ok(edgeslm("verify", str(tiny_bundle_copy), "--trust", str(public), "--json"))
    assert checked == {"path": str(tiny_bundle_copy), "kind": "bundle", "verified": True, "key_id": keys["key_id"]}
    text = edgeslm("verify", str(tiny_bundle_copy), "--trust", str(public))
    assert text.returncode == 0 and "signature verified" in text.stdout

    assert_clean_error(edgeslm("verify", str(tiny_bundle_copy), "--trust", str(private)), "private key, where a public key")
    ok(edgeslm("keys", "new", "--out", str(tmp_path / "other"), "--json"))
    assert_clean_error(edgeslm("verify", str(tiny_bundle_copy), "--trust", str(tmp_path / "other" / "edgeslm.pub")),
                       "not trusted here")
    manifest = tiny_bundle_copy / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"tiny-encoder"', b'"tiny-encoder2"'))
    assert_clean_error(edgeslm("verify", str(tiny_bundle_copy), "--trust", str(public)), "changed after it was signed")


def test_sign_verify_a_policy(tmp_path):
    assert ok(edgeslm("keys", "new", "--out", str(tmp_path), "--json"))["key_id"]
    policy = tmp_path / "assist-policy.json"
    write_policy(Policy(), policy)
    signed = ok(edgeslm("sign", str(policy), "--key", str(tmp_path / "edgeslm.key"), "--json"))
    assert signed["kind"] == "policy" and signed["signature"] == str(tmp_path / "assist-policy.json.sig")
    assert ok(edgeslm("verify", str(policy), "--trust", str(tmp_path / "edgeslm.pub"), "--json"))["verified"] is True

    not_a_policy = tmp_path / "notes.json"
    not_a_policy.write_text("{}")
    assert_clean_error(edgeslm("sign", str(not_a_policy), "--key", str(tmp_path / "edgeslm.key")), "no sha256 field")
    assert not (tmp_path / "notes.json.sig").exists()


def test_sign_refuses_a_key_inside_the_bundle(tmp_path, tiny_bundle_copy):
    ok(edgeslm("keys", "new", "--out", str(tiny_bundle_copy / "keys"), "--json"))
    assert_clean_error(edgeslm("sign", str(tiny_bundle_copy), "--key", str(tiny_bundle_copy / "keys" / "edgeslm.key")),
                       "sits inside the bundle")


def test_serve_trust_refuses_an_unsigned_bundle(tmp_path, tiny_bundle):
    ok(edgeslm("keys", "new", "--out", str(tmp_path), "--json"))
    r = edgeslm("serve", str(tiny_bundle), "--port", "0", "--trust", str(tmp_path / "edgeslm.pub"))
    assert_clean_error(r, "is not signed")


def test_each_command_has_json_and_help():
    for cmd in (["keys", "new"], ["sign"], ["verify"]):
        r = edgeslm(*cmd, "--help")
        assert r.returncode == 0 and "--json" in r.stdout, cmd
    assert "--trust" in edgeslm("serve", "--help").stdout
