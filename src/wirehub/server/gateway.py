"""The WebSocket listener: accepts upgrades on the configured path and serves each connection.

A TCP connection past the open-connection caps (per client address, and in total: see
``admission``) is dropped as soon as it is accepted. Before the upgrade the listener refuses,
cheaply and with plain HTTP: another path (404), a browser origin the origin policy refuses
(403: ``server.allowed_origins``, or by default the page's own origin and, on a loopback listener,
loopback pages; see ``limits.OriginPolicy``), and handshakes beyond ``client.connection_rate_per_s`` on this
replica or ``client.connection_rate_per_address_per_s`` from one address (503 with
``Retry-After``; the SDKs retry with backoff). A client that does not finish its handshake within
``server.handshake_timeout_s`` is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from http import HTTPStatus
from typing import cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import DATA_OPCODES, Frame
from websockets.http11 import Request, Response
from websockets.protocol import Event

from wirehub.errors import DisconnectShutdown
from wirehub.server.admission import ConnectionCounter, HandshakeBuckets
from wirehub.server.connection import Client
from wirehub.server.node import Node
from wirehub.server.origins import OriginPolicy, is_loopback_host
from wirehub.server.rate import TokenBucket

__all__ = [
    "CountedServerConnection",
    "Gateway",
]

logger = logging.getLogger(__name__)


def _peer_address(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class CountedServerConnection(ServerConnection):
    """A websockets connection that counts itself against the node's open-connection caps, and
    hands the frames it receives to its client before it queues them for ``recv``."""

    # A slot, not an attribute in the instance's dict: one more key there would grow that dict
    # of every connection, about 1.4 KiB each.
    __slots__ = ("client",)

    counter: ConnectionCounter
    """Set on the subclass each gateway makes (``_connection_class``)."""
    peer_address = ""
    counted = False

    def process_event(self, event: Event) -> None:
        client = self.client
        if (
            client is not None
            and isinstance(event, Frame)
            and event.opcode in DATA_OPCODES
            and client.take_frame(event)
        ):
            return  # run already (see ``Client.take_frame``): nothing to queue
        super().process_event(event)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client: Client | None = None
        """The client serving the connection, once it does."""
        self.peer_address = _peer_address(transport)
        self.counted = self.counter.try_open(self.peer_address)
        super().connection_made(transport)
        if not self.counted:
            cast(asyncio.Transport, transport).abort()  # before the handshake: the fd is back at once

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.counter.close(self.peer_address)
            self.counted = False
        super().connection_lost(exc)


class Gateway:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._server: Server | None = None
        server = node.settings.server
        self._origins = OriginPolicy(server.allowed_origins, loopback_listener=is_loopback_host(server.host))
        client = node.settings.client
        self._handshakes: TokenBucket | None = None
        if client.connection_rate_per_s > 0:
            self._handshakes = TokenBucket(
                client.connection_rate_per_s, client.connection_burst, time.monotonic()
            )
        self._address_handshakes: HandshakeBuckets | None = None
        if client.connection_rate_per_address_per_s > 0:
            self._address_handshakes = HandshakeBuckets(
                client.connection_rate_per_address_per_s, client.connection_burst_per_address
            )
        self._refusal_logged_at = float("-inf")
        self._refused_since_log = 0
        self._connection_class = type(
            "NodeServerConnection", (CountedServerConnection,), {"counter": node.connections}
        )

    async def start(self) -> None:
        settings = self.node.settings
        self._server = await serve(
            self._serve_client,
            settings.server.host,
            settings.server.port,
            process_request=self._admit,
            max_size=settings.client.max_message_bytes,
            # permessage-deflate costs several times the CPU and memory: off unless configured.
            compression="deflate" if settings.server.compression else None,
            # Pings are the protocol's own ({} every ping_interval_s), not WebSocket frames.
            ping_interval=None,
            close_timeout=2,
            open_timeout=settings.server.handshake_timeout_s,
            create_connection=self._connection_class,
            # Several worker processes share the port (``serve --workers N``): the kernel spreads
            # new connections over them.
            reuse_port=settings.server.reuse_port or None,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a handshake before the upgrade: 404, 403 or 503; None lets it through."""
        refusal = self._check_path(connection, request)
        if refusal is not None:
            return refusal
        origins = request.headers.get_all("Origin")
        host = request.headers.get("Host")
        if len(origins) > 1 or not self._origins.allows(origins[0] if origins else None, host):
            logger.info(
                "connect refused",
                extra={
                    "code": 403,
                    "reason": "origin not allowed: add it to server.allowed_origins",
                    "origin": ", ".join(origins),
                    "remote": _peer_address(connection.transport),
                },
            )
            self.node.metrics.connect_refused(403)
            return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        now = time.monotonic()
        if self._address_handshakes is not None:
            address = self.node.proxies.client_address(
                _peer_address(connection.transport), request.headers.get("X-Forwarded-For")
            )
            if not self._address_handshakes.try_take(address, now):
                return self._too_many(connection, "client.connection_rate_per_address_per_s", now)
        if self._handshakes is not None and not self._handshakes.try_take(now):
            return self._too_many(connection, "client.connection_rate_per_s", now)
        return None

    def _too_many(self, connection: ServerConnection, setting: str, now: float) -> Response:
        # A flood of refusals must not become a flood of log lines: one per second at most.
        self._refused_since_log += 1
        if now - self._refusal_logged_at >= 1.0:
            logger.info(
                "connect refused",
                extra={
                    "code": 503,
                    "reason": f"handshake rate over {setting}",
                    "remote": _peer_address(connection.transport),
                    "refused": self._refused_since_log,
                },
            )
            self._refusal_logged_at = now
            self._refused_since_log = 0
        self.node.metrics.connect_refused(503)
        response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many new connections\n")
        response.headers["Retry-After"] = "1"
        return response

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path != self.node.settings.server.ws_path:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    def _serve_client(self, ws: ServerConnection) -> Awaitable[None]:
        client = Client(self.node, ws)
        if isinstance(ws, CountedServerConnection):
            ws.client = client
        # The client's own coroutine, not one wrapping it: one coroutine frame less per connection.
        return client.serve()

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, close every client with 3001, and wait (bounded) for them to go."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        await self.node.disconnect_all(DisconnectShutdown(), timeout_s=timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                await self._server.wait_closed()
        except TimeoutError:
            logger.warning("server did not close in time")
