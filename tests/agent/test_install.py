"""Install steps without a broker: the resumable download against a local Range server (a kept prefix, a
corrupted prefix, a server without Range, one sending too much, a missing archive, no server at all), and the
checks on a bundle's probe set."""

from __future__ import annotations

import json
import shutil

import pytest

from edgeslm.agent.install import InstallError, check, download, read_probe_file
from edgeslm.agent.protocol import Install, Probe, ProbeItem
from edgeslm.errors import BundleError
from edgeslm.formats.reader import open_bundle


def _spec(archive, server, size: int | None = None) -> Install:
    return Install(sha256=archive.sha256, url=server.url(archive.sha256), size=size or archive.size)


def _download(spec, part, attempts: int = 2):
    return download(spec, part, {"Authorization": "Bearer t"}, timeout_s=5.0, attempts=attempts, sleep=lambda s: None)


def test_download_resumes_from_a_kept_prefix(tmp_path, archive_server, archives):
    v1 = archives["v1"]
    archive_server.add(v1)
    part = tmp_path / "x.part"
    part.write_bytes(v1.data[:1000])
    assert _download(_spec(v1, archive_server), part).read_bytes() == v1.data
    assert [r["range"] for r in archive_server.requests] == ["bytes=1000-"]
    archive_server.requests.clear()
    assert _download(_spec(v1, archive_server), part).read_bytes() == v1.data  # complete already: no request
    assert archive_server.requests == []


def test_a_corrupted_prefix_is_refused_then_fetched_again(tmp_path, archive_server, archives):
    v1 = archives["v1"]
    archive_server.add(v1)
    part = tmp_path / "x.part"
    part.write_bytes(b"\0" * 1000)  # what a disk error or another writer left
    with pytest.raises(InstallError, match="sha256 .* tampered with or corrupted"):
        _download(_spec(v1, archive_server), part)
    assert not part.exists()  # the next try starts clean
    assert _download(_spec(v1, archive_server), part).read_bytes() == v1.data


def test_a_server_without_range_support_restarts_the_file(tmp_path, archive_server, archives):
    v1 = archives["v1"]
    archive_server.add(v1)
    archive_server.honor_range = False
    part = tmp_path / "x.part"
    part.write_bytes(v1.data[:1000])
    assert _download(_spec(v1, archive_server), part).read_bytes() == v1.data


def test_refusals(tmp_path, archive_server, archives):
    v1 = archives["v1"]
    archive_server.add(v1)
    with pytest.raises(InstallError, match="more than the 100 bytes"):
        archive_server.honor_range = False
        _download(_spec(v1, archive_server, size=100), tmp_path / "a.part")
    archive_server.honor_range = True
    with pytest.raises(InstallError, match="the command says 100"):
        _download(_spec(v1, archive_server, size=100), tmp_path / "b.part")
    missing = Install(sha256="0" * 64, url=archive_server.url("0" * 64), size=10)
    with pytest.raises(InstallError, match="HTTP 404"):
        _download(missing, tmp_path / "c.part")
    unreachable = Install(sha256="0" * 64, url="http://127.0.0.1:9/v1/bundles/x/archive?token=SECRET", size=10)
    with pytest.raises(InstallError, match="after 2 attempt") as info:
        _download(unreachable, tmp_path / "d.part")
    assert "SECRET" not in str(info.value)  # a URL's query may carry a token: never in a reason


def test_probe_checks(tmp_path, archives):
    bundle = tmp_path / "b"
    shutil.copytree(archives["v1"].folder, bundle)
    assert [i.label for i in read_probe_file(open_bundle(bundle), "probe.jsonl")][:1] == ["TurnOn"]
    with pytest.raises(InstallError, match="not listed"):
        read_probe_file(open_bundle(bundle), "other.jsonl")
    checked = check(bundle, Probe(min_accuracy=1.0, file="probe.jsonl"), threads=1)
    assert checked.probe_accuracy == 1.0 and checked.probe_size == 9 and checked.name == "tiny-v1"
    checked.engine.close()
    with pytest.raises(InstallError, match="labels the bundle does not know: Play"):
        check(bundle, Probe(min_accuracy=0.5, items=[ProbeItem("play music", "Play")]), threads=1)
    (bundle / "probe.jsonl").write_text(json.dumps({"text": "x", "label": "TurnOn", "extra": 1}) + "\n")
    with pytest.raises(BundleError, match="probe.jsonl is 45 bytes"):  # the manifest (signed) pins the probe file
        check(bundle, Probe(min_accuracy=0.5, file="probe.jsonl"), threads=1)
