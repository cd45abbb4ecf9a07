"""Open a bundle and verify it before anything trusts it: the manifest parses and validates, every
listed file exists with its exact size and sha256, and nothing unlisted sits beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgeslm.bundle.hashing import sha256_file
from edgeslm.bundle.manifest import MANIFEST, MAX_MANIFEST_BYTES, Manifest
from edgeslm.errors import BundleError


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file


def read_manifest(path: Path) -> Manifest:
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle directory")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path}: no {MANIFEST}; is this an edgeslm bundle?")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath}: larger than {MAX_MANIFEST_BYTES} bytes; refusing to parse")
    try:
        data = json.loads(mpath.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{mpath}: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mpath}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return Manifest.from_dict(data, where=str(mpath))


def open_bundle(path: Path, verify: bool = True) -> Bundle:
    path = Path(path)
    manifest = read_manifest(path)
    if verify:
        verify_files(path, manifest)
    return Bundle(path, manifest)


def verify_files(path: Path, manifest: Manifest) -> None:
    for name, entry in manifest.files.items():
        fpath = path / name
        if not fpath.is_file():
            raise BundleError(f"{path}: missing file {name} (listed in the manifest)")
        size = fpath.stat().st_size
        if size != entry.bytes:
            raise BundleError(
                f"{path}: {name} is {size} bytes, the manifest says {entry.bytes}: truncated or replaced; re-export the bundle"
            )
        if sha256_file(fpath) != entry.sha256:
            raise BundleError(f"{path}: {name} does not match its sha256 in the manifest: the file was modified")
    listed = set(manifest.files) | {MANIFEST}
    extra = sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and str(p.relative_to(path)) not in listed
    )
    if extra:
        raise BundleError(f"{path}: files not listed in the manifest: {', '.join(extra[:5])}; a bundle carries only what it signs")
