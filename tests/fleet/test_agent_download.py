"""The agent's downloader (agent/install.py) against this control plane's archive route: the credentials the
enrolment gives are what the agent sends, a download cut short resumes from its partial file with a Range
request, and another device's token or a revoked one is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgeslm.agent.install import InstallError, download, unpack
from edgeslm.agent.protocol import Install
from edgeslm.formats.reader import open_bundle


def _agent_headers(creds: dict) -> dict[str, str]:
    # as agent/agent.py builds them from the saved enrolment answer
    return {"Authorization": f"Bearer {creds['secret']}", "X-Edgeslm-Device": creds["device_id"]}


def test_the_agent_downloads_resumes_and_unpacks(server, make_bundle, tmp_path: Path, archive_of):
    data = archive_of(make_bundle(tmp_path / "b", size=300_000))
    status, _, _ = server.request("POST", "/v1/bundles", data, {}, server.admin_token)
    assert status == 201
    sha = hashlib.sha256(data).hexdigest()
    creds = server.enrol()
    spec = Install(sha256=sha, url=f"http://{server.host}:{server.port}/v1/bundles/{sha}/archive", size=len(data))
    part = tmp_path / "download.part"
    part.write_bytes(data[:123_457])  # an agent killed mid-download left this much
    download(spec, part, _agent_headers(creds), timeout_s=10, attempts=1)
    assert part.read_bytes() == data
    folder = unpack(part, tmp_path, sha[:16])
    assert open_bundle(folder).manifest.name == "tiny-decoder"

    other = server.enrol()
    server.admin("POST", f"/v1/devices/{other['device_id']}/revoke", {"reason": "test"})
    for headers in (_agent_headers(other), {**_agent_headers(creds), "X-Edgeslm-Device": other["device_id"]}):
        fresh = tmp_path / f"again-{len(headers)}-{headers['X-Edgeslm-Device']}.part"
        with pytest.raises(InstallError, match="refused this device's credentials"):
            download(spec, fresh, headers, timeout_s=10, attempts=1)
