"""The control plane's HTTP API (Starlette; uvicorn serves it, server.py). Every route names who may call it:
nobody in particular (health, enrolment with a one-time token), an operator (the admin token), or a device
(its own token from enrolment, `Authorization: Bearer DEVICE_ID.SECRET`). A device reads its own record,
bundle metadata and archives, and policies; everything else is for operators.

GET  /healthz                                 liveness
POST /v1/enrol                                a device enrols with an enrolment token -> its credentials
GET  /v1/whoami                               who the credentials belong to
POST /v1/enrolment-tokens                     operator: a token for N devices
GET  /v1/bundles  POST /v1/bundles            operator: list; publish an archive (the body; query: release,
                                              variant, isa, memory_bytes)
GET  /v1/bundles/{sha256}                     a bundle's record
GET  /v1/bundles/{sha256}/archive             the archive, resumable: Range, If-Range, ETag (= the sha256)
GET  /v1/policies  POST /v1/policies          operator: list; publish {"policy": text, "signature": text}
GET  /v1/policies/{sha256}                    a policy's record with its text and signature
GET  /v1/devices  GET|PATCH /v1/devices/{id}  operator (a device may GET its own record)
POST /v1/devices/{id}/revoke                  operator: {"reason": text}
GET  /v1/groups  POST /v1/groups  GET /v1/groups/{name}
PUT|DELETE /v1/groups/{name}/members/{id}     operator
GET  /v1/events                               operator: the event log (query: subject, after, limit)

Every body is size-capped before it is read (413), JSON bodies are parsed strictly (schemas.py: unknown
fields refused), and every refusal is a JSON error with a message the caller can act on. Nothing here logs a
header, a body, a token or a secret. More routes (rollouts) plug in with `FleetApp.add_route`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from edgeslm.config import is_decimal
from edgeslm.errors import BundleError, ConfigError
from edgeslm.fleet.credentials import digest
from edgeslm.fleet.errors import FleetError
from edgeslm.fleet.registry import Registry
from edgeslm.fleet.schemas import (
    DeviceUpdate,
    EnrolRequest,
    EnrolTokenConfig,
    GroupConfig,
    PolicyUpload,
    PublishConfig,
    check_isa,
    check_text,
    parse,
)
from edgeslm.fleet.store import check_sha256
from edgeslm.runtime.server.errors import HttpError, parse_json

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 64 << 10  # a policy body is the exception (schemas.MAX_POLICY_CHARS): its route says so
BODY_IDLE_TIMEOUT_S = 30.0  # a client that stops sending mid-body; a large upload may take minutes, but never idle
BYTES_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
NONE, ADMIN, ANY = "none", "admin", "any"
# A refused body is not read: closing the connection spares the client sending the rest (uvicorn would read and
# drop it to keep the connection alive).
CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" | "device" | "anonymous"
    device_id: str | None = None

    @property
    def actor(self) -> str:
        return "admin" if self.kind == "admin" else f"device:{self.device_id}" if self.device_id else "anonymous"


Handler = Callable[["FleetApp", Request, Principal], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    path: str
    methods: tuple[str, ...]
    handler: Handler
    auth: str  # NONE | ADMIN | ANY
    query: frozenset[str] = frozenset()  # the query parameters the route reads; any other is refused


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(err: HttpError) -> Response:
    return Response(err.body(), status_code=err.status, media_type="application/json", headers=err.headers)


class FleetApp:
    def __init__(self, registry: Registry, admin_token: str, max_json_bytes: int = MAX_JSON_BYTES):
        self.registry, self.max_json_bytes = registry, max_json_bytes
        self._admin_digest = digest(admin_token)
        from edgeslm.fleet.rollout_api import ROUTES as MORE  # rollouts and the dashboard (they import this module)
        self.routes: list[RouteSpec] = [*ROUTES, *MORE]

    def add_route(self, path: str, methods: tuple[str, ...], handler: Handler, auth: str = ADMIN,
                  query: frozenset[str] = frozenset()) -> None:
        """Another part of the control plane (rollouts, the dashboard) adds its routes before asgi()."""
        if auth not in (NONE, ADMIN, ANY):
            raise ValueError(f"auth must be one of {NONE}, {ADMIN}, {ANY}")
        self.routes.append(RouteSpec(path, methods, handler, auth, query))

    def asgi(self) -> Starlette:
        routes = [Route(r.path, self._endpoint(r), methods=list(r.methods)) for r in self.routes]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._not_routed})
        app.router.redirect_slashes = False
        return app

    # -- the wrapper every route runs in -------------------------------------------------------------
    def _endpoint(self, spec: RouteSpec) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                _check_query(request, spec.query)
                who = await self.authenticate(request, spec.auth)
                return await spec.handler(self, request, who)
            except HttpError as err:
                return error_response(err)
            except FleetError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                return error_response(HttpError(exc.status, str(exc), exc.kind, headers))
            except (ConfigError, BundleError) as exc:  # a bad body, policy, archive or signature: the caller's to fix
                return error_response(HttpError(400, str(exc)))
            except ClientDisconnect:
                return error_response(HttpError(400, "the client left before its body arrived"))
            except Exception:  # a bug, not the caller's fault: logged with its traceback (never a header or body)
                log.exception("%s %s failed", request.method, request.url.path[:200])
                return error_response(HttpError(500, "internal error; see the control plane's log", "server_error"))
        return endpoint

    async def _not_routed(self, request: Request, exc: Exception) -> Response:
        path, method = request.url.path[:100], request.method[:10]
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return error_response(HttpError(405, f"{path} takes {allowed}, not {method}", headers={"Allow": allowed}))
        return error_response(HttpError(404, f"no route {path}; the API is under /v1 (see the module doc of "
                                             "edgeslm.fleet.api)", "not_found"))

    async def authenticate(self, request: Request, auth: str) -> Principal:
        if auth == NONE:
            return Principal("anonymous")
        header = request.headers.get("authorization")
        if header is None:
            raise _unauthorized("this route needs credentials: Authorization: Bearer TOKEN (an operator's admin token, "
                                "or a device's token from enrolment)")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("give credentials as Authorization: Bearer TOKEN")
        if hmac.compare_digest(digest(token), self._admin_digest):
            return Principal("admin")
        device = await run_in_threadpool(self.registry.authenticate_device, token)
        if device is None:
            raise _unauthorized("the credentials are not valid (unknown, wrong or revoked)")
        claimed = request.headers.get("x-edgeslm-device")
        if claimed is not None and claimed != device["id"]:
            raise _unauthorized("X-Edgeslm-Device names another device than the token's")
        if auth == ADMIN:
            raise HttpError(403, "this route is for operators (the admin token); a device may read its own record, "
                                 "bundles and policies", "forbidden")
        return Principal("device", device["id"])

    # -- bodies ----------------------------------------------------------------------------------------
    async def json_body(self, request: Request, max_bytes: int | None = None) -> Any:
        """The request's JSON body, refused past `max_bytes` before a byte of it is read (413)."""
        limit = max_bytes or self.max_json_bytes
        chunks = [c async for c in _capped_stream(request, limit)]
        return parse_json(b"".join(chunks))

    async def parse_body(self, request: Request, cls: type, max_bytes: int | None = None) -> Any:
        return parse(cls, await self.json_body(request, max_bytes))


