"""`edgeslm fleet agent`: its options, and a bad start (a credentials file others can read, a missing key)
as one error line with exit code 2. The agent at work is tested in tests/agent/test_agent.py."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgeslm.cli.main import cli


def _args(tmp_path, credentials, trust):
    return ["fleet", "agent", "--profile", "this-machine", "--state", str(tmp_path / "state"), "--broker", "127.0.0.1:1",
            "--credentials", str(credentials), "--trust", str(trust)]


def test_help_lists_the_options():
    out = CliRunner().invoke(cli, ["fleet", "agent", "--help"]).output
    for option in ("--profile", "--state", "--broker", "--credentials", "--trust", "--json"):
        assert option in out


def test_bad_start_is_one_clear_error(tmp_path):
    from edgeslm.formats.signing import generate_keys

    keys = generate_keys(tmp_path / "keys", "fleet")
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"device_id": "dev-1", "mqtt_username": "dev-1", "mqtt_password": "p" * 20,
                                       "secret": "dev-1.s3cret"}))
    credentials.chmod(0o644)
    result = CliRunner().invoke(cli, _args(tmp_path, credentials, keys.public))
    assert result.exit_code == 2 and "chmod 600" in result.output and "s3cret" not in result.output
    credentials.chmod(0o600)
    result = CliRunner().invoke(cli, _args(tmp_path, credentials, keys.private))  # a private key as the trust
    assert result.exit_code == 2 and "private key" in result.output
    result = CliRunner().invoke(cli, [*_args(tmp_path, credentials, keys.public)[:-4], "--broker", "nohost",
                                      "--credentials", str(credentials), "--trust", str(keys.public)])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
