"""`edgeslm keys new`, `edgeslm sign` and `edgeslm verify`: Ed25519 keys, and signatures on bundles and policies."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.group("keys")
def keys() -> None:
    """Ed25519 signing keys: the private one signs bundles and policies, devices trust the public one."""


@keys.command("new")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for NAME.key and NAME.pub.")
@click.option("--name", default="edgeslm", show_default=True, help="File name of the pair (an existing pair is never overwritten).")
@json_option
@handle_errors
def new(out: Path, name: str, as_json: bool) -> None:
    """Make a key pair: NAME.key (private, mode 0600) and NAME.pub (for devices: --trust)."""
    from edgeslm.formats.signing import generate_keys

    pair = generate_keys(out, name)
    emit({"private_key": str(pair.private), "public_key": str(pair.public), "key_id": pair.key_id}, as_json,
         lambda d: f"wrote {d['private_key']} (private, mode 0600: keep it off devices and out of bundles)\n"
                   f"wrote {d['public_key']} (give it to devices: --trust)\nkey id {d['key_id']}")


@click.command("sign")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The private key (NAME.key from `edgeslm keys new`).")
@json_option
@handle_errors
def sign(target: Path, key: Path, as_json: bool) -> None:
    """Sign TARGET: a bundle folder (writes signature.json in it) or a policy file (writes POLICY.sig beside it)."""
    from edgeslm.formats.signing import SIGNATURE_FILE, policy_signature_path, sign_bundle, sign_policy

    if target.is_dir():
        sig, kind, written = sign_bundle(target, key), "bundle", target / SIGNATURE_FILE
    else:
        from edgeslm.runtime.tiers.policy import load_policy

        load_policy(target)  # never vouch for a policy that does not load
        sig, kind, written = sign_policy(target, key), "policy", policy_signature_path(target)
    emit({"path": str(target), "kind": kind, "signature": str(written), "key_id": sig.key_id, "sha256": sig.sha256},
         as_json, lambda d: f"signed {d['kind']} {d['path']} with key {d['key_id'][:16]}: wrote {d['signature']}")


@click.command("verify")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--trust", type=click.Path(exists=True, path_type=Path), required=True,
              help="The trusted public key (NAME.pub), or a folder of them.")
@json_option
@handle_errors
def verify(target: Path, trust: Path, as_json: bool) -> None:
    """Check TARGET (a bundle folder or a policy file) is signed by a trusted key and unchanged since."""
    from edgeslm.formats.signing import load_trust, verify_bundle, verify_policy

    trusted = load_trust(trust)
    if target.is_dir():
        key_id, kind = verify_bundle(target, trusted), "bundle"
    else:
        from edgeslm.runtime.tiers.policy import load_policy

        key_id, kind = verify_policy(target, trusted), "policy"
        load_policy(target)  # signed, and also a policy this edgeslm can use
    emit({"path": str(target), "kind": kind, "verified": True, "key_id": key_id}, as_json,
         lambda d: f"{d['kind']} {d['path']}: signature verified (key {d['key_id'][:16]})")
