"""The account endpoints on the HTTP port: ``/auth/register``, ``/auth/login``, ``/auth/refresh``,
``/auth/logout`` and ``/auth/subscription-token``.

This module owns the HTTP edge: every request body must be ``application/json`` (415), at most
``accounts.max_body_bytes`` (413), a JSON object (400) whose fields have the expected types
(400); policy failures are 422, bad credentials 401, a taken username 409, exhausted limits 429
with ``Retry-After``, an unreachable store or broker 503. Every error is
``{"error": {"code": ..., "message": ...}}``. The rules themselves are the
``AccountService``'s (``wirehub.auth.accounts``).

``/auth/subscription-token`` takes a connection token (``Authorization: Bearer``) and a
``channel``, and asks the namespace's handler ``on_subscribe`` exactly as a subscribe over the
socket without a token would (``ctx.granted`` from the ``#`` user list and the namespace
options; ``ctx.client`` is empty, there being no connection yet). ``$`` channels are not refused
here: a subscription token is the only way into them, so the handler decides (the default
handler refuses, as ``$`` channels grant nothing by options). A ``#`` channel that does not list
the user is refused before the handler, as over the socket.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from wirehub.auth.base import AccountService, IssuedTokens
from wirehub.auth.errors import (
    AccountError,
    AccountsUnavailable,
    BadRequest,
    BearerTokenExpired,
    BodyTimeout,
    BodyTooLarge,
    InvalidBearerToken,
    PolicyViolation,
    SubscriptionRefused,
    UnknownNamespace,
    UnsupportedMediaType,
)
from wirehub.channels.context import Context
from wirehub.channels.policy import subscribe_granted
from wirehub.errors import (
    Forbidden,
    Invalid,
    KeysUnavailable,
    RequestError,
    TokenError,
    TokenExpired,
    UnknownChannel,
)
from wirehub.server.http_body import BodyTimeoutError, BodyTooLargeError, InvalidJsonError, read_json
from wirehub.server.node import Node
from wirehub.types import JSON, User

__all__ = ["AccountRoutes"]

logger = logging.getLogger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.Response]]


def error_response(exc: AccountError) -> web.Response:
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if isinstance(exc, InvalidBearerToken | BearerTokenExpired):
        headers["WWW-Authenticate"] = 'Bearer realm="wirehub"'
    return web.json_response(
        {"error": {"code": exc.code, "message": exc.message}}, status=exc.status, headers=headers
    )


def _guarded(handler: _Handler) -> _Handler:
    """Turn account errors into their JSON answers, and anything else into a logged 500."""

    async def run(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except AccountError as exc:
            return error_response(exc)
        except web.HTTPException:
            raise
        except Exception:
            logger.exception("account request failed", extra={"path": request.path})
            return error_response(AccountError())

    return run


class AccountRoutes:
    """Installs the ``/auth/*`` routes on an aiohttp application."""

    def __init__(self, node: Node, accounts: AccountService) -> None:
        self.node = node
        self.accounts = accounts
        self._max_body_bytes = accounts.settings.max_body_bytes

    def install(self, app: web.Application) -> None:
        app.router.add_post("/auth/register", _guarded(self._register))
        app.router.add_post("/auth/login", _guarded(self._login))
        app.router.add_post("/auth/refresh", _guarded(self._refresh))
        app.router.add_post("/auth/logout", _guarded(self._logout))
        app.router.add_post("/auth/subscription-token", _guarded(self._subscription_token))

    # ------------------------------------------------------------------ handlers

    async def _register(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        username, password = _string(body, "username"), _string(body, "password")
        session = await self.accounts.register(username, password, address=_address(request))
        return _session_response(session, status=201)

    async def _login(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        username, password = _string(body, "username"), _string(body, "password")
        session = await self.accounts.login(username, password, address=_address(request))
        return _session_response(session)

    async def _refresh(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        session = await self.accounts.refresh(_string(body, "refresh_token"))
        return _session_response(session)

    async def _logout(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        await self.accounts.logout(_string(body, "refresh_token"))
        return web.Response(status=204)

    async def _subscription_token(self, request: web.Request) -> web.Response:
        claims_user, claims_info, claims_meta, expire_at = await self._bearer(request)
        body = await self._body(request)
        channel = _string(body, "channel")
        try:
            name, options = self.node.resolve(channel)
        except UnknownChannel:
            raise UnknownNamespace("unknown channel namespace") from None
        except RequestError as exc:
            raise PolicyViolation(exc.message) from None
        try:
            # As over the socket; a ``$`` channel is not granted: the handler decides (the
            # default one refuses).
            granted = subscribe_granted(name, options, claims_user, token=False)
        except Forbidden:
            raise SubscriptionRefused() from None
        ctx = Context(
            user=User(id=claims_user, info=claims_info, meta=claims_meta),
            client="",
            channel=channel,
            options=options,
            granted=granted,
            data=body.get("data"),
            api=self.node.server,
            state=self.node.state,
        )
        handler = self.node.router.handler_for(name.namespace)
        try:
            data = await handler.on_subscribe(ctx)
        except Invalid as exc:
            raise PolicyViolation(exc.message) from None
        except Forbidden as exc:
            raise SubscriptionRefused(exc.message) from None
        except RequestError as exc:
            raise SubscriptionRefused(exc.message) from None
        token, expires_at = self.accounts.subscription_token(
            claims_user, channel, data=data, not_after=expire_at
        )
        return web.json_response({"token": token, "expires_at": expires_at, "channel": channel})

    # ------------------------------------------------------------------ request parts

    async def _bearer(self, request: web.Request) -> tuple[str, JSON, JSON, int | None]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidBearerToken("expected Authorization: Bearer <connection token>")
        try:
            claims = await self.node.verifier.verify_connection(token)
        except TokenExpired:
            raise BearerTokenExpired() from None
        except KeysUnavailable:
            raise AccountsUnavailable("token keys unavailable") from None
        except TokenError:
            raise InvalidBearerToken() from None
        return claims.user, claims.info, claims.meta, claims.expire_at

    async def _body(self, request: web.Request) -> dict[str, Any]:
        """The request's JSON object, read to at most ``max_body_bytes``."""
        if request.content_type != "application/json":
            raise UnsupportedMediaType()
        try:
            body = await read_json(request, self._max_body_bytes, self.node.settings.http.request_timeout_s)
        except BodyTooLargeError as exc:
            raise BodyTooLarge(str(exc)) from None
        except BodyTimeoutError as exc:
            raise BodyTimeout(str(exc)) from None
        except InvalidJsonError as exc:
            raise BadRequest(str(exc)) from None
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        return body


def _string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string")
    return value


def _address(request: web.Request) -> str:
    """The client address the per-address limit counts (the peer: no proxy header is trusted)."""
    return request.remote or "unknown"


def _session_response(session: IssuedTokens, *, status: int = 200) -> web.Response:
    return web.json_response(
        {
            "token": session.token,
            "expires_at": session.expires_at,
            "refresh_token": session.refresh_token,
            "refresh_expires_at": session.refresh_expires_at,
            "user": session.user,
            "username": session.username,
        },
        status=status,
        headers={"Cache-Control": "no-store"},
    )
