"""The dashboard: one page and its script and style (fleet/static/), served by the control plane with no data in
them. The data comes from the API, called by the page with the operator's admin token as a Bearer header: the
same authentication as every other client, no cookie (so no cross-site request can act with it) and no token in
a URL the server sees (a link may carry it after '#', which browsers never send; the page moves it to the tab's
sessionStorage and clears it from the address bar).

Everything the page needs ships here: no CDN, no web font, plots drawn as inline SVG, since a fleet's network may
reach no internet. The Content-Security-Policy allows this origin only, and no inline script.

GET /dashboard, /dashboard/app.js, /dashboard/style.css
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from edgeslm.fleet.api import NONE, FleetApp, Principal, RouteSpec

FILES = {"/dashboard": ("index.html", "text/html; charset=utf-8"),
         "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/dashboard/style.css": ("style.css", "text/css; charset=utf-8")}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def asset(name: str) -> bytes:
    return (resources.files("edgeslm.fleet") / "static" / name).read_bytes()


async def serve_asset(app: FleetApp, request: Request, who: Principal) -> Response:
    name, media = FILES[request.url.path]
    return Response(asset(name), media_type=media, headers=HEADERS)


ROUTES = [RouteSpec(path, ("GET",), serve_asset, NONE) for path in FILES]
