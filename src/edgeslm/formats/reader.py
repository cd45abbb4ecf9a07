"""Open a bundle and verify it before anything trusts it: when trusted keys are given, the manifest's bytes
carry a trusted signature (formats/signing.py) before anything parses them; the manifest parses and
validates, every listed file exists with its exact size and sha256, nothing unlisted sits beside them but
signature.json, none of them is a private key, and all of them are regular files (no symbolic links, no
devices or pipes)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edgeslm.errors import BundleError
from edgeslm.formats import strict_json
from edgeslm.formats.hashing import sha256_file
from edgeslm.formats.manifest import MANIFEST, MAX_MANIFEST_BYTES, Manifest
from edgeslm.formats.signing import SIGNATURE_FILE, KeyId, TrustedKeys, check_not_private_key, verify_signature

MAX_DEPTH = 32  # what export writes nests 5 deep (provenance.train_config...)


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    signed_by: KeyId | None = None  # the trusted key that signed it, when opened with trust

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file


def read_manifest(path: Path) -> Manifest:
    path = Path(path)
    return parse_manifest(read_manifest_bytes(path), str(path / MANIFEST))


def read_manifest_bytes(path: Path) -> bytes:
    """manifest.json's bytes exactly as stored (what a signature covers), refused past the size cap."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle directory")
    mpath = path / MANIFEST
    if mpath.is_symlink():
        raise BundleError(f"{path}: {MANIFEST} is a symbolic link; a bundle holds regular files only")
    if not mpath.is_file():
        raise BundleError(f"{path}: no {MANIFEST}; is this an edgeslm bundle?")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath}: larger than {MAX_MANIFEST_BYTES} bytes; refusing to parse")
    try:
        with mpath.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)  # it may have grown since stat
    except OSError as exc:
        raise BundleError(f"{mpath}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath}: larger than {MAX_MANIFEST_BYTES} bytes; refusing to parse")
    return raw


def parse_manifest(raw: bytes, where: str = MANIFEST) -> Manifest:
    """The manifest in `raw`; `where` names it in errors."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{where}: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{where}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an int over 4300 digits, arrays nested past the stack
        raise BundleError(f"{where}: not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    if strict_json.depth(data, stop_past=MAX_DEPTH) > MAX_DEPTH:  # deeper would crash what walks it later (to_dict, copy, printing)
        raise BundleError(f"{where}: nested deeper than {MAX_DEPTH} levels; not a manifest edgeslm writes")
    try:  # "\udce9" escapes parse into a str no file, log or terminal can take
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BundleError(f"{where}: not valid Unicode (a lone surrogate escape)") from None
    return Manifest.from_dict(data, where=where)


def open_bundle(path: Path, verify: bool = True, trust: TrustedKeys | None = None) -> Bundle:
    """Read and verify a bundle. With `trust`, the manifest must carry a signature by one of those keys,
    checked on the very bytes then parsed, before anything else is read."""
    path = Path(path)
    raw = read_manifest_bytes(path)
    signed_by = None
    if trust is not None:
        if not verify:
            raise BundleError(f"{path}: a signature vouches for the files only through their hashes: verify them too")
        signed_by = verify_signature(raw, path / SIGNATURE_FILE, trust, str(path))
    manifest = parse_manifest(raw, str(path / MANIFEST))
    if verify:
        verify_files(path, manifest)
    return Bundle(path, manifest, signed_by)


def verify_files(path: Path, manifest: Manifest) -> None:
    for name, entry in manifest.files.items():
        size = _regular_file(path, name).st_size
        check_not_private_key(path / name, name, str(path))
        if size != entry.bytes:
            raise BundleError(
                f"{path}: {name} is {size} bytes, the manifest says {entry.bytes}: truncated or replaced; re-export the bundle"
            )
        if sha256_file(path / name) != entry.sha256:
            raise BundleError(f"{path}: {name} does not match its sha256 in the manifest: the file was modified")
    listed = set(manifest.files) | {MANIFEST, SIGNATURE_FILE}  # the signature: checked only when trust is asked for
    extra = []
    for entry in _walk(path):
        rel = entry.relative_to(path).as_posix()
        st = _no_link(path, rel)
        if st is None or stat.S_ISDIR(st.st_mode):  # (None: removed while we looked)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{path}: {rel} is not a regular file; a bundle holds regular files only")
        if rel not in listed:
            check_not_private_key(path / rel, rel, str(path))  # say what it is, not only that it is unlisted
            extra.append(rel)
    if extra:
        extra.sort()
        raise BundleError(f"{path}: files not listed in the manifest: {', '.join(extra[:5])}; a bundle carries only what it signs")


# A bundle holds regular files only. A symbolic link is refused wherever it sits, even when its target
# has the signed bytes: the target lies outside what was signed and can change after verification.
def _regular_file(path: Path, name: str) -> os.stat_result:
    """lstat of a listed file; a link on the way to it, or a special file, is refused."""
    parts = name.split("/")
    for depth in range(1, len(parts) + 1):
        st = _no_link(path, "/".join(parts[:depth]))
        if st is None:
            raise BundleError(f"{path}: missing file {name} (listed in the manifest)")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{path}: {name} is not a regular file; a bundle holds regular files only")
    return st


def _no_link(path: Path, rel: str) -> os.stat_result | None:
    """lstat of `rel` inside the bundle, None when it is not there; a symbolic link is refused."""
    try:
        st = os.lstat(path / rel)
    except (FileNotFoundError, NotADirectoryError):  # (the latter: a file where the name wants a folder)
        return None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read {rel}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"{path}: {rel} is a symbolic link; a bundle holds regular files only")
    return st


def _walk(path: Path) -> list[Path]:
    """Every entry under the bundle folder; links are listed, never followed."""
    def unreadable(exc: OSError) -> None:  # os.walk would skip the folder, hiding what is in it
        raise BundleError(f"{path}: cannot list {exc.filename}: {exc.strerror}")

    return [Path(top) / name for top, dirs, files in os.walk(path, onerror=unreadable) for name in dirs + files]
