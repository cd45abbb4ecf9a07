"""The control plane's HTTP API over real sockets (uvicorn in a thread, conftest.server): publishing and
resumable downloads with Range requests, enrolment, every refusal of credentials, device isolation,
escaping archives, strict bodies and caps, and no secret in the logs or the event log."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
from pathlib import Path

import pytest

from edgeslm.fleet.api import parse_range
from edgeslm.runtime.server.errors import HttpError


def _publish(server, data: bytes, query: str = "") -> tuple[int, dict]:
    status, _, raw = server.request("POST", f"/v1/bundles{query}", data, {"Content-Type": "application/x-tar"},
                                    server.admin_token)
    return status, json.loads(raw)


@pytest.fixture
def published(server, decoder_bundle: Path, archive_of) -> tuple[str, bytes]:
    data = archive_of(decoder_bundle)
    status, record = _publish(server, data, "?release=1&isa=avx2&memory_bytes=1048576")
    assert status == 201, record
    return record["sha256"], data


def test_publish_over_http_files_the_archive_by_its_sha256(server, published):
    sha, data = published
    assert sha == hashlib.sha256(data).hexdigest()
    status, record = server.admin("GET", f"/v1/bundles/{sha}")
    assert status == 200 and record["isa"] == ["avx2"] and record["memory_bytes"] == 1 << 20
    status, listing = server.admin("GET", "/v1/bundles?name=tiny-decoder")
    assert [b["sha256"] for b in listing["bundles"]] == [sha]
    assert _publish(server, data)[0] == 200  # the same bytes again: already there, not a new bundle
    status, body = _publish(server, data, "?release=9")
    assert status == 409 and "already published" in body["error"]["message"]


def test_download_whole_and_by_ranges(server, published):
    sha, data = published
    token = server.enrol()["secret"]
    url = f"/v1/bundles/{sha}/archive"
    status, headers, body = server.request("GET", url, token=token)
    assert status == 200 and body == data and headers["ETag"] == f'"{sha}"' and headers["Accept-Ranges"] == "bytes"
    assert int(headers["Content-Length"]) == len(data)
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=100-199"}, token=token)
    assert status == 206 and body == data[100:200] and headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    # resume: the rest from an offset, as an interrupted download does
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=5000-"}, token=token)
    assert status == 206 and body == data[5000:] and headers["Content-Range"] == f"bytes 5000-{len(data) - 1}/{len(data)}"
    status, _, body = server.request("GET", url, headers={"Range": "bytes=-10"}, token=token)
    assert status == 206 and body == data[-10:]
    status, _, body = server.request("GET", url, headers={"Range": f"bytes=0-{len(data) * 2}"}, token=token)
    assert status == 206 and body == data  # an end past the archive is cut to it
    # If-Range: a partial copy of the same bytes resumes; of other bytes, gets it all
    status, _, body = server.request("GET", url, headers={"Range": "bytes=10-", "If-Range": f'"{sha}"'}, token=token)
    assert status == 206 and body == data[10:]
    status, _, body = server.request("GET", url, headers={"Range": "bytes=10-", "If-Range": '"' + "0" * 64 + '"'}, token=token)
    assert status == 200 and body == data
    status, _, body = server.request("GET", url, headers={"If-None-Match": f'"{sha}"'}, token=token)
    assert status == 304 and body == b""
    status, headers, body = server.request("HEAD", url, headers={"Range": "bytes=0-9"}, token=token)
    assert status == 206 and body == b"" and headers["Content-Length"] == "10"
    # several ranges, or another unit: the whole archive (RFC 9110 lets a server ignore them)
    assert server.request("GET", url, headers={"Range": "bytes=0-1,5-6"}, token=token)[2] == data
    assert server.request("GET", url, headers={"Range": "items=0-1"}, token=token)[2] == data


@pytest.mark.parametrize("value", ["bytes=999999999-", "bytes=5-2", "bytes=-0", "bytes=abc", "bytes=-", "bytes=1-2-3"])
def test_bad_ranges_are_416_with_the_size(server, published, value: str):
    sha, data = published
    status, headers, body = server.request("GET", f"/v1/bundles/{sha}/archive", headers={"Range": value},
                                           token=server.admin_token)
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    assert json.loads(body)["error"]["code"] == 416


def test_parse_range_edges():
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=-20", 10) == (0, 9)
    assert parse_range("bytes=9-", 10) == (9, 9)
    assert parse_range("BYTES=1-2", 10) == (1, 2)
    with pytest.raises(HttpError):
        parse_range("bytes=10-", 10)
    with pytest.raises(HttpError):
        parse_range("bytes=" + "9" * 40 + "-", 10)


def test_unknown_archive_and_bad_ids(server):
    token = server.admin_token
    assert server.request("GET", "/v1/bundles/" + "a" * 64 + "/archive", token=token)[0] == 404
    status, _, body = server.request("GET", "/v1/bundles/not-a-sha/archive", token=token)
    assert status == 404 and "64 lowercase hex digits" in json.loads(body)["error"]["message"]


def test_calls_without_valid_credentials_are_refused(server, published):
    sha, _ = published
    routes = [("GET", "/v1/bundles"), ("POST", "/v1/bundles"), ("GET", f"/v1/bundles/{sha}"),
              ("GET", f"/v1/bundles/{sha}/archive"), ("GET", "/v1/devices"), ("POST", "/v1/enrolment-tokens"),
              ("GET", "/v1/events"), ("GET", "/v1/groups"), ("POST", "/v1/policies"), ("GET", "/v1/whoami")]
    bad_headers = [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {server.admin_token}"},
                   {"Authorization": "Bearer " + server.admin_token[:-1]}, {"Authorization": "Bearer"},
                   {"Authorization": "Bearer d0123456789abcdef.aaaaaaaaaaaaaaaaaaaaaaaa"}]
    for method, path in routes:
        for headers in bad_headers:
            status, got, body = server.request(method, path, b"{}" if method == "POST" else None, headers)
            assert status == 401, (method, path, headers, body)
            assert got["WWW-Authenticate"] == "Bearer" and json.loads(body)["error"]["type"] == "unauthorized"
    assert server.request("GET", "/healthz")[0] == 200  # liveness needs nothing


def test_a_device_reads_only_its_own_record_and_no_operator_route(server, published):
    sha, _ = published
    a, b = server.enrol(), server.enrol()
    status, me = server.json("GET", f"/v1/devices/{a['device_id']}", token=a["secret"])
    assert status == 200 and me["id"] == a["device_id"]
    status, body = server.json("GET", f"/v1/devices/{b['device_id']}", token=a["secret"])
    assert status == 403 and "its own record" in body["error"]["message"]
    for method, path in [("GET", "/v1/devices"), ("GET", "/v1/events"), ("GET", "/v1/bundles"),
                         ("PATCH", f"/v1/devices/{b['device_id']}"), ("POST", f"/v1/devices/{b['device_id']}/revoke"),
                         ("POST", "/v1/enrolment-tokens"), ("GET", "/v1/groups/x"), ("POST", "/v1/bundles")]:
        status, _, raw = server.request(method, path, b"{}" if method != "GET" else None, token=a["secret"])
        assert status == 403, (method, path, raw)
    status, who = server.json("GET", "/v1/whoami", token=a["secret"])
    assert who == {"kind": "device", "device_id": a["device_id"]}
    # the agent also names itself: a header naming another device is refused
    status, _, _ = server.request("GET", f"/v1/bundles/{sha}", headers={"X-Edgeslm-Device": b["device_id"]},
                                  token=a["secret"])
    assert status == 401
    assert server.request("GET", f"/v1/bundles/{sha}", headers={"X-Edgeslm-Device": a["device_id"]}, token=a["secret"])[0] == 200


def test_a_revoked_device_is_refused(server):
    creds = server.enrol()
    status, record = server.admin("POST", f"/v1/devices/{creds['device_id']}/revoke", {"reason": "stolen"})
    assert status == 200 and record["revoked_at"] is not None
    assert server.request("GET", "/v1/whoami", token=creds["secret"])[0] == 401
    status, events = server.admin("GET", f"/v1/events?subject=device:{creds['device_id']}")
    assert [e["kind"] for e in events["events"]] == ["device.enrolled", "device.revoked"]
    assert events["events"][1]["reason"] == "stolen"


def test_enrolment_token_is_one_time_and_refusals_are_401(server):
    status, tok = server.admin("POST", "/v1/enrolment-tokens", {"uses": 1, "tags": ["lab"]})
    assert status == 201
    body = {"token": tok["token"], "profile": "rpi5", "name": "pi-kitchen"}
    status, creds = server.json("POST", "/v1/enrol", body)
    assert status == 201 and set(creds) >= {"device_id", "secret", "mqtt_username", "mqtt_password"}
    assert creds["mqtt_username"] == creds["device_id"] and creds["secret"].startswith(creds["device_id"] + ".")
    status, again = server.json("POST", "/v1/enrol", body)
    assert status == 401 and "used up" in again["error"]["message"]
    status, wrong = server.json("POST", "/v1/enrol", {**body, "token": tok["token"] + "x"})
    assert status == 401
    status, device = server.admin("GET", f"/v1/devices/{creds['device_id']}")
    assert device["name"] == "pi-kitchen" and device["tags"] == ["lab"] and device["profile"] == "rpi5"


def test_path_escaping_archives_are_refused_and_nothing_is_stored(server, decoder_bundle: Path):
    def tar_with(info: tarfile.TarInfo, data: bytes | None = None) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(decoder_bundle / "manifest.json", arcname="manifest.json")
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()

    link = tarfile.TarInfo("model.gguf")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    cases = [tar_with(tarfile.TarInfo("../../escape"), b"x"), tar_with(tarfile.TarInfo("/tmp/escape"), b"x"),
             tar_with(link), tar_with(dev)]
    for data in cases:
        status, body = _publish(server, data)
        message = body["error"]["message"]
        assert status == 400 and ("refusing the archive" in message or "regular files and folders only" in message), body
    store = server.registry.store
    assert [p for p in (store.root / "sha256").rglob("*") if p.is_file()] == []
    assert list(store.staging_dir().iterdir()) == []
    status, listing = server.admin("GET", "/v1/bundles")
    assert listing["bundles"] == []


def test_a_tampered_bundle_is_refused_at_publish(server, decoder_bundle: Path, archive_of):
    (decoder_bundle / "model.gguf").write_bytes(b"not the bytes the manifest hashed")
    status, body = _publish(server, archive_of(decoder_bundle))
    assert status == 400 and "truncated or replaced" in body["error"]["message"]


def test_bodies_are_capped_and_strict(server):
    status, _, raw = server.request("POST", "/v1/groups", b"{" + b" " * (70 << 10) + b"}",
                                    {"Content-Type": "application/json"}, server.admin_token)
    assert status == 413 and "exceeds the limit" in json.loads(raw)["error"]["message"]
    status, body = server.admin("POST", "/v1/groups", {"name": "g", "colour": "red"})
    assert status == 400 and "unknown field" in body["error"]["message"] and "colour" in body["error"]["message"]
    status, body = server.admin("POST", "/v1/groups", {"description": "no name"})
    assert status == 400 and "missing field(s) name" in body["error"]["message"]
    status, body = server.admin("POST", "/v1/groups", {"name": "../etc"})
    assert status == 400 and "is not a name" in body["error"]["message"]
    status, body = server.admin("POST", "/v1/enrolment-tokens", {"uses": True})
    assert status == 400
    status, _, raw = server.request("POST", "/v1/enrol", b"not json", {"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in json.loads(raw)["error"]["message"]
    status, body = server.admin("GET", "/v1/bundles?nmae=x")
    assert status == 400 and "unknown query parameter" in body["error"]["message"]
    status, body = server.admin("GET", "/v1/events?limit=0")
    assert status == 400
    status, _, raw = server.request("POST", "/v1/bundles", b"", {}, server.admin_token)
    assert status == 400 and "empty" in json.loads(raw)["error"]["message"]
    status, _, raw = server.request("POST", "/v1/bundles?memory_bytes=%C2%B2", b"", {}, server.admin_token)
    assert status == 400 and "memory_bytes" in json.loads(raw)["error"]["message"]  # "²": isdigit() but no int
    status, _, raw = server.request("DELETE", "/v1/bundles", None, {}, server.admin_token)
    assert status == 405
    assert server.request("GET", "/nowhere")[0] == 404


def test_groups_and_device_tags_over_http(server):
    status, group = server.admin("POST", "/v1/groups", {"name": "canaries", "description": "first to update"})
    assert status == 201
    creds = server.enrol(group="canaries")
    status, group = server.admin("GET", "/v1/groups/canaries")
    assert group["members"] == [creds["device_id"]] and group["devices"] == [creds["device_id"]]
    status, device = server.admin("PATCH", f"/v1/devices/{creds['device_id']}", {"tags": ["floor=1"]})
    assert status == 200 and device["tags"] == ["floor=1"]
    other = server.enrol()
    assert server.admin("PUT", f"/v1/groups/canaries/members/{other['device_id']}")[0] == 200
    status, listing = server.admin("GET", "/v1/devices?group=canaries")
    assert sorted(d["id"] for d in listing["devices"]) == sorted([creds["device_id"], other["device_id"]])
    assert server.admin("DELETE", f"/v1/groups/canaries/members/{other['device_id']}")[0] == 200
    assert server.admin("POST", "/v1/groups", {"name": "canaries"})[0] == 409


def test_policies_published_and_read_by_devices(server, tmp_path: Path):
    from edgeslm.runtime.tiers.policy import Policy, write_policy

    path = tmp_path / "assist-policy.json"
    write_policy(Policy(), path)
    text = path.read_text()
    status, record = server.admin("POST", "/v1/policies", {"policy": text})
    assert status == 201 and record["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert server.admin("POST", "/v1/policies", {"policy": text})[0] == 200
    creds = server.enrol()
    status, got = server.json("GET", f"/v1/policies/{record['sha256']}", token=creds["secret"])
    assert status == 200 and got["body"] == text and got["signature"] is None
    status, body = server.admin("POST", "/v1/policies", {"policy": text.replace("0.98", "0.5")})
    assert status == 400 and "does not match its sha256" in body["error"]["message"]


def test_no_secret_reaches_the_logs_or_the_event_log(server, published, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    creds = server.enrol()
    status, tok = server.admin("POST", "/v1/enrolment-tokens", {})
    server.request("GET", "/v1/whoami", token=creds["secret"])
    server.request("GET", "/v1/whoami", token=creds["secret"] + "x")
    server.json("POST", "/v1/enrol", {"token": tok["token"] + "x", "profile": "rpi4"})
    secrets = [server.admin_token, creds["secret"].split(".")[1], creds["mqtt_password"], tok["token"].split(".")[1]]
    status, events = server.admin("GET", "/v1/events?limit=1000")
    text = caplog.text + json.dumps(events)
    for secret in secrets:
        assert secret not in text


def test_an_oversized_upload_is_refused_before_its_body_is_read(server):
    """Content-Length over the bundle cap: 413 at once, without waiting for (or storing) a byte of it."""
    import socket

    head = (f"POST /v1/bundles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.admin_token}\r\n"
            f"Content-Length: {server.registry.max_bundle_bytes + 1}\r\n\r\n").encode()
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(head + b"x" * 1000)
        answer = b""
        while chunk := s.recv(65536):  # the server closes the connection after refusing: no 8 GiB to send
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"exceeds the limit" in answer
    assert list(server.registry.store.staging_dir().iterdir()) == []
