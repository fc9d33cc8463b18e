"""The Broker and Presence interfaces.

A Broker moves messages between gateway replicas and nothing more: delivery is at most once,
in publish order per publisher, without history. Ordering by offset and repair of losses is
the Hub's job, with the MessageStore as the source of truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from wirehub.types import BrokerMessage, ClientInfo, PresenceStats


class BrokerListener(Protocol):
    """Implemented by the Hub: receives what the broker delivers to this node."""

    def on_message(self, channel: str, message: BrokerMessage) -> None: ...

    def on_gap(self, channels: frozenset[str]) -> None:
        """Messages of these channels may have been lost (broker reconnect)."""
        ...


class Broker(Protocol):
    async def start(self, listener: BrokerListener) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving the channel on this node. Idempotent."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, message: BrokerMessage) -> None:
        """Deliver to every node subscribed to the channel, this one included."""
        ...


class Presence(Protocol):
    """Who is subscribed to a channel, across nodes. Entries expire unless refreshed."""

    async def add(self, channel: str, info: ClientInfo, *, ttl_s: float) -> None: ...

    async def remove(self, channel: str, client_id: str) -> None: ...

    async def members(self, channel: str) -> Mapping[str, ClientInfo]: ...

    async def stats(self, channel: str) -> PresenceStats: ...
