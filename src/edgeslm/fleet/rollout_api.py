"""The rollouts' HTTP routes (operators only: the admin token), the telemetry the dashboard plots, and the dashboard's
own files (fleet/dashboard.py). api.py adds ROUTES to its own; every route runs in its wrapper (auth, errors).

GET  /v1/rollouts                      the latest rollouts with their devices' states counted (query: limit)
POST /v1/rollouts                      create one: a RolloutConfig as JSON (bundle, release, group, canary_fraction, ...)
                                       ("policy": a published policy's sha256, installed with the bundle)
GET  /v1/rollouts/{id}                 waves, every device's assignment, every gate measured, the reason for a halt
POST /v1/rollouts/{id}/pause|resume|abort|rollback    optional body {"reason": "why"}
GET  /v1/telemetry                     telemetry windows (query: device, since, limit)
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from edgeslm.config import is_decimal
from edgeslm.errors import ConfigError
from edgeslm.fleet import dashboard
from edgeslm.fleet.api import ADMIN, FleetApp, Principal, RouteSpec, json_response
from edgeslm.fleet.rollout import RolloutConfig, Rollouts
from edgeslm.fleet.schemas import check_text, parse
from edgeslm.runtime.server.errors import HttpError

NUMBER = re.compile(r"\d{1,15}(\.\d{1,6})?")
ACTIONS = ("pause", "resume", "abort", "rollback")


def _rollout_id(request: Request) -> int:
    raw = request.path_params["rollout_id"]
    if not is_decimal(raw) or len(raw) > 15:
        raise HttpError(404, f"{raw[:40]!r} is not a rollout id (GET /v1/rollouts lists them)", "not_found")
    return int(raw)


def _number(request: Request, name: str, default: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not NUMBER.fullmatch(raw) or float(raw) > high:
        raise HttpError(400, f"query parameter {name} must be a number in [0, {high:g}]")
    return float(raw)


async def list_rollouts(app: FleetApp, request: Request, who: Principal) -> Response:
    limit = int(_number(request, "limit", 100, 1000)) or 1
    return json_response({"rollouts": await run_in_threadpool(Rollouts(app.registry).recent, limit)})


async def create_rollout(app: FleetApp, request: Request, who: Principal) -> Response:
    body = await app.json_body(request)
    config = parse(RolloutConfig, body)
    return json_response(await run_in_threadpool(Rollouts(app.registry).create, config, who.actor), 201)


async def get_rollout(app: FleetApp, request: Request, who: Principal) -> Response:
    return json_response(await run_in_threadpool(Rollouts(app.registry).get, _rollout_id(request)))


def _action(name: str):
    async def act(app: FleetApp, request: Request, who: Principal) -> Response:
        rid = _rollout_id(request)
        body = await app.json_body(request) if request.headers.get("content-length", "0") != "0" else {}
        if not isinstance(body, dict) or set(body) - {"reason"}:
            raise HttpError(400, 'the body is optional: {"reason": "why"}')
        try:
            reason = check_text(body.get("reason", ""), "reason")
        except ConfigError as exc:
            raise HttpError(400, str(exc)) from None
        rollouts = Rollouts(app.registry)
        return json_response(await run_in_threadpool(getattr(rollouts, name), rid, who.actor, reason))
    act.__name__ = f"{name}_rollout"
    return act


async def telemetry(app: FleetApp, request: Request, who: Principal) -> Response:
    device = request.query_params.get("device")
    since = _number(request, "since", 0.0, 1e11)
    limit = int(_number(request, "limit", 1000, 100_000)) or 1
    rows = await run_in_threadpool(app.registry.telemetry, device, None, since, limit)
    return json_response({"telemetry": rows})


ROUTES = [
    RouteSpec("/v1/rollouts", ("GET",), list_rollouts, ADMIN, frozenset({"limit"})),
    RouteSpec("/v1/rollouts", ("POST",), create_rollout, ADMIN),
    RouteSpec("/v1/rollouts/{rollout_id}", ("GET",), get_rollout, ADMIN),
    *(RouteSpec(f"/v1/rollouts/{{rollout_id}}/{name}", ("POST",), _action(name), ADMIN) for name in ACTIONS),
    RouteSpec("/v1/telemetry", ("GET",), telemetry, ADMIN, frozenset({"device", "since", "limit"})),
    *dashboard.ROUTES,
]