def _unauthorized(message: str) -> HttpError:
    return HttpError(401, message, "unauthorized", {"WWW-Authenticate": "Bearer"})


def _check_query(request: Request, allowed: frozenset[str]) -> None:
    keys = [k for k, _ in request.query_params.multi_items()]
    unknown = sorted(set(keys) - allowed)
    if unknown:
        raise HttpError(400, f"unknown query parameter(s) {', '.join(repr(k[:40]) for k in unknown[:5])}"
                             + (f"; this route takes {', '.join(sorted(allowed))}" if allowed else "; this route takes none"))
    if len(keys) != len(set(keys)):
        raise HttpError(400, "a query parameter is repeated; give each once")


def _length(request: Request, limit: int) -> int:
    if "transfer-encoding" in request.headers:
        raise HttpError(411, "chunked request bodies are not accepted; send Content-Length", headers=CLOSE)
    raw = request.headers.get("content-length", "0")
    length = int(raw) if raw.isdigit() else 0  # llhttp has refused any other spelling already
    if length > limit:
        raise HttpError(413, f"the body of {length} bytes exceeds the limit of {limit} bytes", headers=CLOSE)
    return length


async def _capped_stream(request: Request, limit: int):
    length = _length(request, limit)
    if length == 0:
        return
    got, stream = 0, request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), BODY_IDLE_TIMEOUT_S)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise HttpError(408, f"the body stalled for {BODY_IDLE_TIMEOUT_S:g} s after {got} of {length} bytes",
                            headers=CLOSE) from None
        got += len(chunk)
        if got > limit:
            raise HttpError(413, f"the body exceeds the limit of {limit} bytes", headers=CLOSE)
        if chunk:
            yield chunk


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not is_decimal(raw) or len(raw) > 18 or not low <= int(raw) <= high:
        raise HttpError(400, f"query parameter {name} must be an integer in [{low}, {high}]")
    return int(raw)


def _sha_param(request: Request) -> str:
    return check_sha256(request.path_params["sha256"])


def _device_param(request: Request, who: Principal) -> str:
    device_id = request.path_params["device_id"]
    if who.kind == "device" and who.device_id != device_id:
        raise HttpError(403, "a device may read only its own record", "forbidden")
    return device_id


