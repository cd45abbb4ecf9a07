"""The directory bundle store (fleet/store.py): content-addressed, written atomically, read by ranges; and a
full disk, on a real 256 KiB tmpfs (or, where mounting is not allowed, a file-size limit on a subprocess),
gives a clear StoreError (HTTP 507) and leaves no partial file behind."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeslm.fleet.errors import NotFound, StoreError
from edgeslm.fleet.registry import Registry, RegistryConfig
from edgeslm.fleet.schemas import PublishConfig
from edgeslm.fleet.store import DirectoryStore, Staged, stage

SMALL_DISK = 256 << 10


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_put_read_range_and_delete(tmp_path: Path):
    store = DirectoryStore(tmp_path / "store")
    data = os.urandom(300_000)
    path, sha, size = stage(io.BytesIO(data), store.staging_dir(), 1 << 20)
    assert sha == hashlib.sha256(data).hexdigest() and size == len(data)
    store.put(sha, path)
    assert not path.exists() and store.exists(sha) and store.size(sha) == len(data)
    assert store.path(sha) == tmp_path / "store" / "sha256" / sha[:2] / sha
    assert b"".join(store.read_range(sha, 0, len(data))) == data
    assert b"".join(store.read_range(sha, 123_456, 70_000)) == data[123_456:193_456]
    assert b"".join(store.read_range(sha, len(data) - 5, 100)) == data[-5:]
    again, _, _ = stage(io.BytesIO(data), store.staging_dir(), 1 << 20)
    store.put(sha, again)  # the same name holds the same bytes: the second copy is dropped
    assert not again.exists() and _files(store.staging_dir()) == []
    store.delete(sha)
    assert not store.exists(sha)
    with pytest.raises(NotFound):
        store.size(sha)
    with pytest.raises(NotFound, match="not a bundle id"):
        store.path("../../etc/passwd")


def test_staged_over_the_cap_leaves_nothing(tmp_path: Path):
    store = DirectoryStore(tmp_path / "store")
    with pytest.raises(StoreError, match="larger than the limit of 1000 bytes"):
        with Staged(store.staging_dir(), 1000) as staged:
            staged.write(b"x" * 600)
            staged.write(b"x" * 600)
    assert _files(store.staging_dir()) == []


def test_leftovers_of_a_dead_publish_are_swept_at_start(tmp_path: Path):
    store = DirectoryStore(tmp_path / "store")
    (store.staging_dir() / ".up-dead").write_bytes(b"half an upload")
    (store.staging_dir() / ".up-verify-dead").mkdir()
    DirectoryStore(tmp_path / "store")
    assert list(store.staging_dir().iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 256 KiB tmpfs, or None where this process may not mount one (the tests then use RLIMIT_FSIZE)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


# The same scenario in a subprocess whose files may not grow past the limit (EFBIG instead of ENOSPC).
RLIMIT_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from edgeslm.errors import BundleError
    from edgeslm.fleet.errors import StoreError
    from edgeslm.fleet.registry import Registry, RegistryConfig
    from edgeslm.fleet.schemas import PublishConfig
    from edgeslm.formats.writer import BundleWriter
    root, size = Path(sys.argv[1]), int(sys.argv[2])
    with BundleWriter(root / "bundle") as w:
        w.path("model.gguf").write_bytes(bytes(range(256)) * (size // 256))
        w.finish(name="big", family="decoder", architecture="llama", task="text-generation", engine="llama.cpp",
                 model_file="model.gguf")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    registry = Registry.open(RegistryConfig(db=str(root / "r.sqlite"), store=str(root / "store"), allow_unsigned=True))
    resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d))
    try:
        registry.publish_folder(root / "bundle", PublishConfig(), "test")
    except StoreError as exc:
        print("StoreError:", exc)
    """)


def _publish_on_small_disk(tmp_path: Path, disk: Path | None, make_bundle, size: int) -> str:
    """Publish a bundle of `size` bytes into a store on the small disk; the StoreError's message."""
    if disk is None:
        limit = SMALL_DISK // 2
        done = subprocess.run([sys.executable, "-c", RLIMIT_SCRIPT % (limit, limit), str(tmp_path / "rl"), str(size)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        store = tmp_path / "rl" / "store"
        assert _files(store / "sha256") == [] and _files(store / "staging") == []
        return done.stdout
    registry = Registry.open(RegistryConfig(db=str(tmp_path / "r.sqlite"), store=str(disk / "store"), allow_unsigned=True))
    try:
        with pytest.raises(StoreError) as info:
            registry.publish_folder(make_bundle(tmp_path / f"b{size}", size=size), PublishConfig(), "test")
        # nothing half-written under a bundle's name, nothing left in staging, no row for it
        assert _files(disk / "store" / "sha256") == [] and _files(disk / "store" / "staging") == []
        assert registry.bundles() == []
        # the space came back: a bundle that fits still publishes
        record, created = registry.publish_folder(make_bundle(tmp_path / "fits", size=20_000, seed=9), PublishConfig(), "t")
        assert created and registry.store.size(record["sha256"]) == record["size_bytes"]
        return str(info.value)
    finally:
        registry.close()


def test_a_full_disk_while_uploading_is_a_clear_error_and_leaves_no_file(tmp_path: Path, small_disk, make_bundle):
    message = _publish_on_small_disk(tmp_path, small_disk, make_bundle, size=400_000)  # the archive alone does not fit
    assert "is full" in message and "free space there or point --store at a larger disk" in message


def test_a_full_disk_while_unpacking_to_verify_is_a_clear_error(tmp_path: Path, small_disk, make_bundle):
    # the archive fits; its unpacked copy (checked before the store takes it) does not
    message = _publish_on_small_disk(tmp_path, small_disk, make_bundle, size=(SMALL_DISK * 2) // 5 + 30_000)
    assert "is full" in message


def test_rlimit_path_gives_the_same_clear_error(tmp_path: Path, make_bundle):
    """The fallback itself, so it is known to work where tmpfs is: EFBIG reads as a full store too."""
    message = _publish_on_small_disk(tmp_path, None, make_bundle, size=400_000)
    assert "StoreError:" in message and "is full" in message
