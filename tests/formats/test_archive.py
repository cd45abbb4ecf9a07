"""Bundle archives (formats/archive.py): written deterministically, unpacked with every member checked first.
Each way an archive could reach outside its folder is refused with a BundleError naming the member, and
nothing is written outside the destination; under hypothesis, any bytes end in members or a BundleError."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.errors import BundleError
from edgeslm.formats.archive import MAX_MEMBERS, extract_archive, write_archive
from edgeslm.formats.reader import open_bundle

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=10_000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _tar(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def _extract(data: bytes, tmp_path: Path, **kw) -> list:
    return extract_archive(io.BytesIO(data), tmp_path / "out", **kw)


def test_round_trip_is_deterministic_and_verifies(tiny_bundle: Path, tmp_path: Path):
    one, two = io.BytesIO(), io.BytesIO()
    members = write_archive(tiny_bundle, one)
    write_archive(tiny_bundle, two)
    assert one.getvalue() == two.getvalue()  # same folder, same bytes, same sha256
    assert {m.name for m in members} == {p.relative_to(tiny_bundle).as_posix() for p in tiny_bundle.rglob("*") if p.is_file()}
    got = extract_archive(io.BytesIO(one.getvalue()), tmp_path / "out")
    assert got == members
    assert open_bundle(tmp_path / "out").manifest == open_bundle(tiny_bundle).manifest


def test_tar_of_dot_is_accepted(tiny_bundle: Path, tmp_path: Path):
    """`tar -C BUNDLE -cf X .` writes ./name members and a ./ folder: the same bundle."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tiny_bundle, arcname=".")
    _extract(buf.getvalue(), tmp_path)
    open_bundle(tmp_path / "out")


@pytest.mark.parametrize("members, reason", [
    ([_file("/etc/evil")], "not a plain relative path"),
    ([_file("../evil")], "not a plain relative path"),
    ([_file("sub/../../evil")], "not a plain relative path"),
    ([_file("./../evil")], "not a plain relative path"),
    ([_file("a//b")], "not a plain relative path"),
    ([_file("a\\..\\b")], "not a plain relative path"),
    ([_file("bad\x01name")], "not a plain relative path"),
    ([_special("link", tarfile.SYMTYPE, "/etc/passwd")], "symbolic link"),
    ([_special("link", tarfile.SYMTYPE, "model.onnx")], "symbolic link"),
    ([_file("model.onnx"), _special("hard", tarfile.LNKTYPE, "model.onnx")], "hard link"),
    ([_special("dev", tarfile.CHRTYPE)], "character device"),
    ([_special("blk", tarfile.BLKTYPE)], "block device"),
    ([_special("fifo", tarfile.FIFOTYPE)], "named pipe"),
    ([_file("manifest.json", b"one"), _file("manifest.json", b"two")], "appears twice"),
    ([_file("a"), _file("a/b")], "which is a file"),
    ([_file("a/b"), _file("a")], "appears twice"),
])
def test_escaping_and_special_members_are_refused(members, reason: str, tmp_path: Path):
    (tmp_path / "outside").mkdir()
    with pytest.raises(BundleError, match=reason):
        _extract(_tar(*members), tmp_path)
    assert list((tmp_path / "outside").iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_a_link_planted_first_cannot_redirect_a_later_file(tmp_path: Path):
    """The classic two-step escape: a symlink to outside, then a file written through it."""
    target = tmp_path / "outside"
    target.mkdir()
    data = _tar(_special("escape", tarfile.SYMTYPE, str(target)), _file("escape/pwned", b"owned"))
    with pytest.raises(BundleError, match="symbolic link"):
        _extract(data, tmp_path)
    assert not (target / "pwned").exists()


@pytest.mark.parametrize("data, reason", [
    (gzip.compress(_tar(_file("a"))), "not an uncompressed tar"),
    (b"definitely not a tar archive" * 40, "not an uncompressed tar|damaged"),
    (_tar(_file("a", b"y" * 5000))[:1500], "cut short|damaged|truncated"),
])
def test_compressed_garbage_and_truncated_archives_are_refused(data: bytes, reason: str, tmp_path: Path):
    with pytest.raises(BundleError, match=reason):
        _extract(data, tmp_path)


def test_size_and_member_caps(tmp_path: Path):
    with pytest.raises(BundleError, match="more than 100 bytes"):
        _extract(_tar(_file("a", b"x" * 60), _file("b", b"x" * 60)), tmp_path, max_bytes=100)
    many = _tar(*[_file(f"f{i}") for i in range(MAX_MEMBERS + 1)], fmt=tarfile.USTAR_FORMAT)
    with pytest.raises(BundleError, match=f"more than {MAX_MEMBERS} members"):
        extract_archive(io.BytesIO(many), tmp_path / "out2")


def test_destination_must_be_new(tmp_path: Path):
    (tmp_path / "out").mkdir()
    with pytest.raises(BundleError, match="cannot create"):
        _extract(_tar(_file("a")), tmp_path)


def test_write_refuses_a_link_in_the_folder(tiny_bundle_copy: Path):
    os.symlink("/etc/passwd", tiny_bundle_copy / "extra")
    with pytest.raises(BundleError, match="not a regular file"):
        write_archive(tiny_bundle_copy, io.BytesIO())


# --- fuzzing: any bytes end in members or a BundleError, and nothing lands outside the destination -----------

def _valid_archive() -> bytes:
    return _tar(_file("manifest.json", b'{"format": "edgeslm-bundle"}'), _file("sub/model.gguf", bytes(range(256)) * 8))


VALID = _valid_archive()


@st.composite
def archives(draw) -> bytes:
    """Random bytes, or a valid archive with bytes flipped, cut or spliced: the second finds header corners."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=3000))
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _check(data: bytes, root: Path) -> None:
    case = Path(tempfile.mkdtemp(dir=root))
    try:
        extract_archive(io.BytesIO(data), case / "out", max_bytes=1 << 20)
    except BundleError:
        pass
    assert [p.name for p in case.iterdir()] == ["out"]  # nothing beside the destination
    shutil.rmtree(case)


@FAST
@given(data=archives())
def test_fuzz_extract(data: bytes, tmp_path: Path):
    _check(data, tmp_path)


@pytest.mark.slow
@SLOW
@given(data=archives())
def test_fuzz_extract_slow(data: bytes, tmp_path: Path):
    _check(data, tmp_path)
