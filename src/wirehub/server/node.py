"""The node: one gateway replica's services, shared by every connection on it.

It resolves channel options, publishes (store first for channels with history, then broker),
reads history, keeps presence and announces joins and leaves. It depends on the Broker,
Presence, MessageStore and TokenVerifier interfaces only; ``wirehub.app`` picks the backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from wirehub import __version__
from wirehub.auth.base import TokenVerifier
from wirehub.broker.base import Broker, Presence
from wirehub.channels.names import ChannelName, parse_channel
from wirehub.channels.router import Router
from wirehub.config import NamespaceOptions, Settings
from wirehub.errors import Disconnect, Invalid, UnknownChannel
from wirehub.server.commit import GroupCommitter
from wirehub.server.hub import Hub
from wirehub.storage.base import MessageStore
from wirehub.types import (
    JSON,
    ClientInfo,
    HistoryLimits,
    HistoryPage,
    Join,
    Leave,
    NewPublication,
    PresenceStats,
    Publication,
)

logger = logging.getLogger(__name__)

VERSION = f"wirehub {__version__}"


class LocalClient(Protocol):
    """What the node needs of a connection it hosts."""

    id: str

    def disconnect(self, reason: Disconnect) -> None: ...

    async def closed(self) -> None: ...

    def presence_entries(self) -> Iterable[tuple[str, ClientInfo]]:
        """The (channel, info) presence entries this connection keeps alive."""
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
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.presence_store = presence
        self.store = store
        self.verifier = verifier
        self.router = router
        self.hub = Hub(broker, store, reorder_timeout_s=settings.client.reorder_timeout_s)
        self.committer = GroupCommitter(store)
        self._clients: dict[str, LocalClient] = {}
        self.version = VERSION
        self._presence_refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.start()
        await self.broker.start(self.hub)
        self._presence_refresher = asyncio.create_task(self._refresh_presence())

    async def close(self) -> None:
        if self._presence_refresher is not None:
            self._presence_refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence_refresher
        await self.committer.close()
        await self.hub.close()
        await self.broker.close()
        await self.store.close()

    # ------------------------------------------------------------------ clients

    def register(self, client: LocalClient) -> None:
        self._clients[client.id] = client

    def unregister(self, client: LocalClient) -> None:
        self._clients.pop(client.id, None)

    def clients(self) -> Iterator[LocalClient]:
        return iter(tuple(self._clients.values()))

    @property
    def client_count(self) -> int:
        return len(self._clients)

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
        """Parse a channel name and find its namespace options (102 for an unknown namespace)."""
        name = parse_channel(channel, max_length=self.settings.client.channel_max_length)
        if not name.namespace:
            return name, self.settings.channel_defaults
        options = self.settings.namespaces.get(name.namespace)
        if options is None:
            raise UnknownChannel()
        return name, options

    async def publish(
        self,
        channel: str,
        data: JSON,
        *,
        options: NamespaceOptions,
        info: ClientInfo | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Publication:
        """Store (for channels with history) and fan out; return once the store has it."""
        now_ms = int(time.time() * 1000)
        if options.history_enabled:
            limits = HistoryLimits(size=options.history_size, ttl_s=options.history_ttl_s)
            new = NewPublication(data=data, info=info, tags=tags or {}, time_ms=now_ms)
            pub = await self.committer.append(channel, new, limits)
        else:
            pub = Publication(data=data, info=info, tags=tags or {}, time_ms=now_ms)
        await self.broker.publish(channel, pub)
        return pub

    async def history(
        self,
        channel: str,
        *,
        since: int | None,
        limit: int,
        reverse: bool,
    ) -> HistoryPage:
        if reverse and since == 0:
            raise Invalid("reverse history needs since.offset > 0")
        cap = self.settings.client.history_max_publication_limit
        limit = cap if limit < 0 else min(limit, cap)
        return await self.store.read(channel, since=since, limit=limit, reverse=reverse)

    # ------------------------------------------------------------------ presence and join/leave

    async def _refresh_presence(self) -> None:
        """Re-add every local presence entry before it expires (removal happens on leave)."""
        interval = self.settings.client.presence_update_interval_s
        while True:
            await asyncio.sleep(interval)
            for client in self.clients():
                for channel, info in client.presence_entries():
                    try:
                        await self.presence_store.add(
                            channel, info, ttl_s=self.settings.client.presence_ttl_s
                        )
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        logger.exception("presence refresh failed", extra={"channel": channel})

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
