"""A bundle in transit: an uncompressed tar of the bundle folder, as the control plane stores it and a device
downloads it. Its sha256 names the bundle in the fleet. Writing is deterministic (sorted names, no owners,
no times), so archiving the same folder twice gives the same bytes. Reading is the untrusted side: every
member is checked before a byte of it is written, and anything but plain files and folders inside the
destination is refused (absolute names, `..`, links, devices, pipes, repeated names), so an archive can
never write outside the folder it is unpacked into.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from edgeslm.errors import BundleError

FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # out of space, over quota, over RLIMIT_FSIZE: raised as OSError
CHUNK = 1 << 20
MAX_MEMBERS = 4096  # a bundle holds a handful of files; this bounds the work of a hostile archive
MAX_NAME_CHARS = 1024
DEFAULT_MAX_BYTES = 64 << 30  # the sum of the member sizes; callers pass their own cap
FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
TYPE_NAMES = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
              tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a named pipe", tarfile.CONTTYPE: "a contiguous file",
              tarfile.GNUTYPE_SPARSE: "a sparse file"}


@dataclass(frozen=True)
class Member:
    name: str  # the relative path inside the bundle folder
    size: int


def write_archive(folder: Path, out: BinaryIO) -> list[Member]:
    """Write `folder` (every regular file under it, recursively) as an uncompressed tar to `out`.
    The caller verifies the bundle first; a link or special file here is refused rather than followed."""
    folder = Path(folder)
    members: list[Member] = []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(_files(folder), key=lambda p: p.relative_to(folder).as_posix()):
            rel = path.relative_to(folder).as_posix()
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime, info.type = st.st_size, 0o644, 0, tarfile.REGTYPE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)
            members.append(Member(rel, st.st_size))
    return members


def _files(folder: Path) -> Iterator[Path]:
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(top) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BundleError(f"{folder}: {path.relative_to(folder)} is not a regular file; a bundle holds regular files only")
            if stat.S_ISREG(mode):
                yield path


def check_name(raw: str, where: str) -> str | None:
    """The member's path inside the folder, or None for the folder itself ("." or "./"); refused when it
    could point anywhere else. A leading "./" is what `tar -C DIR -cf X .` writes, so it is accepted."""
    name = raw[2:] if raw.startswith("./") else raw  # (tarfile has already cut a folder's trailing "/")
    if name in ("", "."):
        return None
    parts = name.split("/")
    if (len(raw) > MAX_NAME_CHARS or raw.startswith("/") or "\\" in raw or not raw.isprintable()
            or any(p in ("", ".", "..") for p in parts)):
        raise BundleError(f"{where}: member {raw[:200]!r} is not a plain relative path inside the bundle folder "
                          "(absolute, '..', empty or odd characters); refusing the archive")
    return name


def extract_archive(source: BinaryIO, dest: Path, max_bytes: int = DEFAULT_MAX_BYTES, where: str = "archive") -> list[Member]:
    """Unpack an untrusted bundle archive into `dest`, which must not exist yet (it is created here, 0700).
    Every member is checked before it is written; on any refusal the caller removes `dest`.
    Raises BundleError, naming the member and why; OSError (errno in FULL) when the disk fills up."""
    dest = Path(dest)
    try:
        os.mkdir(dest, 0o700)
    except OSError as exc:
        raise BundleError(f"cannot create {dest} to unpack {where}: {exc.strerror}") from None
    members: list[Member] = []
    seen: dict[str, bool] = {}  # name -> is a folder
    total = 0
    try:
        tar = tarfile.open(fileobj=source, mode="r:")  # "r:": compressed archives are refused, not guessed
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError) as exc:
        raise BundleError(f"{where}: not an uncompressed tar archive ({_why(exc)})") from None
    with tar:
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, EOFError, ValueError, UnicodeError, OverflowError) as exc:
                raise BundleError(f"{where}: a damaged tar archive ({_why(exc)})") from None
            if info is None:
                break
            if len(seen) >= MAX_MEMBERS:
                raise BundleError(f"{where}: more than {MAX_MEMBERS} members; not a bundle archive")
            name = check_name(info.name, where)
            kind = info.type
            if kind not in FILE_TYPES and kind != tarfile.DIRTYPE:
                what = TYPE_NAMES.get(kind, f"of tar type {kind!r}")
                raise BundleError(f"{where}: member {info.name[:200]!r} is {what}; a bundle archive holds regular files "
                                  "and folders only")
            if name is None:
                if kind != tarfile.DIRTYPE:
                    raise BundleError(f"{where}: member {info.name[:200]!r} is a file named like the folder itself")
                continue
            is_dir = kind == tarfile.DIRTYPE
            # tar lets a later copy of a file replace an earlier one: two readers could see two bundles
            if name in seen and not (is_dir and seen[name]):
                raise BundleError(f"{where}: member {name[:200]!r} appears twice (or as a file and a folder); "
                                  "refusing the archive")
            parent = name.rsplit("/", 1)[0] if "/" in name else ""
            _check_parents(name, seen, where)
            if is_dir:
                seen[name] = True
                _mkdirs(dest, name)
                continue
            if info.size < 0 or total + info.size > max_bytes:
                raise BundleError(f"{where}: its files add up to more than {max_bytes} bytes, the limit here")
            total += info.size
            seen[name] = False
            if parent:
                _mkdirs(dest, parent)
            _write_member(tar, info, dest / name, where)
            members.append(Member(name, info.size))
    return members


def _check_parents(name: str, seen: dict[str, bool], where: str) -> None:
    parts = name.split("/")
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        if seen.get(prefix) is False:
            raise BundleError(f"{where}: member {name[:200]!r} sits under {prefix[:200]!r}, which is a file")
        seen.setdefault(prefix, True)


def _mkdirs(dest: Path, rel: str) -> None:
    """Create the folders of `rel` one by one; each step is checked not to be a link (nothing in `dest`
    was made by anyone but us, but a folder is never trusted blindly)."""
    here = dest
    for part in rel.split("/"):
        here = here / part
        try:
            os.mkdir(here, 0o755)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                raise BundleError(f"{here}: exists and is not a folder") from None


def _write_member(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path, where: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in FULL:
            raise
        raise BundleError(f"cannot unpack {info.name[:200]!r} from {where}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            src = tar.extractfile(info)
            if src is None:  # cannot happen for a regular member; refused rather than written empty
                raise BundleError(f"{where}: member {info.name[:200]!r} has no data")
            left = info.size
            while left > 0:
                chunk = src.read(min(CHUNK, left))
                if not chunk:
                    raise BundleError(f"{where}: member {info.name[:200]!r} is cut short (truncated archive)")
                out.write(chunk)
                left -= len(chunk)
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise BundleError(f"{where}: a damaged tar archive ({_why(exc)})") from None
    except OSError as exc:
        if exc.errno in FULL:  # not the archive's fault: the caller reports the disk, not a bad bundle
            raise
        raise BundleError(f"cannot unpack {info.name[:200]!r} from {where}: {exc.strerror or exc}") from None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"
