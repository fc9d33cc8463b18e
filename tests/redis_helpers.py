"""Helpers of the broker tests: a listener that records what a broker delivers, and where a
Redis Cluster keeps each slot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.services import redis_cli
from wirehub.broker.redis import channel_slot
from wirehub.types import BrokerMessage, ControlMessage

__all__ = ["RecordingListener", "owner_of", "slot_owners"]

WAIT_S = 5.0


class RecordingListener:
    """A BrokerListener that records what it gets and lets tests wait for it."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, BrokerMessage]] = []
        self.gaps: list[frozenset[str]] = []
        self.controls: list[ControlMessage] = []
        self._changed = asyncio.Event()

    def on_message(self, channel: str, message: BrokerMessage) -> None:
        self.messages.append((channel, message))
        self._changed.set()

    def on_gap(self, channels: frozenset[str]) -> None:
        self.gaps.append(channels)
        self._changed.set()

    def on_control(self, message: ControlMessage) -> None:
        self.controls.append(message)
        self._changed.set()

    def received(self, channel: str) -> list[BrokerMessage]:
        return [message for ch, message in self.messages if ch == channel]

    async def wait_for(self, channel: str, count: int) -> list[BrokerMessage]:
        """Wait until ``count`` messages of ``channel`` arrived; return them."""
        await self.wait_until(lambda: len(self.received(channel)) >= count)
        return self.received(channel)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def slot_owners(port: int) -> dict[int, list[tuple[int, int]]]:
    """Master port -> its slot ranges, as ``CLUSTER NODES`` on ``port`` tells them."""
    owners: dict[int, list[tuple[int, int]]] = {}
    for line in (await redis_cli(port, "cluster", "nodes")).splitlines():
        fields = line.split()
        if "master" not in fields[2].split(","):
            continue
        master = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        ranges = []
        for spec in fields[8:]:
            if spec.startswith("["):
                continue  # a slot being migrated
            first, _, last = spec.partition("-")
            ranges.append((int(first), int(last or first)))
        owners[master] = ranges
    return owners


def owner_of(channel: str, owners: dict[int, list[tuple[int, int]]]) -> int:
    slot = channel_slot(channel)
    return next(port for port, ranges in owners.items() if any(a <= slot <= b for a, b in ranges))