# --- routes -------------------------------------------------------------------------------------------------

async def healthz(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response({"status": "ok"})


async def whoami(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response({"kind": who.kind, "device_id": who.device_id})


async def enrol(app: FleetApp, request: Request, who: Principal) -> Response:
    body = await app.parse_body(request, EnrolRequest)
    return json_response(await run_in_threadpool(app.registry.enrol, body), 201)


async def create_enrolment_token(app: FleetApp, request: Request, who: Principal) -> Response:
    spec = await app.parse_body(request, EnrolTokenConfig)
    return json_response(await run_in_threadpool(app.registry.create_enrolment_token, spec, who.actor), 201)


async def list_bundles(app: FleetApp, request: Request, who: Principal) -> Response:
    q = request.query_params
    return json_response({"bundles": await run_in_threadpool(app.registry.bundles, q.get("name"), q.get("release"))})


async def publish_bundle(app: FleetApp, request: Request, who: Principal) -> Response:
    options = _publish_options(request)
    registry = app.registry
    _length(request, registry.max_bundle_bytes)  # a 413 before anything is staged
    staged = await run_in_threadpool(registry.stage_upload)
    with staged:
        async for chunk in _capped_stream(request, registry.max_bundle_bytes):
            await run_in_threadpool(staged.write, chunk)
        path, sha, size = await run_in_threadpool(staged.finish)
    if size == 0:
        raise HttpError(400, "the body is empty: send the bundle archive (edgeslm fleet publish does this for a folder)")
    record, created = await run_in_threadpool(registry.publish_staged, path, sha, size, options, who.actor)
    return json_response(record, 201 if created else 200)


def _publish_options(request: Request) -> PublishConfig:
    q = request.query_params
    isa = [s for s in q.get("isa", "").split(",") if s] if "isa" in q else []
    memory = _int_param(request, "memory_bytes", 0, 1, 1 << 50) or None
    try:
        check_isa(isa, "isa")
        return PublishConfig(release=q.get("release"), variant=q.get("variant"), isa=isa, memory_bytes=memory)
    except ConfigError as exc:
        raise HttpError(400, str(exc)) from None


async def get_bundle(app: FleetApp, request: Request, who: Principal) -> Response:
    manifest = request.query_params.get("manifest") == "1"
    return json_response(await run_in_threadpool(app.registry.bundle, _sha_param(request), manifest))


async def bundle_archive(app: FleetApp, request: Request, who: Principal) -> Response:
    sha = _sha_param(request)
    await run_in_threadpool(app.registry.bundle, sha)  # NotFound unless the registry filed it
    store = app.registry.store
    size = await run_in_threadpool(store.size, sha)
    etag = f'"{sha}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=31536000, immutable"}
    if_none = request.headers.get("if-none-match")
    if if_none is not None and (if_none.strip() == "*" or etag in [t.strip() for t in if_none.split(",")]):
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's partial copy is of other bytes: send it all (RFC 9110 13.1.5)
    span = parse_range(wanted, size) if wanted is not None else None
    start, end = span if span is not None else (0, size - 1)
    length = end - start + 1
    headers["Content-Length"] = str(length)
    status = 200
    if span is not None:
        status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/x-tar")
    chunks = await run_in_threadpool(store.read_range, sha, start, length)
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type="application/x-tar")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range [start, end] a Range header asks of `size` bytes, or None to send the whole archive:
    another unit, or several ranges (allowed by RFC 9110 14.2; a download resumes with one). A malformed or
    unsatisfiable bytes range is a 416 with Content-Range: bytes */size."""
    header = header.strip()
    if not header.lower().startswith("bytes="):
        return None
    if "," in header:
        return None
    refuse = {"Content-Range": f"bytes */{size}"}
    match = BYTES_RANGE.fullmatch("bytes=" + header[6:].replace(" ", ""))
    if match is None or (not match[1] and not match[2]) or len(match[1]) > 18 or len(match[2]) > 18:
        raise HttpError(416, f"malformed Range {header[:60]!r}: use bytes=START-, bytes=START-END or bytes=-SUFFIX",
                        "range_not_satisfiable", refuse)
    if not match[1]:  # bytes=-N: the last N bytes
        suffix = int(match[2])
        if suffix == 0:
            raise HttpError(416, "Range bytes=-0 asks for no bytes", "range_not_satisfiable", refuse)
        return max(0, size - suffix), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start > end:
        raise HttpError(416, f"Range {header[:60]!r} ends before it starts", "range_not_satisfiable", refuse)
    if start >= size:
        raise HttpError(416, f"Range starts at byte {start}; the archive has {size} bytes", "range_not_satisfiable", refuse)
    return start, min(end, size - 1)


async def list_policies(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response({"policies": await run_in_threadpool(app.registry.policies)})


async def publish_policy(app: FleetApp, request: Request, who: Principal) -> Response:
    from edgeslm.fleet.schemas import MAX_POLICY_CHARS

    upload = await app.parse_body(request, PolicyUpload, max_bytes=2 * MAX_POLICY_CHARS + (64 << 10))
    record, created = await run_in_threadpool(app.registry.publish_policy, upload, who.actor)
    return json_response(record, 201 if created else 200)


async def get_policy(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response(await run_in_threadpool(app.registry.policy, _sha_param(request), True))


async def list_devices(app: FleetApp, request: Request, who: Principal) -> Response:
    group = request.query_params.get("group")
    return json_response({"devices": await run_in_threadpool(app.registry.devices, group)})


async def get_device(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response(await run_in_threadpool(app.registry.device, _device_param(request, who)))


async def patch_device(app: FleetApp, request: Request, who: Principal) -> Response:
    update = await app.parse_body(request, DeviceUpdate)
    device_id = request.path_params["device_id"]
    return json_response(await run_in_threadpool(app.registry.update_device, device_id, update, who.actor))


async def revoke_device(app: FleetApp, request: Request, who: Principal) -> Response:
    body = await app.json_body(request)
    if not isinstance(body, dict) or set(body) != {"reason"}:
        raise HttpError(400, 'the body must be {"reason": "why the device is revoked"}')
    try:
        reason = check_text(body["reason"], "reason")
    except ConfigError as exc:
        raise HttpError(400, str(exc)) from None
    device_id = request.path_params["device_id"]
    return json_response(await run_in_threadpool(app.registry.revoke_device, device_id, who.actor, reason))


async def list_groups(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response({"groups": await run_in_threadpool(app.registry.groups)})


async def create_group(app: FleetApp, request: Request, who: Principal) -> Response:
    spec = await app.parse_body(request, GroupConfig)
    return json_response(await run_in_threadpool(app.registry.create_group, spec, who.actor), 201)


async def get_group(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response(await run_in_threadpool(app.registry.group, request.path_params["name"]))


async def group_member(app: FleetApp, request: Request, who: Principal) -> Response:
    name, device_id = request.path_params["name"], request.path_params["device_id"]
    change = app.registry.add_member if request.method == "PUT" else app.registry.remove_member
    return json_response(await run_in_threadpool(change, name, device_id, who.actor))


async def list_events(app: FleetApp, request: Request, who: Principal) -> Response:
    after = _int_param(request, "after", 0, 0, 1 << 62)
    limit = _int_param(request, "limit", 100, 1, 1000)
    subject = request.query_params.get("subject")
    return json_response({"events": await run_in_threadpool(app.registry.events, subject, after, limit)})


ROUTES = [
    RouteSpec("/healthz", ("GET",), healthz, NONE),
    RouteSpec("/v1/enrol", ("POST",), enrol, NONE),
    RouteSpec("/v1/whoami", ("GET",), whoami, ANY),
    RouteSpec("/v1/enrolment-tokens", ("POST",), create_enrolment_token, ADMIN),
    RouteSpec("/v1/bundles", ("GET",), list_bundles, ADMIN, frozenset({"name", "release"})),
    RouteSpec("/v1/bundles", ("POST",), publish_bundle, ADMIN, frozenset({"release", "variant", "isa", "memory_bytes"})),
    RouteSpec("/v1/bundles/{sha256}", ("GET",), get_bundle, ANY, frozenset({"manifest"})),
    RouteSpec("/v1/bundles/{sha256}/archive", ("GET", "HEAD"), bundle_archive, ANY),
    RouteSpec("/v1/policies", ("GET",), list_policies, ADMIN),
    RouteSpec("/v1/policies", ("POST",), publish_policy, ADMIN),
    RouteSpec("/v1/policies/{sha256}", ("GET",), get_policy, ANY),
    RouteSpec("/v1/devices", ("GET",), list_devices, ADMIN, frozenset({"group"})),
    RouteSpec("/v1/devices/{device_id}", ("GET",), get_device, ANY),
    RouteSpec("/v1/devices/{device_id}", ("PATCH",), patch_device, ADMIN),
    RouteSpec("/v1/devices/{device_id}/revoke", ("POST",), revoke_device, ADMIN),
    RouteSpec("/v1/groups", ("GET",), list_groups, ADMIN),
    RouteSpec("/v1/groups", ("POST",), create_group, ADMIN),
    RouteSpec("/v1/groups/{name}", ("GET",), get_group, ADMIN),
    RouteSpec("/v1/groups/{name}/members/{device_id}", ("PUT", "DELETE"), group_member, ADMIN),
    RouteSpec("/v1/events", ("GET",), list_events, ADMIN, frozenset({"subject", "after", "limit"})),
]
