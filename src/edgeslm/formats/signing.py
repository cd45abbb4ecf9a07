"""Ed25519 signatures: who vouches for a bundle or a policy before a device loads it. A bundle's signature
covers its manifest.json bytes exactly as stored (the manifest pins every file's sha256, which the reader
checks) and sits beside it as signature.json; a policy's covers the policy file and sits beside it as
POLICY.sig. Keys are PEM files: NAME.key (PKCS#8, private, mode 0600) and NAME.pub (SubjectPublicKeyInfo).

Signature file format_version history:
  1 — first release: ed25519 over the signed file's bytes; key_id is the sha256 of the raw 32-byte public
      key; sha256 is that of the signed bytes, so a device can tell "changed since signed" from "forged".
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslm.errors import SignatureError
from edgeslm.formats import strict_json
from edgeslm.formats.durable import fsync_dir
from edgeslm.formats.manifest import MANIFEST

# cryptography is imported where a key is used: reading an unsigned bundle needs only the base install.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "edgeslm-signature"
FORMAT_VERSION = 1
ALGORITHM = "ed25519"
SIGNATURE_FILE = "signature.json"  # the one file a bundle carries that its manifest does not list
POLICY_SIGNATURE_SUFFIX = ".sig"  # assist-policy.json -> assist-policy.json.sig
FIELDS = ("format", "format_version", "algorithm", "key_id", "sha256", "signature")
MAX_SIGNATURE_BYTES = 4096  # what we write is ~300 bytes
MAX_KEY_BYTES = 16 << 10  # a PEM Ed25519 key is ~120 bytes
MAX_POLICY_BYTES = 1 << 20  # runtime/tiers/policy.py's cap (formats sits below the runtime and cannot import it)
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Any PEM private key: PKCS#8 ("PRIVATE KEY"), encrypted, OpenSSH, RSA, EC. A key file starts with its
# header (openssl may put "Bag Attributes" lines first), so the head of a file is where to look.
PRIVATE_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
HEAD_BYTES = 64 << 10

KeyId = str  # 64 hex digits: sha256 of the raw public key


@dataclass(frozen=True)
class Signature:
    key_id: KeyId
    sha256: str  # of the signed bytes
    signature: bytes  # 64 bytes

    def to_json(self) -> str:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, "algorithm": ALGORITHM, "key_id": self.key_id,
                "sha256": self.sha256, "signature": base64.b64encode(self.signature).decode("ascii")}
        return json.dumps(body, indent=2) + "\n"


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a device accepts signatures from, by key id; `source` names where they came from."""
    keys: dict[KeyId, Ed25519PublicKey]
    source: str


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    key_id: KeyId


def key_id(public: Ed25519PublicKey) -> KeyId:
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


# --- the signature file --------------------------------------------------------------------------------

