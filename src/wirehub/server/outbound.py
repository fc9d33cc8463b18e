"""Hands a node's publications to the broker in per-channel order.

Publications to one channel are handed over one after another, in the order ``send`` was called,
whatever else runs concurrently: with a pool of Redis connections, two ``publish`` calls in
flight at once could otherwise reach Redis in either order. Each call waits only for the calls
to the same channel that came before it and are still in flight; channels do not wait for each
other, and a broker that publishes without yielding (the in-process one) is never waited for.
No task is created per publication.
"""

from __future__ import annotations

import asyncio

from wirehub.broker.base import Broker
from wirehub.types import BrokerMessage

__all__ = ["BrokerOutbound"]


class BrokerOutbound:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._tails: dict[str, asyncio.Future[None]] = {}
        """Per channel, the completion of the last publish handed over and not yet finished."""

    async def send(self, channel: str, message: BrokerMessage) -> None:
        """Publish ``message`` after the earlier publishes to ``channel``; raises as the broker does."""
        previous = self._tails.get(channel)
        mine = asyncio.get_running_loop().create_future()
        self._tails[channel] = mine
        try:
            if previous is not None:
                # Shielded: cancelling this publish must not cancel the one before it. It ends
                # (successfully or not) before this one is handed over.
                await asyncio.shield(previous)
            await self._broker.publish(channel, message)
        finally:
            mine.set_result(None)
            if self._tails.get(channel) is mine:
                del self._tails[channel]
