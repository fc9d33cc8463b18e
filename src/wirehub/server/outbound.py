"""Hands a node's publications to the broker in per-channel order.

Publications to one channel are handed over one after another, in the order ``send`` was called,
whatever else runs concurrently: with a pool of Redis connections, two ``publish`` calls in
flight at once could otherwise reach Redis in either order. Channels do not wait for each
other. One drain task runs per channel while that channel has publications queued, not one per
publication.
"""

from __future__ import annotations

import asyncio
from collections import deque

from wirehub.broker.base import Broker
from wirehub.types import BrokerMessage

__all__ = ["BrokerOutbound"]


class BrokerOutbound:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._queues: dict[str, deque[tuple[BrokerMessage, asyncio.Future[None]]]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def send(self, channel: str, message: BrokerMessage) -> asyncio.Future[None]:
        """Queue ``message``; the future resolves once the broker has it (or fails as it failed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = deque()
            task = loop.create_task(self._drain(channel, queue))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        queue.append((message, done))
        return done

    async def _drain(self, channel: str, queue: deque[tuple[BrokerMessage, asyncio.Future[None]]]) -> None:
        try:
            while queue:
                message, done = queue[0]
                try:
                    await self._broker.publish(channel, message)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not done.done():
                        done.set_exception(exc)
                else:
                    if not done.done():
                        done.set_result(None)
                queue.popleft()
        finally:
            del self._queues[channel]
            for _, done in queue:  # only when cancelled (the node closes)
                done.cancel()

    async def close(self) -> None:
        """Wait for what is queued to be handed over."""
        await asyncio.gather(*self._drains, return_exceptions=True)