def parse_signature(raw: bytes, where: str = SIGNATURE_FILE) -> Signature:
    """The strict parser of untrusted signature bytes: anything but exactly what we write is refused."""
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"{where}: larger than {MAX_SIGNATURE_BYTES} bytes; not a signature file")
    try:
        data = strict_json.loads(raw)
    except UnicodeDecodeError:
        raise SignatureError(f"{where}: not UTF-8; not a signature file") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a repeated key, NaN, nesting past the stack
        raise SignatureError(f"{where}: not a JSON signature file ({type(exc).__name__}: {str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise SignatureError(f"{where}: a signature file is a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SignatureError(f"{where}: unknown field(s) {', '.join(repr(u)[:40] for u in unknown[:5])}")
    missing = [f for f in FIELDS if f not in data]
    if missing:
        raise SignatureError(f"{where}: missing field(s) {', '.join(missing)}")
    if data["format"] != FORMAT:
        raise SignatureError(f"{where}: not an edgeslm signature (format is {str(data['format'])[:40]!r})")
    version = data["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SignatureError(f"{where}: format_version must be a positive integer")
    if version > FORMAT_VERSION:
        raise SignatureError(f"{where}: signature format version {version} is newer than this edgeslm reads "
                             f"({FORMAT_VERSION}); upgrade edgeslm on this device")
    if data["algorithm"] != ALGORITHM:
        raise SignatureError(f"{where}: algorithm must be {ALGORITHM!r}, not {str(data['algorithm'])[:40]!r}")
    for name in ("key_id", "sha256"):
        if not _is_hex64(data[name]):
            raise SignatureError(f"{where}: {name} must be 64 lowercase hex digits")
    sig = data["signature"]
    try:
        blob = base64.b64decode(sig, validate=True) if isinstance(sig, str) and sig.isascii() else b""
    except ValueError:  # binascii.Error: bad padding or characters
        blob = b""
    if len(blob) != 64 or base64.b64encode(blob).decode("ascii") != sig:
        raise SignatureError(f"{where}: signature must be 64 bytes in standard base64")
    return Signature(data["key_id"], data["sha256"], blob)


def _is_hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# --- keys -----------------------------------------------------------------------------------------------

def generate_keys(out: Path, name: str = "edgeslm") -> KeyPair:
    """Write out/NAME.key (private, created 0600) and out/NAME.pub; an existing key is never overwritten."""
    if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
        raise SignatureError(f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    out = Path(out)
    private, public = out / f"{name}.key", out / f"{name}.pub"
    for path in (private, public):
        if os.path.lexists(path):
            raise SignatureError(f"{path} already exists; refusing to overwrite a key (choose another --name or --out)")
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SignatureError(f"cannot create {out}: {exc.strerror}") from None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _create(private, pem, 0o600)  # 0600 from the first byte: no window in which another user could read it
    try:
        _create(public, pub, 0o644)
    except SignatureError:
        private.unlink(missing_ok=True)
        raise
    fsync_dir(out)
    return KeyPair(private, public, key_id(key.public_key()))


def _create(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` (O_EXCL: never over an existing file, nor through a planted link)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except FileExistsError:
        raise SignatureError(f"{path} already exists; refusing to overwrite a key (choose another --name or --out)") from None
    except OSError as exc:
        raise SignatureError(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:  # no half-written key left behind to be refused as "already exists"
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SignatureError(f"cannot write {path}: {exc.strerror}") from None
        raise


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    raw = _read_capped(path, MAX_KEY_BYTES, "key file", follow=True)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError:  # an encrypted key
        raise SignatureError(f"{path}: the key is password-protected; edgeslm signs with an unencrypted key "
                             "(`edgeslm keys new`) kept with mode 0600") from None
    except (ValueError, UnsupportedAlgorithm):
        if b"PUBLIC KEY-----" in raw:
            raise SignatureError(f"{path}: this is a public key; sign with the private NAME.key beside it") from None
        raise SignatureError(f"{path}: not a PEM private key (make one with `edgeslm keys new`)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: a {type(key).__name__.removeprefix('_')} key; edgeslm signs with Ed25519 only")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    raw = _read_capped(path, MAX_KEY_BYTES, "key file", follow=True)
    if PRIVATE_PEM.search(raw):
        raise SignatureError(f"{path}: this is a private key, where a public key (NAME.pub) was expected; a device "
                             "needs only public keys: remove the private key from it")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"{path}: not a PEM public key (make one with `edgeslm keys new`)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: not an Ed25519 public key; edgeslm verifies Ed25519 signatures only")
    return key


def load_trust(path: Path) -> TrustedKeys:
    """The trusted keys: one .pub file, or every .pub in a folder (a private key found there is refused)."""
    path = Path(path)
    if path.is_dir():
        try:
            entries = sorted(p for p in path.iterdir() if p.is_file())
        except OSError as exc:
            raise SignatureError(f"{path}: cannot list the trusted keys: {exc.strerror}") from None
        for p in entries:
            if p.suffix == ".key" or looks_like_private_key(p):
                raise SignatureError(f"{p}: a private key in the trusted-keys folder {path}; a device needs only the "
                                     ".pub files: move the private key off it")
        keys = [load_public_key(p) for p in entries if p.suffix == ".pub"]
        if not keys:
            raise SignatureError(f"{path}: no .pub files; give the public keys to trust (from `edgeslm keys new`)")
    else:
        keys = [load_public_key(path)]
    return TrustedKeys({key_id(k): k for k in keys}, str(path))


def _as_trust(trust: TrustedKeys | Path | str) -> TrustedKeys:
    return trust if isinstance(trust, TrustedKeys) else load_trust(Path(trust))


def looks_like_private_key(path: Path) -> bool:
    """Whether a file starts like a PEM private key (what `keys new` and openssl write)."""
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return False  # the caller's own checks report a file it cannot read
    return PRIVATE_PEM.search(head) is not None


def check_not_private_key(path: Path, name: str, where: str) -> None:
    if looks_like_private_key(path):
        raise SignatureError(f"{where}: {name} looks like a private key (PEM PRIVATE KEY); a private key never travels "
                             "in a bundle: remove it, rebuild the bundle, and treat that key as leaked")


# --- signing and verifying -------------------------------------------------------------------------------

def sign_bytes(data: bytes, key: Ed25519PrivateKey) -> Signature:
    return Signature(key_id(key.public_key()), hashlib.sha256(data).hexdigest(), key.sign(data))


def verify_signature(signed: bytes, sig_path: Path, trust: TrustedKeys, what: str) -> KeyId:
    """Check `signed` (the bytes of `what`) against the signature file at `sig_path`; the signer's key id."""
    from cryptography.exceptions import InvalidSignature

    sig_path = Path(sig_path)
    if not os.path.lexists(sig_path):
        raise SignatureError(f"{what} is not signed (no {sig_path.name}), and signatures are required here: sign it "
                             f"with `edgeslm sign {what} --key KEY`")
    sig = parse_signature(_read_capped(sig_path, MAX_SIGNATURE_BYTES, "signature file"), str(sig_path))
    key = trust.keys.get(sig.key_id)
    if key is None:
        trusted = ", ".join(k[:16] for k in sorted(trust.keys))
        raise SignatureError(f"{what} is signed by key {sig.key_id[:16]}, which is not trusted here (trusted, from "
                             f"{trust.source}: {trusted}); add its .pub to the trusted keys if you mean to trust it")
    if hashlib.sha256(signed).hexdigest() != sig.sha256:
        raise SignatureError(f"{what} was changed after it was signed ({sig_path.name} signed other bytes): tampered "
                             "or damaged; get a fresh copy from the publisher")
    try:
        key.verify(sig.signature, signed)
    except InvalidSignature:
        raise SignatureError(f"{what}: wrong signature: it does not verify with trusted key {sig.key_id[:16]} "
                             "(forged or corrupted); get a fresh copy from the publisher") from None
    return sig.key_id


def sign_bundle(bundle: Path, key: Path) -> Signature:
    """Verify the bundle, then sign its manifest bytes and write BUNDLE/signature.json (atomically)."""
    from edgeslm.formats.reader import parse_manifest, read_manifest_bytes, verify_files  # (the reader imports us)

    bundle, key = Path(bundle), Path(key)
    _refuse_key_inside(bundle, key)
    private = load_private_key(key)
    raw = read_manifest_bytes(bundle)
    manifest = parse_manifest(raw, str(bundle / MANIFEST))
    if SIGNATURE_FILE in manifest.files:
        raise SignatureError(f"{bundle}: the manifest lists {SIGNATURE_FILE}, the name its signature goes by; rebuild "
                             "the bundle without that file")
    verify_files(bundle, manifest)  # never vouch for files that do not match their manifest
    sig = sign_bytes(raw, private)
    _write_atomic(bundle / SIGNATURE_FILE, sig.to_json().encode("ascii"), tmp_dir=bundle.parent)
    return sig


def verify_bundle(bundle: Path, trust: TrustedKeys | Path | str) -> KeyId:
    """Verify signature, manifest and every file's sha256; the signer's key id, or SignatureError/BundleError."""
    from edgeslm.formats.reader import open_bundle

    return open_bundle(Path(bundle), trust=_as_trust(trust)).signed_by


def policy_signature_path(policy: Path) -> Path:
    policy = Path(policy)
    return policy.with_name(policy.name + POLICY_SIGNATURE_SUFFIX)


def sign_policy(policy: Path, key: Path) -> Signature:
    """Sign a policy file's bytes and write POLICY.sig beside it. (The caller checks it is a valid policy.)"""
    policy, key = Path(policy), Path(key)
    if policy.resolve() == key.resolve():
        raise SignatureError(f"{policy}: that is the key file; give the policy to sign and --key separately")
    private = load_private_key(key)
    raw = _read_capped(policy, MAX_POLICY_BYTES, "policy file")
    sig = sign_bytes(raw, private)
    _write_atomic(policy_signature_path(policy), sig.to_json().encode("ascii"), tmp_dir=policy.parent)
    return sig


def verify_policy(policy: Path, trust: TrustedKeys | Path | str) -> KeyId:
    """The signer's key id, or SignatureError; load the policy itself with runtime/tiers/policy.load_policy."""
    policy = Path(policy)
    raw = _read_capped(policy, MAX_POLICY_BYTES, "policy file")
    return verify_signature(raw, policy_signature_path(policy), _as_trust(trust), str(policy))


def _refuse_key_inside(bundle: Path, key: Path) -> None:
    if key.resolve().is_relative_to(bundle.resolve()):
        raise SignatureError(f"the private key {key} sits inside the bundle {bundle}; a bundle is copied to devices and "
                             "the key must never travel with it: move the key out of the bundle folder")


# --- files ------------------------------------------------------------------------------------------------

def _read_capped(path: Path, cap: int, what: str, follow: bool = False) -> bytes:
    """A regular file's bytes, refused past `cap` before any parsing; through a symbolic link only when
    `follow` (key files an operator links into a trust folder; never a bundle's or a policy's files)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise SignatureError(f"{path}: a symbolic link; give the {what} itself")
        if not stat.S_ISREG(st.st_mode):
            raise SignatureError(f"{path}: not a regular file; expected a {what}")
        if st.st_size > cap:
            raise SignatureError(f"{path}: larger than {cap} bytes; not a {what} edgeslm writes")
        with path.open("rb") as fh:
            raw = fh.read(cap + 1)  # it may have grown since lstat
    except FileNotFoundError:
        raise SignatureError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if len(raw) > cap:
        raise SignatureError(f"{path}: larger than {cap} bytes; not a {what} edgeslm writes")
    return raw


def _write_atomic(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write to a temporary file in tmp_dir (same filesystem; outside a bundle, so a crash leaves no stray file
    in it), fsync, then rename over `path`: a reader sees the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)  # mkstemp makes 0600; a signature is public and a server may run as another user
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # an interrupt too: no temporary file left behind
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SignatureError(f"cannot write {path}: {exc.strerror}") from None
        raise
    fsync_dir(path.parent)

