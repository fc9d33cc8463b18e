"""The server API on the HTTP port: ``POST /api/<method>``, shaped like Centrifugo's.

The HTTP edge of ``wirehub.api.Server``: it checks the key, reads and parses the body, calls the
server and shapes the answer the way Centrifugo's API clients (``cent``) expect:

* 404 while the API is off (no ``api.key`` and no ``api.insecure``);
* 401 for a missing or wrong key (``X-API-Key: KEY`` or ``Authorization: apikey KEY``, compared
  in constant time);
* 413 for a body over ``api.max_body_bytes``; 400 for a body that is not JSON or not the
  method's request, or an unknown method (the message names the field);
* otherwise 200, with ``{"result": {...}}`` or ``{"error": {"code": N, "message": "..."}}``;
  ``batch`` answers ``{"replies": [...]}``, one per command, each under its method's key or
  ``error``.

No CORS headers: the API is for backends, not pages.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Iterator, Sequence
from typing import assert_never

from aiohttp import web

from wirehub.api import PublishResult, Server
from wirehub.config import ApiSettings
from wirehub.errors import RequestError, error_reply
from wirehub.protocol.codec import encode
from wirehub.protocol.frames import HistoryRequest, PresenceRequest, PresenceStatsRequest
from wirehub.protocol.replies import presence_result, presence_stats_result
from wirehub.protocol.server_api import (
    ApiCommand,
    ApiRequestInvalid,
    BatchCommand,
    BroadcastCommand,
    ChannelsCommand,
    DisconnectCommand,
    HistoryRemoveCommand,
    InfoCommand,
    PublishCommand,
    parse_api_command,
)
from wirehub.server.http_body import BodyTimeoutError, BodyTooLargeError, InvalidJsonError, read_json
from wirehub.types import JSON, RefreshUser, SubscribeUser, UnsubscribeUser, WireDict

__all__ = ["ServerApiRoutes"]

logger = logging.getLogger(__name__)


def _json(body: JSON, status: int = 200) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type="application/json")


def _error(exc: BaseException) -> WireDict:
    reply = error_reply(exc)
    return {"error": {"code": reply.code, "message": reply.message}}


class ServerApiRoutes:
    """Installs ``POST /api/{method}`` on an aiohttp application."""

    def __init__(self, server: Server, settings: ApiSettings, *, request_timeout_s: float) -> None:
        self._server = server
        self._settings = settings
        self._request_timeout_s = request_timeout_s
        self._key = settings.key.encode()
        self.enabled = bool(settings.key) or settings.insecure

    def install(self, app: web.Application) -> None:
        if self.enabled and not self._settings.key:
            logger.warning("server API without a key (api.insecure): anyone who reaches the port may use it")
        app.router.add_post("/api/{method}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        if not self.enabled:
            raise web.HTTPNotFound()
        if self._key and not self._authorized(request):
            return _json({"error": {"code": 401, "message": "unauthorized"}}, status=401)
        method = request.match_info["method"]
        try:
            body = await read_json(request, self._settings.max_body_bytes, self._request_timeout_s)
            command = parse_api_command(method, body)
        except BodyTooLargeError as exc:
            return _json({"error": {"code": 413, "message": str(exc)}}, status=413)
        except BodyTimeoutError as exc:
            return _json({"error": {"code": 408, "message": str(exc)}}, status=408)
        except (InvalidJsonError, ApiRequestInvalid) as exc:
            return _json({"error": {"code": 400, "message": str(exc)}}, status=400)
        if isinstance(command, BatchCommand):
            return _json({"replies": await self._batch(command)})
        try:
            return _json({"result": await self._run(command)})
        except Exception as exc:
            return _json(self._failure(method, exc))

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("X-API-Key")
        if given is None:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "apikey":
                return False
            given = token.strip()
        return hmac.compare_digest(given.encode(), self._key)

    @staticmethod
    def _failure(method: str, exc: Exception) -> WireDict:
        if not isinstance(exc, RequestError):
            logger.error("server API %s failed", method, exc_info=exc)
        return _error(exc)

    async def _batch(self, batch: BatchCommand) -> list[JSON]:
        async def one(method: str, command: ApiCommand) -> JSON:
            try:
                return {method: await self._run(command)}
            except Exception as exc:
                return self._failure(method, exc)

        if batch.parallel:
            return list(await asyncio.gather(*(one(method, command) for method, command in batch.commands)))
        replies: list[JSON] = []
        for run in _same_channel_runs(batch.commands):
            # Publishes in a row to one channel are started together: the node keeps their order
            # (offsets and broker handoff follow the call order), and they share store round trips.
            replies.extend(await asyncio.gather(*(one(method, command) for method, command in run)))
        return replies

    async def _run(self, command: ApiCommand) -> WireDict:
        """Carry out one command; its result, or the request error it raised."""
        server = self._server
        match command:
            case PublishCommand(options=options):
                published = await server.publish(
                    command.channel,
                    command.data,
                    tags=options.tags,
                    idempotency_key=options.idempotency_key,
                    skip_history=options.skip_history,
                )
                return _published(published)
            case BroadcastCommand(options=options):
                results = await server.broadcast(
                    command.channels,
                    command.data,
                    tags=options.tags,
                    idempotency_key=options.idempotency_key,
                    skip_history=options.skip_history,
                )
                responses: list[JSON] = [
                    _error(r) if isinstance(r, RequestError) else {"result": _published(r)} for r in results
                ]
                return {"responses": responses}
            case SubscribeUser():
                return await _empty(
                    server.subscribe(
                        command.user,
                        command.channel,
                        client=command.client,
                        session=command.session,
                        info=command.info,
                        data=command.data,
                        recover_since=command.recover_since,
                        override=command.override,
                    )
                )
            case UnsubscribeUser():
                return await _empty(
                    server.unsubscribe(
                        command.user, command.channel, client=command.client, session=command.session
                    )
                )
            case DisconnectCommand():
                return await _empty(
                    server.disconnect(
                        command.user,
                        client=command.client,
                        session=command.session,
                        keep=command.whitelist,
                        code=command.code,
                        reason=command.reason,
                    )
                )
            case RefreshUser():
                return await _empty(
                    server.refresh(
                        command.user,
                        client=command.client,
                        session=command.session,
                        expired=command.expired,
                        expire_at=command.expire_at,
                    )
                )
            case PresenceRequest():
                # The same bodies as the client protocol's presence replies (Centrifugo's shape).
                return presence_result(await server.presence(command.channel))
            case PresenceStatsRequest():
                return presence_stats_result(await server.presence_stats(command.channel))
            case HistoryRequest():
                page = await server.history(
                    command.channel, limit=command.limit, since=command.since, reverse=command.reverse
                )
                return {
                    "publications": [pub.to_wire() for pub in page.publications],
                    "offset": page.position.offset,
                    "epoch": page.position.epoch,
                }
            case HistoryRemoveCommand():
                return await _empty(server.history_remove(command.channel))
            case ChannelsCommand():
                counts = await server.channels(command.pattern)
                return {"channels": {channel: {"num_clients": n} for channel, n in counts.items()}}
            case InfoCommand():
                nodes: list[JSON] = [node.to_wire() for node in await server.info()]
                return {"nodes": nodes}
            case BatchCommand():
                raise ApiRequestInvalid("batch inside batch")  # the parser never makes one
            case _:
                assert_never(command)


def _same_channel_runs(
    commands: Sequence[tuple[str, ApiCommand]],
) -> Iterator[list[tuple[str, ApiCommand]]]:
    """The commands in order, cut into runs: publishes in a row to one channel, or one other command."""
    run: list[tuple[str, ApiCommand]] = []
    for item in commands:
        if run and not _same_channel_publishes(run[-1][1], item[1]):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def _same_channel_publishes(first: ApiCommand, second: ApiCommand) -> bool:
    return (
        isinstance(first, PublishCommand)
        and isinstance(second, PublishCommand)
        and first.channel == second.channel
    )


def _published(result: PublishResult) -> WireDict:
    return {"offset": result.offset, "epoch": result.epoch}


async def _empty(action: Awaitable[None]) -> WireDict:
    await action
    return {}
