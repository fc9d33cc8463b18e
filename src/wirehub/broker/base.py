"""The Broker and Presence interfaces.

A Broker moves messages between gateway replicas and nothing more: delivery is at most once,
without history. What one publisher publishes on one channel arrives in publish order; across
channels, the in-process broker and a single Redis keep publish order too, a Redis Cluster only
among channels of one hash slot (shard). Ordering by offset and repair of losses is the Hub's
job, with the MessageStore as the source of truth.

Implementations translate their driver's failures into ``BrokerUnavailable`` (100, temporary)
at their edge; nothing above this layer sees a driver exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from wirehub.types import BrokerMessage, ClientInfo, ControlMessage, PresenceStats

__all__ = [
    "Broker",
    "BrokerListener",
    "Presence",
    "RateLimiter",
]


class BrokerListener(Protocol):
    """Implemented by the Node: receives what the broker delivers to this node.

    Every callback is synchronous and runs on the event loop: it must not block or await.
    """

    def on_message(self, channel: str, message: BrokerMessage) -> None: ...

    def on_gap(self, channels: frozenset[str]) -> None:
        """Messages of these channels may have been lost (broker reconnect, shard moved)."""
        ...

    def on_control(self, message: ControlMessage) -> None:
        """A node-level control message, from any node (this one included)."""
        ...


class Broker(Protocol):
    async def start(self, listener: BrokerListener) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving the channel on this node. Idempotent.

        Once it returns, whatever is published on the channel reaches this node, or the broker
        reports a gap for the channel (``on_gap``) when it could not be sure of that: a broker
        that is disconnected remembers the channel, subscribes on reconnect and then reports
        the gap.
        """
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving the channel. Not counted: one call ends any number of subscribes."""
        ...

    async def publish(self, channel: str, message: BrokerMessage) -> None:
        """Deliver to every node subscribed to the channel, this one included.

        Raises ``BrokerUnavailable`` when the message could not be handed to the broker.
        """
        ...

    def publish_now(self, channel: str, message: BrokerMessage) -> bool:
        """``publish`` without waiting, if this broker can (the in-process one delivers at once).

        False: nothing was done, and ``publish`` must be awaited instead.
        """
        ...

    async def publish_control(self, message: ControlMessage) -> None:
        """Deliver a node-level control message to every started node, this one included."""
        ...

    async def check(self) -> None:
        """Answer quickly (``/ready``): ``BrokerUnavailable`` naming what does not answer."""
        ...


class Presence(Protocol):
    """Who is subscribed to a channel, across nodes. Entries expire unless refreshed.

    Raises ``BrokerUnavailable`` when the backing service cannot be reached.
    """

    async def add(self, channel: str, info: ClientInfo, *, ttl_s: float) -> None: ...

    async def remove(self, channel: str, client_id: str) -> None: ...

    async def members(self, channel: str) -> Mapping[str, ClientInfo]: ...

    async def stats(self, channel: str) -> PresenceStats: ...


class RateLimiter(Protocol):
    """Token buckets by key: ``limit`` attempts per ``window_s``, refilled evenly, starting full.

    The memory implementation counts on one replica; the Redis one is shared by every replica
    on that Redis (its clock is Redis's, so replicas need not agree on the time). A bucket left
    alone for a whole window is full again and may be forgotten. Raises ``BrokerUnavailable``
    when the backing service cannot be reached.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def hit(self, key: str, *, limit: int, window_s: float) -> float:
        """Take one attempt: 0.0 if allowed (and counted), else the seconds until one is due."""
        ...

    async def refund(self, key: str, *, limit: int, window_s: float) -> None:
        """Give one attempt back (a successful login does not count against the user)."""
        ...
