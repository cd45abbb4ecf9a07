"""Where published bundle archives live, by their sha256. `BundleStore` is the whole interface the registry
and the API use (stage, put, size, read a range, delete), so an S3-compatible store can stand in for
`DirectoryStore` on a larger fleet: `put` is one PUT of a staged file, `read_range` one ranged GET.

DirectoryStore keeps each archive at ROOT/sha256/ab/abcdef... . Every write goes to a temporary file in
the same folder, is fsynced, then renamed into place (and the folder fsynced): a reader sees the whole
archive or none, and a crash or a full disk leaves no partial file under a bundle's name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from edgeslm.fleet.errors import NotFound, StoreError
from edgeslm.formats.durable import fsync_dir

CHUNK = 1 << 20
SHA256 = re.compile(r"[0-9a-f]{64}")
# Out of space, over quota, or over a file-size limit (RLIMIT_FSIZE): the store cannot take more bytes.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class BundleStore(Protocol):
    """Archives by sha256 (64 lowercase hex digits). Implementations raise StoreError or NotFound."""

    def staging_dir(self) -> Path:
        """A local folder for uploads on their way in (and for unpacking them to verify)."""
        ...

    def put(self, sha256: str, staged: Path) -> None:
        """Take the staged file (already hashed and verified by the caller) as the archive `sha256`.
        The staged file is consumed: moved or copied, then gone."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def read_range(self, sha256: str, start: int, length: int) -> Iterator[bytes]:
        """Bytes [start, start + length) of the archive, in chunks."""
        ...

    def delete(self, sha256: str) -> None: ...


def check_sha256(value: str) -> str:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise NotFound(f"{str(value)[:80]!r} is not a bundle id: bundles are named by the sha256 of their archive "
                       "(64 lowercase hex digits)")
    return value


def full_message(where: Path | str, exc: OSError, written: int | None = None) -> str:
    after = f" after {written} bytes of the upload" if written else ""
    return (f"the bundle store at {where} is full ({os.strerror(exc.errno or errno.ENOSPC).lower()}){after}: "
            "free space there or point --store at a larger disk, then publish again")


class DirectoryStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        try:
            for sub in ("sha256", "staging"):
                (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot create the bundle store at {self.root}: {exc.strerror}") from None
        self._sweep_staging()

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.root)!r})"

    def _sweep_staging(self) -> None:
        """Staged uploads from a process that died mid-publish: never referenced, safe to drop at start."""
        for entry in (self.root / "staging").iterdir():
            if entry.name.startswith(".up-"):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    def staging_dir(self) -> Path:
        return self.root / "staging"

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"bundle archive {sha256} is not in the store at {self.root}") from None
        except OSError as exc:
            raise StoreError(f"cannot read bundle archive {sha256} in {self.root}: {exc.strerror}") from None

    def put(self, sha256: str, staged: Path) -> None:
        target = self.path(sha256)
        staged = Path(staged)
        try:
            target.parent.mkdir(exist_ok=True, mode=0o700)
            if target.exists():  # content-addressed: the same name holds the same bytes already
                staged.unlink(missing_ok=True)
                return
            try:
                os.replace(staged, target)  # staged files are fsynced by stage(): the rename is the commit
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_in(staged, target)
                staged.unlink(missing_ok=True)
            fsync_dir(target.parent)
        except OSError as exc:
            if exc.errno in FULL:
                raise StoreError(full_message(self.root, exc)) from None
            raise StoreError(f"cannot store bundle archive {sha256} in {self.root}: {exc.strerror}") from None

    def _copy_in(self, staged: Path, target: Path) -> None:
        with staged.open("rb") as src:
            stage(src, target.parent, staged.stat().st_size, rename_to=target)

    def read_range(self, sha256: str, start: int, length: int) -> Iterator[bytes]:
        path = self.path(sha256)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise NotFound(f"bundle archive {sha256} is not in the store at {self.root}") from None
        except OSError as exc:
            raise StoreError(f"cannot read bundle archive {sha256}: {exc.strerror}") from None
        return _chunks(fh, start, length)

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def _chunks(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        left = length
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:  # the file is shorter than the store said: never pad, the client sees a short body
                return
            left -= len(chunk)
            yield chunk


class Staged:
    """A new temporary file in `folder` that takes bytes as they arrive, hashing them; more than
    `max_bytes`, a full disk, or leaving the `with` block without finish() removes it: no partial file
    is ever left behind. finish() fsyncs it and returns (path, sha256, size)."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder, self.max_bytes = Path(folder), max_bytes
        self.digest, self.size, self.done = hashlib.sha256(), 0, False
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".up-")
        except OSError as exc:
            raise self._error(exc) from None
        self.path, self._out = Path(tmp), os.fdopen(fd, "wb")

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.abort()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.abort()
            raise StoreError(f"the upload is larger than the limit of {self.max_bytes} bytes")
        self.digest.update(chunk)
        try:
            self._out.write(chunk)
        except OSError as exc:
            self.abort()
            raise self._error(exc) from None

    def tell(self) -> int:  # tarfile asks where it is when it writes an archive straight into a Staged file
        return self.size

    def finish(self) -> tuple[Path, str, int]:
        try:
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
        except OSError as exc:
            self.abort()
            raise self._error(exc) from None
        self.done = True
        return self.path, self.digest.hexdigest(), self.size

    def abort(self) -> None:
        self.done = True
        try:
            self._out.close()
        except OSError:
            pass  # a full disk may fail the final flush too; the file goes either way
        self.path.unlink(missing_ok=True)

    def _error(self, exc: OSError) -> StoreError:
        if exc.errno in FULL:
            return StoreError(full_message(self.folder, exc, written=self.size))
        return StoreError(f"cannot write into {self.folder}: {exc.strerror}")


def stage(source: BinaryIO, folder: Path, max_bytes: int, rename_to: Path | None = None) -> tuple[Path, str, int]:
    """Copy `source` into a Staged file; with `rename_to`, the finished file is renamed there (atomically)."""
    with Staged(folder, max_bytes) as staged:
        while chunk := source.read(CHUNK):
            staged.write(chunk)
        path, sha, size = staged.finish()
    if rename_to is None:
        return path, sha, size
    try:
        os.replace(path, rename_to)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise StoreError(f"cannot move the staged archive into {rename_to.parent}: {exc.strerror}") from None
    return Path(rename_to), sha, size

