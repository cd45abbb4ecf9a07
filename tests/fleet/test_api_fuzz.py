"""Every API body parser under hypothesis, over real HTTP: whatever a client sends (any JSON, near-miss
objects, raw bytes, odd query strings, Range and Authorization headers), the answer is a deliberate 2xx or
a clear 4xx with the JSON error body; never a 5xx, a dropped connection or anything else. A few hundred
cases in the fast tier, 10,000 in the slow one."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# route -> the fields its body knows (near-miss bodies reuse them with wrong values)
JSON_ROUTES = {
    ("POST", "/v1/enrol"): ("token", "profile", "name", "isa", "memory_bytes"),
    ("POST", "/v1/enrolment-tokens"): ("group", "tags", "uses", "ttl_s"),
    ("POST", "/v1/groups"): ("name", "description", "profile", "tags"),
    ("POST", "/v1/policies"): ("policy", "signature"),
    ("PATCH", "/v1/devices/{device}"): ("tags",),
    ("POST", "/v1/devices/{device}/revoke"): ("reason",),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
labels = st.sampled_from(["rpi4", "avx2", "neon", "g1", "site=lyon", "", "../x", "a" * 70, "ünï", "x\x00y"])


@st.composite
def near_miss(draw, fields: tuple[str, ...]) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(fields), unique=True))
    body = {k: draw(labels | json_values | st.lists(labels, max_size=5)) for k in keys}
    if draw(st.booleans()):
        body[draw(st.text(max_size=12))] = draw(json_values)
    return body


@st.composite
def requests(draw) -> tuple[str, str, bytes, dict[str, str]]:
    kind = draw(st.sampled_from(["json", "near", "raw", "query", "range", "auth"]))
    method, path = draw(st.sampled_from(sorted(JSON_ROUTES)))
    headers = {"Content-Type": "application/json"}
    if kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "near":
        body = json.dumps(draw(near_miss(JSON_ROUTES[(method, path)]))).encode()
    elif kind == "raw":
        body = draw(st.binary(max_size=300))
    elif kind == "query":
        params = draw(st.dictionaries(st.sampled_from(["release", "variant", "isa", "memory_bytes", "name", "x"]),
                                      labels | st.text(max_size=20), max_size=3))
        method, path, body = "POST", "/v1/bundles?" + urllib.parse.urlencode(params), draw(st.binary(max_size=200))
    elif kind == "range":
        method, path, body = "GET", "/v1/bundles/{sha}/archive", b""
        headers["Range"] = draw(st.from_regex(r"bytes=[0-9]{0,20}-[0-9]{0,20}(,[0-9]{0,3}-[0-9]{0,3})?", fullmatch=True)
                                | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
        if draw(st.booleans()):
            headers["If-Range"] = draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=70))
    else:
        method, path, body = "GET", "/v1/whoami", b""
        headers["Authorization"] = draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120))
    return method, path, body, headers


@pytest.fixture(scope="module")
def target(module_server, tmp_path_factory):
    """The module's server with one published bundle and one enrolled device to aim at."""
    import hashlib
    import io

    from edgeslm.formats.archive import write_archive
    from edgeslm.formats.writer import BundleWriter

    folder = tmp_path_factory.mktemp("fuzz-bundle") / "b"
    with BundleWriter(folder) as w:
        w.path("model.gguf").write_bytes(b"\x00" * 3000)
        w.finish(name="fuzz", family="decoder", architecture="llama", task="text-generation", engine="llama.cpp",
                 model_file="model.gguf")
    buf = io.BytesIO()
    write_archive(folder, buf)
    status, _, _ = module_server.request("POST", "/v1/bundles", buf.getvalue(), {}, module_server.admin_token)
    assert status == 201
    device = module_server.enrol()
    return module_server, hashlib.sha256(buf.getvalue()).hexdigest(), device


def _send(target, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
    server, sha, device = target
    path = path.replace("{device}", device["device_id"]).replace("{sha}", sha)
    headers = {"Authorization": f"Bearer {server.admin_token}", **headers}
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (method, path, headers, body[:200], raw[:500])
    if resp.status >= 400:
        error = json.loads(raw)["error"]
        assert error["code"] == resp.status and isinstance(error["message"], str) and error["message"]


@FAST
@given(req=requests())
def test_fuzz_api(target, req):
    _send(target, *req)


@pytest.mark.slow
@SLOW
@given(req=requests())
def test_fuzz_api_slow(target, req):
    _send(target, *req)
