"""The HTTP port's defences: connection caps, and a deadline for every request's head.

aiohttp waits for a request's head as long as the client trickles bytes (its keep-alive timer
is reset by each one), so a few hundred slow clients hold their descriptors forever. Each
accepted connection is therefore wrapped in ``GuardedProtocol``, which

* counts it against the node's open-connection caps (per client address and in total) and drops
  it at once past them;
* gives each request ``request_timeout_s`` from its first byte (from the accept, for the first
  one) until aiohttp has parsed its head; past that the client gets 408 and the connection closes.

``GuardedSite`` listens with the wrapper; ``watch_requests`` is the middleware that tells the
wrapper when a head was parsed and when the request is done. Idle kept-alive connections are
closed by aiohttp's own ``keepalive_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from wirehub.server.admission import ConnectionCounter

__all__ = ["GuardedProtocol", "GuardedSite", "watch_requests"]

_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

_guards: dict[asyncio.BaseTransport, GuardedProtocol] = {}
"""The guard of every open HTTP connection, by transport (what a request knows of its connection)."""


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's request handler for one connection, counted and with a deadline per request head."""

    def __init__(self, inner: asyncio.Protocol, counter: ConnectionCounter, request_timeout_s: float) -> None:
        self._inner = inner
        self._counter = counter
        self._timeout_s = request_timeout_s
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._counter.try_open(self._address):
            self._transport.abort()
            return
        self._counted = True
        _guards[transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._counted:
            return
        if not self._in_request and self._deadline is None:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._counted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._counted:
            return
        self._counted = False
        self._counter.close(self._address)
        if self._transport is not None:
            _guards.pop(self._transport, None)
        self._inner.connection_lost(exc)

    # ------------------------------------------------------------------ from the middleware

    def head_received(self) -> None:
        self._disarm()
        self._in_request = True

    def request_done(self) -> None:
        self._in_request = False

    # ------------------------------------------------------------------ the deadline

    def _arm(self) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(self._timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(_TIMED_OUT)
            transport.close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def watch_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection's guard that a head arrived, and when the request is done."""
    guard = _guards.get(request.transport) if request.transport is not None else None
    if guard is not None:
        guard.head_received()
    try:
        return await handler(request)
    finally:
        if guard is not None:
            guard.request_done()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through ``GuardedProtocol``."""

    __slots__ = ("_counter", "_host", "_port", "_request_timeout_s", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        counter: ConnectionCounter,
        request_timeout_s: float,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._counter = counter
        self._request_timeout_s = request_timeout_s
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        factory = cast(Callable[[], Any], server)
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedProtocol(factory(), self._counter, self._request_timeout_s),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
        )
