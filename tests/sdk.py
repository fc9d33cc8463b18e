"""Helpers for driving the real centrifuge-python SDK (0.7.0) in tests.

Every wait is on a queue that an SDK event handler fills, under a deadline; nothing sleeps.
``CuttableProxy`` is a TCP relay in front of a gateway that a test can cut (the SDK then
reconnects) and hold (new connections wait until released), so what happens while a client is
away is deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    JoinContext,
    LeaveContext,
    PublicationContext,
    ServerPublicationContext,
    ServerSubscribedContext,
    ServerSubscribingContext,
    ServerUnsubscribedContext,
    SubscribedContext,
    SubscribingContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from tests.gateway_process import GatewayProcess

T = TypeVar("T")

TIMEOUT_S = 10.0
"""Deadline for one awaited event; generous, since a failing wait fails the test anyway."""

CONNECT_CALLED = 0
"""SDK code of the on_connecting / on_subscribing event that connect() / subscribe() emit."""
TRANSPORT_CLOSED = 1
"""SDK code when the transport closed without a server close code (a dropped TCP connection)."""
UNAUTHORIZED = 1
"""SDK on_disconnected code when an expired token cannot be replaced (no get_token)."""


# --------------------------------------------------------------------------- waiting


async def next_event(queue: asyncio.Queue[T]) -> T:
    """The next item an event handler queued, failing the test after ``TIMEOUT_S``."""
    async with asyncio.timeout(TIMEOUT_S):
        return await queue.get()


async def next_matching(queue: asyncio.Queue[T], predicate: Callable[[T], bool]) -> T:
    """The next queued item that satisfies ``predicate``; earlier ones are dropped."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            item = await queue.get()
            if predicate(item):
                return item


def drain(queue: asyncio.Queue[T]) -> list[T]:
    """Everything queued right now, without waiting."""
    items: list[T] = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


# --------------------------------------------------------------------------- SDK event handlers


class ClientEvents(ClientEventHandler):  # type: ignore[misc]
    """Queues every client-level event, including those of server-side subscriptions."""

    def __init__(self) -> None:
        self.connecting: asyncio.Queue[ConnectingContext] = asyncio.Queue()
        self.connected: asyncio.Queue[ConnectedContext] = asyncio.Queue()
        self.disconnected: asyncio.Queue[DisconnectedContext] = asyncio.Queue()
        self.errors: asyncio.Queue[ErrorContext] = asyncio.Queue()
        self.subscribed: asyncio.Queue[ServerSubscribedContext] = asyncio.Queue()
        self.subscribing: asyncio.Queue[ServerSubscribingContext] = asyncio.Queue()
        self.unsubscribed: asyncio.Queue[ServerUnsubscribedContext] = asyncio.Queue()
        self.publications: asyncio.Queue[ServerPublicationContext] = asyncio.Queue()

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.connecting.put_nowait(ctx)

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connected.put_nowait(ctx)

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnected.put_nowait(ctx)

    async def on_error(self, ctx: ErrorContext) -> None:
        self.errors.put_nowait(ctx)

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        self.subscribed.put_nowait(ctx)

    async def on_subscribing(self, ctx: ServerSubscribingContext) -> None:
        self.subscribing.put_nowait(ctx)

    async def on_unsubscribed(self, ctx: ServerUnsubscribedContext) -> None:
        self.unsubscribed.put_nowait(ctx)

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        self.publications.put_nowait(ctx)


class SubEvents(SubscriptionEventHandler):  # type: ignore[misc]
    """Queues every event of one client-side subscription."""

    def __init__(self) -> None:
        self.subscribing: asyncio.Queue[SubscribingContext] = asyncio.Queue()
        self.subscribed: asyncio.Queue[SubscribedContext] = asyncio.Queue()
        self.unsubscribed: asyncio.Queue[UnsubscribedContext] = asyncio.Queue()
        self.publications: asyncio.Queue[PublicationContext] = asyncio.Queue()
        self.joins: asyncio.Queue[JoinContext] = asyncio.Queue()
        self.leaves: asyncio.Queue[LeaveContext] = asyncio.Queue()
        self.errors: asyncio.Queue[SubscriptionErrorContext] = asyncio.Queue()

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.subscribing.put_nowait(ctx)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.put_nowait(ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.put_nowait(ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.publications.put_nowait(ctx)

    async def on_join(self, ctx: JoinContext) -> None:
        self.joins.put_nowait(ctx)

    async def on_leave(self, ctx: LeaveContext) -> None:
        self.leaves.put_nowait(ctx)

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self.errors.put_nowait(ctx)


class Clients:
    """Creates SDK clients and disconnects every one of them in ``close()``."""

    def __init__(self) -> None:
        self._clients: list[Any] = []

    def new(self, url: str, token: str = "", events: ClientEvents | None = None, **kwargs: Any) -> Any:
        # proxy=None: never route loopback test traffic through a proxy from the environment.
        client = Client(url, events=events or ClientEvents(), token=token, proxy=None, **kwargs)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.disconnect()


async def subscribed(sub: Any, events: SubEvents) -> Any:
    """Subscribe and return the SubscribedContext of this subscribe."""
    await sub.subscribe()
    return await next_event(events.subscribed)


# --------------------------------------------------------------------------- a cuttable transport


class CuttableProxy:
    """A TCP relay in front of the gateway whose connections a test can cut.

    ``cut()`` aborts every relayed connection (both sides see a dropped TCP connection, no close
    frame). While ``hold()`` is in effect, new connections are accepted but not relayed until
    ``release()``; the gateway they go to is read at that moment, so ``retarget()`` can point
    them at a restarted gateway.
    """

    def __init__(self, ws_url: str) -> None:
        self._target = urlsplit(ws_url)
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = urlunsplit(self._target._replace(netloc=f"127.0.0.1:{port}"))

    def retarget(self, ws_url: str) -> None:
        self._target = urlsplit(ws_url)

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def cut(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.release()
        self.cut()
        # Not cancelled (asyncio's start_server logs a cancelled handler as an error): with
        # their transports aborted, the relays end by themselves.
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _relay(self, down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._transports.add(down_writer.transport)
        try:
            await self._open.wait()
            if down_writer.transport.is_closing():
                return  # cut, or given up by the client, while held
            host, port = self._target.hostname, self._target.port
            assert host is not None
            assert port is not None
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                down_writer.transport.abort()
                return
            self._transports.add(up_writer.transport)
            await asyncio.gather(
                self._pipe(down_reader, up_writer),
                self._pipe(up_reader, down_writer),
                return_exceptions=True,
            )
        finally:
            self._transports.discard(down_writer.transport)
            down_writer.close()
            self._handlers.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # close(), not abort(): whatever was written (a close frame) still goes out.
            self._transports.discard(writer.transport)
            writer.close()


@contextlib.asynccontextmanager
async def cuttable_proxy(gateway: GatewayProcess) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy(gateway.ws_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def connect_subscribed(
    clients: Clients, gateway: GatewayProcess, user: str, channel: str, **sub_options: Any
) -> tuple[Any, Any, SubEvents]:
    """An SDK client of ``user`` on ``gateway``, subscribed to ``channel``: (client, sub, events)."""
    client = clients.new(gateway.ws_url, gateway.token(user))
    events = SubEvents()
    sub = client.new_subscription(channel, events=events, **sub_options)
    await client.connect()
    await subscribed(sub, events)
    return client, sub, events
