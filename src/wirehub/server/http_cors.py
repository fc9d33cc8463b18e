"""CORS for the endpoints a web page calls: ``/auth/*`` only.

A page on an origin the origin policy allows (the same one the WebSocket listener applies:
``server.allowed_origins``, or by default the page's own origin and, while the HTTP listener is
on loopback, loopback pages) gets its preflight answered (204) and ``Access-Control-Allow-Origin``
naming that origin, with ``Vary: Origin`` so that caches keep answers per origin. Any other
origin gets no CORS headers (a preflight is answered 403), so its browser keeps the answer from
the page. The endpoints take tokens in the body or the ``Authorization`` header, never cookies:
no ``Access-Control-Allow-Credentials``, and pages call them with ``credentials: "omit"`` or the
default ``"same-origin"``. The server API and ``/metrics`` are for backends and operators and
never send CORS headers.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from wirehub.server.origins import OriginPolicy

__all__ = ["CORS_PREFIX", "cors_middleware"]

CORS_PREFIX = "/auth/"
ALLOWED_METHODS = "POST"
ALLOWED_HEADERS = "Content-Type, Authorization"
PREFLIGHT_MAX_AGE_S = 600


def cors_middleware(policy: OriginPolicy) -> Middleware:
    """A middleware answering preflights and adding CORS headers under ``CORS_PREFIX``."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(CORS_PREFIX):
            return await handler(request)
        origins = request.headers.getall("Origin", [])
        origin = origins[0] if len(origins) == 1 else None
        allowed = origin is not None and policy.allows(origin, request.headers.get("Host"))
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return web.Response(status=403, text="origin not allowed\n", headers={"Vary": "Origin"})
            return web.Response(
                status=204,
                headers={
                    **_allow(origin),
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                },
            )
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if allowed:
                exc.headers.update(_allow(origin))
            raise
        if allowed:
            response.headers.update(_allow(origin))
        else:
            response.headers["Vary"] = "Origin"
        return response

    return cors


def _allow(origin: str | None) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin or "", "Vary": "Origin"}
