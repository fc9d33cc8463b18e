"""The node: one gateway replica's services, shared by every connection on it.

It resolves channel options, publishes (store first for channels with history, then broker),
reads history, keeps presence and announces joins and leaves. It is the broker's listener: it
passes channel messages and gaps to its Hub and acts on node-level control messages (disconnect,
subscribe, unsubscribe or refresh a user's connections), which it also sends to the other
replicas; what concerns the replicas themselves (who is alive, surveys) goes to ``Replicas``.
It depends on the Broker, Presence, MessageStore and TokenVerifier interfaces only;
``wirehub.app`` picks the backends. ``node.server`` is the public ``Server`` API over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Protocol, assert_never

from wirehub.api import Server
from wirehub.auth.base import TokenVerifier
from wirehub.broker.base import Broker, Presence
from wirehub.channels.context import State
from wirehub.channels.names import ChannelName, parse_channel
from wirehub.channels.router import Router
from wirehub.config import NamespaceOptions, Settings
from wirehub.errors import (
    BrokerUnavailable,
    Disconnect,
    Invalid,
    StoreUnavailable,
    UnknownChannel,
    UnrecoverablePosition,
    disconnect_for_code,
)
from wirehub.protocol.frames import HistoryRequest
from wirehub.server.admission import ConnectionCounter, TrustedProxies, default_connection_cap
from wirehub.server.hub import Hub
from wirehub.server.metrics import NodeMetrics
from wirehub.server.node_report import answer_survey
from wirehub.server.outbox import FlushScheduler
from wirehub.server.pipeline import OnDone, Published, PublishPipeline
from wirehub.server.replicas import Replicas
from wirehub.server.sink import text_frame
from wirehub.storage.base import HistoryQuery, MessageStore
from wirehub.tasks import cancel_and_wait
from wirehub.types import (
    JSON,
    BrokerMessage,
    ClientInfo,
    ControlMessage,
    DisconnectUser,
    HistoryLimits,
    HistoryPage,
    Join,
    Leave,
    NewPublication,
    NodeAlive,
    NodeGone,
    PresenceStats,
    PublishOptions,
    RefreshUser,
    SubscribeUser,
    Survey,
    SurveyReply,
    UnsubscribeUser,
)
from wirehub.version import __version__

__all__ = [
    "RESOLVED_CHANNELS",
    "VERSION",
    "LocalClient",
    "Node",
]

logger = logging.getLogger(__name__)

VERSION = f"wirehub {__version__}"

RESOLVED_CHANNELS = 10_000
"""Channel names whose namespace resolution is kept (a few MB at the most)."""

_CLIENT_PUBLISH_OPTIONS = PublishOptions()
"""What a client's publication has: no tags, no idempotency key, stored where there is history."""


class LocalClient(Protocol):
    """What the node needs of a connection it hosts."""

    id: str

    def disconnect(self, reason: Disconnect) -> None: ...

    async def closed(self) -> None: ...

    def presence_entries(self) -> Iterable[tuple[str, ClientInfo]]:
        """The (channel, info) presence entries this connection keeps alive."""
        ...

    @property
    def session_id(self) -> str:
        """What the server API's ``session`` selects this connection by."""
        ...

    @property
    def subscription_count(self) -> int: ...

    def server_unsubscribe(self, channel: str) -> None:
        """Unsubscribe from ``channel`` on the server's initiative (push 2000), if subscribed."""
        ...

    def server_subscribe(self, request: SubscribeUser) -> None:
        """Subscribe to ``request.channel`` on the server's initiative (push ``subscribe``)."""
        ...

    def refresh_expiry(self, *, expired: bool, expire_at: int | None) -> None:
        """Expire the connection now, move its expiry to ``expire_at``, or (None) never expire it."""
        ...


