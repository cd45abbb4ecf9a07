"""`edgeslm fleet ...` as an operator runs it: real processes, --json output, one clear line on bad input; the
server starts on a free port, creates its admin token 0600 (or takes EDGESLM_FLEET_ADMIN_TOKEN), and stops
cleanly on SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def edgeslm(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeslm.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_clean_error(r: subprocess.CompletedProcess, pattern: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ") and pattern in r.stderr, r.stderr


def test_publish_enrol_token_and_devices(tmp_path: Path, decoder_bundle: Path, archive_of):
    state = str(tmp_path / "state")
    r = edgeslm("fleet", "publish", str(decoder_bundle), "--state", state, "--allow-unsigned", "--isa", "avx2", "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["created"] and record["isa"] == ["avx2"] and record["release"] == "1"
    archive = tmp_path / "b.tar"
    archive.write_bytes(archive_of(decoder_bundle))
    r = edgeslm("fleet", "publish", str(archive), "--state", state, "--allow-unsigned", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["created"] is False  # the same archive: filed once
    assert_clean_error(edgeslm("fleet", "publish", str(decoder_bundle), "--state", state), "--allow-unsigned")
    assert_clean_error(edgeslm("fleet", "publish", str(decoder_bundle), "--state", state, "--allow-unsigned",
                               "--isa", "sse9"), "unknown ISA")
    r = edgeslm("fleet", "enrol-token", "--state", state, "--uses", "2", "--tag", "lab", "--json")
    assert r.returncode == 0, r.stderr
    token = json.loads(r.stdout)
    assert token["uses"] == 2 and token["tags"] == ["lab"] and token["token"].startswith(token["id"] + ".")
    assert_clean_error(edgeslm("fleet", "enrol-token", "--state", state, "--group", "nowhere"), "no group")
    r = edgeslm("fleet", "devices", "--state", state, "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"devices": []}
    assert edgeslm("fleet", "devices", "--state", state).stdout.strip() == "no devices enrolled"


def test_every_fleet_command_has_help_and_json():
    for cmd in ("server", "publish", "devices", "enrol-token"):
        r = edgeslm("fleet", cmd, "--help")
        assert r.returncode == 0 and "--json" in r.stdout, cmd


def _start(args: list[str], env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-m", "edgeslm.cli.main", "fleet", "server", "--port", "0", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"the server did not start: {proc.stderr.read()[-2000:]}")
    return proc, json.loads(line)


def _get(url: str, path: str, token: str | None) -> int:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    status = conn.getresponse().status
    conn.close()
    return status


def test_server_makes_a_private_admin_token_and_stops_on_sigterm(tmp_path: Path):
    state = tmp_path / "state"
    proc, ready = _start(["--state", str(state), "--allow-unsigned"])
    try:
        token_file = Path(ready["admin_token_file"])
        assert ready["event"] == "listening" and token_file == state / "admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert _get(ready["url"], "/healthz", None) == 200
        assert _get(ready["url"], "/v1/devices", token) == 200
        assert _get(ready["url"], "/v1/devices", "nope") == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]  # a clean stop, as a service manager expects
    assert token not in out + err  # the token is in its file, never printed


def test_server_takes_the_admin_token_from_the_environment(tmp_path: Path):
    token = "an-operator-chosen-token-of-enough-length"
    proc, ready = _start(["--state", str(tmp_path / "s"), "--allow-unsigned"], env={"EDGESLM_FLEET_ADMIN_TOKEN": token})
    try:
        assert _get(ready["url"], "/v1/devices", token) == 200
        assert not (tmp_path / "s" / "admin-token").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_server_refusals_are_one_clear_line(tmp_path: Path):
    assert_clean_error(edgeslm("fleet", "server", "--state", str(tmp_path / "s"), "--port", "0"), "--trust KEYS")
    r = edgeslm("fleet", "server", "--state", str(tmp_path / "s"), "--allow-unsigned", "--port", "0",
                env={"EDGESLM_FLEET_ADMIN_TOKEN": "short"})
    assert_clean_error(r, "EDGESLM_FLEET_ADMIN_TOKEN must be at least")
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "admin-token").write_text("x" * 40)
    os.chmod(tmp_path / "s2" / "admin-token", 0o644)
    assert_clean_error(edgeslm("fleet", "server", "--state", str(tmp_path / "s2"), "--allow-unsigned", "--port", "0"),
                       "readable by others")
    assert_clean_error(edgeslm("fleet", "server", "--db", "mysql://h/db", "--state", str(tmp_path / "s3"),
                               "--allow-unsigned"), "mysql:// is not supported")
