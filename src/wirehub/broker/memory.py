"""In-process broker and presence: the embedded defaults for a single node.

``MemoryBroker`` delivers synchronously to the node's own listener, so publish order is
delivery order. ``MemoryPresence`` keeps entries in dicts with expiry times checked on read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from wirehub.broker.base import BrokerListener
from wirehub.types import BrokerMessage, ClientInfo, ControlMessage, PresenceStats

__all__ = [
    "MemoryBroker",
    "MemoryPresence",
]


class MemoryBroker:
    def __init__(self) -> None:
        self._listener: BrokerListener | None = None
        self._channels: set[str] = set()

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None
        self._channels.clear()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: BrokerMessage) -> None:
        self.publish_now(channel, message)

    def publish_now(self, channel: str, message: BrokerMessage) -> bool:
        if self._listener is not None and channel in self._channels:
            self._listener.on_message(channel, message)
        return True

    async def publish_control(self, message: ControlMessage) -> None:
        if self._listener is not None:
            self._listener.on_control(message)

    async def check(self) -> None:
        """In process: there is nothing that could fail to answer."""


class MemoryPresence:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._channels: dict[str, dict[str, tuple[ClientInfo, float]]] = {}

    async def add(self, channel: str, info: ClientInfo, *, ttl_s: float) -> None:
        self._channels.setdefault(channel, {})[info.client] = (info, self._clock() + ttl_s)

    async def remove(self, channel: str, client_id: str) -> None:
        entries = self._channels.get(channel)
        if entries is not None:
            entries.pop(client_id, None)
            if not entries:
                del self._channels[channel]

    async def members(self, channel: str) -> Mapping[str, ClientInfo]:
        now = self._clock()
        entries = self._channels.get(channel, {})
        expired = [client for client, (_, expires) in entries.items() if expires <= now]
        for client in expired:
            del entries[client]
        return {client: info for client, (info, _) in entries.items()}

    async def stats(self, channel: str) -> PresenceStats:
        members = await self.members(channel)
        return PresenceStats(len(members), len({info.user for info in members.values()}))