class Node:
    def __init__(
        self,
        settings: Settings,
        *,
        broker: Broker,
        presence: Presence,
        store: MessageStore,
        verifier: TokenVerifier,
        router: Router,
        state: State | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.presence_store = presence
        self.store = store
        self.verifier = verifier
        self.router = router
        self.state = state or State()
        """The app's own resources (``App.state``), which handlers reach as ``ctx.state``."""
        self.hub = Hub(broker, store, reorder_timeout_s=settings.client.reorder_timeout_s)
        self.metrics = NodeMetrics()
        self.pipeline = PublishPipeline(
            store,
            broker,
            self.hub.on_message,
            store_timing=self.metrics.store_append,
            broker_timing=self.metrics.broker_publish,
        )
        self.flusher = FlushScheduler(text_frame)
        """Writes every connection's pending output with one callback, turns after it was queued."""
        self.proxies = TrustedProxies(settings.server.trusted_proxies)
        current_fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.connections = ConnectionCounter(
            per_address=settings.server.max_connections_per_address,
            total=settings.server.max_connections or default_connection_cap(current_fd_limit),
            proxies=self.proxies,
        )
        """Open connections of both listeners, per address and in total."""
        self._clients: dict[str, LocalClient] = {}
        self._resolved: dict[str, tuple[ChannelName, NamespaceOptions]] = {}
        self._user_clients: dict[str, dict[str, LocalClient]] = {}
        """Authenticated connections by user id (anonymous ones are not indexed)."""
        self._user_bindings: dict[str, str] = {}
        self.version = VERSION
        self.id = uuid.uuid4().hex
        """This node among the replicas: control messages it sent come back to it, and are ignored."""
        self.name = settings.node.name or f"{socket.gethostname()}_{os.getpid()}"
        self.started_at = time.monotonic()
        self.replicas = Replicas(
            self.id,
            broker,
            partial(answer_survey, self),
            heartbeat_interval_s=settings.node.heartbeat_interval_s,
            survey_timeout_s=settings.node.survey_timeout_s,
        )
        self.server = Server(self)
        """The server API (publish, disconnect, presence...) that handlers and app code call."""
        self._presence_refresher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._presence_due = asyncio.Event()
        """Set when presence must be re-added now rather than at the next interval (broker gap)."""

    async def start(self) -> None:
        await self.verifier.start()
        await self.store.start()
        timeout_s = self.settings.store.start_timeout_s
        if timeout_s > 0:
            try:
                async with asyncio.timeout(timeout_s):
                    await self.store.wait_ready()
            except TimeoutError:
                raise StoreUnavailable(f"no answer within store.start_timeout_s ({timeout_s:g} s)") from None
        await self.broker.start(self)
        await self.replicas.start()
        self._presence_refresher = asyncio.create_task(self._refresh_presence())
        self._sweeper = asyncio.create_task(self._sweep_streams())

    async def close(self) -> None:
        for task in (self._presence_refresher, self._sweeper):
            await cancel_and_wait(task)
        await self.pipeline.close()
        await self.replicas.close()
        await self.hub.close()
        await self.broker.close()
        await self.store.close()
        await self.verifier.close()

    # ------------------------------------------------------------------ clients

    def register(self, client: LocalClient) -> None:
        self._clients[client.id] = client

    def unregister(self, client: LocalClient) -> None:
        self._clients.pop(client.id, None)
        self.unbind_user(client)

    def bind_user(self, client: LocalClient, user: str, *, limit: int = 0) -> bool:
        """Index ``client`` under ``user``; False (and not indexed) if the user already has ``limit``.

        Counts this replica's connections only; a cross-replica count needs the broker.
        """
        if not user:
            return True
        clients = self._user_clients.get(user, {})
        if limit and len(clients) >= limit and client.id not in clients:
            return False
        self._user_clients.setdefault(user, clients)[client.id] = client
        self._user_bindings[client.id] = user
        return True

    def unbind_user(self, client: LocalClient) -> None:
        user = self._user_bindings.pop(client.id, None)
        if user is None:
            return
        clients = self._user_clients.get(user)
        if clients is not None:
            clients.pop(client.id, None)
            if not clients:
                del self._user_clients[user]

    def user_clients(self, user: str) -> tuple[LocalClient, ...]:
        """This replica's authenticated connections of ``user``."""
        return tuple(self._user_clients.get(user, {}).values())

    def clients(self) -> Iterator[LocalClient]:
        return iter(tuple(self._clients.values()))

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def user_count(self) -> int:
        """Users with at least one connection on this node."""
        return len(self._user_clients)

    async def disconnect_all(self, reason: Disconnect, *, timeout_s: float) -> None:
        """Close every client with ``reason`` and wait (bounded) until each has cleaned up."""
        clients = list(self.clients())
        for client in clients:
            client.disconnect(reason)
        if clients:
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.gather(*(c.closed() for c in clients), return_exceptions=True)
            except TimeoutError:
                logger.warning("clients did not close in time", extra={"remaining": self.client_count})

    # ------------------------------------------------------------------ channels

    def resolve(self, channel: str) -> tuple[ChannelName, NamespaceOptions]:
        """Parse a channel name and find its namespace options (102 for an unknown namespace).

        Every command names a channel; the answers for the most recent ones are kept, since the
        same channels come back again and again.
        """
        resolved = self._resolved.get(channel)
        if resolved is not None:
            return resolved
        name = parse_channel(channel, max_length=self.settings.client.channel_max_length)
        if not name.namespace:
            resolved = name, self.settings.channel_defaults
        else:
            options = self.settings.namespaces.get(name.namespace)
            if options is None:
                raise UnknownChannel()
            resolved = name, options
        if len(self._resolved) >= RESOLVED_CHANNELS:
            del self._resolved[next(iter(self._resolved))]  # the oldest
        self._resolved[channel] = resolved
        return resolved

    def submit_publish(
        self,
        channel: str,
        data: JSON,
        on_done: OnDone,
        *,
        options: NamespaceOptions,
        info: ClientInfo | None = None,
    ) -> None:
        """Queue a client's publication, not waiting for the store or broker; ``on_done`` gets the outcome.

        (On the in-process broker, a publication without history to a channel with nothing
        queued is fanned out at once: ``PublishPipeline.submit_soon``.)

        The outcome is the publication and its stream's epoch ("" when it was not stored). For
        a channel with history it is stored first. Publications to one channel are stored and
        handed to the broker in the order they were submitted (``PublishPipeline``).
        """
        limits, new = self._new_publication(data, options, info, _CLIENT_PUBLISH_OPTIONS)
        self.pipeline.submit_soon(channel, new, limits, on_done)

    async def publish(
        self, channel: str, data: JSON, *, options: NamespaceOptions, publish_options: PublishOptions
    ) -> Published:
        """A server API publication: as ``submit_publish``, waiting for the outcome.

        A caller that gives up leaves it queued. ``skip_history`` fans out without storing. With an
        ``idempotency_key``, a retry within the store's window returns (and fans out again, which
        hubs drop as a duplicate offset) the original.
        """
        limits, new = self._new_publication(data, options, None, publish_options)
        return await self.pipeline.publish(channel, new, limits)

    @staticmethod
    def _new_publication(
        data: JSON, options: NamespaceOptions, info: ClientInfo | None, publish_options: PublishOptions
    ) -> tuple[HistoryLimits | None, NewPublication]:
        limits = None
        if options.history_enabled and not publish_options.skip_history:
            limits = HistoryLimits(size=options.history_size, ttl_s=options.history_ttl_s)
        new = NewPublication(
            data=data,
            info=info,
            tags=publish_options.tags or {},
            time_ms=int(time.time() * 1000),
            idempotency_key=publish_options.idempotency_key if limits else "",
        )
        return limits, new

    async def history(self, request: HistoryRequest, *, cap: int | None = None) -> HistoryPage:
        """The page ``request`` asks for; ``limit`` -1 (or beyond ``cap``) reads up to ``cap``, None = no cap.

        ``UnrecoverablePosition`` (112) if ``request.since`` has an epoch that is not the stream's.
        """
        since, limit = request.since, request.limit
        if request.reverse and since is not None and since.offset == 0:
            raise Invalid("reverse history needs since.offset > 0")
        if cap is not None:
            limit = cap if limit < 0 else min(limit, cap)
        query = HistoryQuery(
            since=None if since is None else since.offset, limit=limit, reverse=request.reverse
        )
        page = await self.store.read(request.channel, query)
        if since is not None and since.epoch and since.epoch != page.position.epoch:
            raise UnrecoverablePosition()
        return page

    # ------------------------------------------------------------------ presence and join/leave

    async def _refresh_presence(self) -> None:
        """Re-add every local presence entry before it expires (removal happens on leave)."""
        interval = self.settings.client.presence_update_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._presence_due.wait()  # a broker gap: the entries may be gone
            self._presence_due.clear()
            try:
                for client in self.clients():
                    for channel, info in client.presence_entries():
                        try:
                            await self.presence_store.add(
                                channel, info, ttl_s=self.settings.client.presence_ttl_s
                            )
                        except (asyncio.CancelledError, BrokerUnavailable):
                            raise
                        except Exception:
                            logger.exception("presence refresh failed", extra={"channel": channel})
            except BrokerUnavailable:
                # Every other entry would fail the same way: try them all again next round.
                logger.warning("presence refresh skipped: broker unavailable")

    async def _sweep_streams(self) -> None:
        """Remove expired streams every ``store.sweep_interval_s`` (a batch at a time)."""
        while True:
            await asyncio.sleep(self.settings.store.sweep_interval_s)
            try:
                while await self.store.expire_streams() > 0:
                    pass  # a batch at a time: connections run while each is in the store
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("expiring streams failed; trying again later", exc_info=True)

    async def joined(self, channel: str, info: ClientInfo, *, presence: bool, announce: bool) -> None:
        if presence:
            await self.presence_store.add(channel, info, ttl_s=self.settings.client.presence_ttl_s)
        if announce:
            await self.broker.publish(channel, Join(info))

    async def left(self, channel: str, info: ClientInfo, *, presence: bool, announce: bool) -> None:
        if presence:
            await self.presence_store.remove(channel, info.client)
        if announce:
            await self.broker.publish(channel, Leave(info))

    async def presence(self, channel: str) -> Mapping[str, ClientInfo]:
        return await self.presence_store.members(channel)

    async def presence_stats(self, channel: str) -> PresenceStats:
        return await self.presence_store.stats(channel)

    # ------------------------------------------------------------------ BrokerListener

    def on_message(self, channel: str, message: BrokerMessage) -> None:
        self.hub.on_message(channel, message)

    def on_gap(self, channels: frozenset[str]) -> None:
        self.hub.on_gap(channels)
        # The broker reconnected: if Redis restarted, presence went with it.
        self._presence_due.set()

    def on_control(self, message: ControlMessage) -> None:
        if message.origin == self.id:
            return  # acted on when sent
        match message:
            case NodeAlive() | NodeGone() | Survey() | SurveyReply():
                self.replicas.on_control(message)
            case _:
                self._apply_control(message)

    # ------------------------------------------------------------------ node-level control

    async def control(self, message: DisconnectUser | UnsubscribeUser | SubscribeUser | RefreshUser) -> None:
        """Act on this node's connections now, then tell every other node to do the same.

        ``message.origin`` must be this node's id. Raises ``BrokerUnavailable`` if the other
        nodes could not be told (this node's connections are acted on all the same).
        """
        self._apply_control(message)
        await self.broker.publish_control(message)

    async def disconnect_user(self, user: str, reason: Disconnect) -> None:
        """Close every connection of ``user``, on this node and on every other one, with ``reason``."""
        await self.control(DisconnectUser(user=user, code=reason.code, reason=reason.reason, origin=self.id))

    async def unsubscribe_user(self, user: str, channel: str) -> None:
        """Unsubscribe every connection of ``user`` from ``channel`` on every node (push 2000)."""
        await self.control(UnsubscribeUser(user=user, channel=channel, origin=self.id))

    def _targets(self, user: str, client: str, session: str) -> Iterator[LocalClient]:
        for local in self.user_clients(user):
            if (not client or local.id == client) and (not session or local.session_id == session):
                yield local

    def _apply_control(self, message: ControlMessage) -> None:
        match message:
            case DisconnectUser(
                user=user, code=code, reason=reason, client=client, session=session, keep=keep
            ):
                for local in self._targets(user, client, session):
                    if local.id not in keep:
                        local.disconnect(disconnect_for_code(code, reason))
            case UnsubscribeUser(user=user, channel=channel, client=client, session=session):
                for local in self._targets(user, client, session):
                    local.server_unsubscribe(channel)
            case SubscribeUser(user=user, client=client, session=session):
                for local in self._targets(user, client, session):
                    local.server_subscribe(message)
            case RefreshUser(user=user, client=client, session=session, expired=expired, expire_at=expire_at):
                for local in self._targets(user, client, session):
                    local.refresh_expiry(expired=expired, expire_at=expire_at)
            case NodeAlive() | NodeGone() | Survey() | SurveyReply():
                pass  # about nodes, not connections: see on_control
            case _:
                assert_never(message)
