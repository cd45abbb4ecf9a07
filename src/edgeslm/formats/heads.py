"""What the small JSON files beside an encoder's segments share (early-exit.json, slot-tagger.json,
ngram-head.json): the object's envelope (no unknown field, the required ones there, a version this edgeslm
reads), its bytes decoded with a size limit, and the file read from an opened bundle whose manifest lists it
(size and sha256 already checked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeslm.errors import BundleError


def check_envelope(data: Any, fields: set[str], newest: int, what: str, where: str,
                   required: set[str] | None = None) -> int:
    """`data` is an object with no field outside `fields`, every one of `required` (default: all of
    `fields`), and a version in [1, newest]; returns the version. `what`: the file's noun ("slot tagger")."""
    if not isinstance(data, dict):
        raise BundleError(f"{where}: the {what} must be a JSON object")
    version = data.get("version")
    if not is_int(version) or version < 1:
        raise BundleError(f"{where}: version must be a positive integer")
    if version > newest:
        raise BundleError(f"{where}: {what} version {version} is newer than this edgeslm reads ({newest}); "
                          "upgrade edgeslm on this device")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise BundleError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = sorted((fields if required is None else required) - set(data))
    if missing:
        raise BundleError(f"{where}: missing field(s) {', '.join(missing)}")
    return version


def decode(raw: bytes, limit: int, what: str, where: str) -> Any:
    """JSON from at most `limit` bytes of UTF-8. `what`: the file's noun with its article ("an exit plan")."""
    if len(raw) > limit:
        raise BundleError(f"{where}: larger than {limit} bytes; not {what} edgeslm writes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{where}: not valid UTF-8 JSON ({type(exc).__name__})") from None


def listed_bytes(bundle: Any, file: str, what: str) -> tuple[bytes, Path] | None:
    """The file's bytes and path when the bundle's manifest lists it, else None."""
    if file not in bundle.manifest.files:
        return None
    path = bundle.file(file)
    try:
        return path.read_bytes(), path
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the {what}: {exc.strerror}") from None


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
