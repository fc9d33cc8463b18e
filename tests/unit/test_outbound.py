"""Unit tests for ``wirehub.server.outbound``: publications reach the broker in per-channel order."""

from __future__ import annotations

import asyncio

import pytest

from wirehub.errors import BrokerUnavailable
from wirehub.server.outbound import BrokerOutbound
from wirehub.types import BrokerMessage, ControlMessage, Publication


class GatedBroker:
    """A broker whose every publish waits until the test opens its gate."""

    def __init__(self) -> None:
        self.started: list[tuple[str, object]] = []
        self.gates: dict[object, asyncio.Event] = {}
        self.fail: set[object] = set()

    async def publish(self, channel: str, message: BrokerMessage) -> None:
        assert isinstance(message, Publication)
        self.started.append((channel, message.data))
        gate = self.gates.setdefault(message.data, asyncio.Event())
        await gate.wait()
        if message.data in self.fail:
            raise BrokerUnavailable()

    async def publish_control(self, message: ControlMessage) -> None: ...

    async def start(self, listener: object) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    def open(self, data: object) -> None:
        self.gates.setdefault(data, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_publishes_to_one_channel_wait_for_the_earlier_ones() -> None:
    """While a channel's publish is in flight the next one waits; another channel does not."""
    broker = GatedBroker()
    outbound = BrokerOutbound(broker)
    sends = [
        asyncio.create_task(outbound.send(ch, Publication(data=d)))
        for ch, d in [("a", 1), ("a", 2), ("b", 3), ("a", 4)]
    ]
    await settle()
    assert broker.started == [("a", 1), ("b", 3)]

    broker.open(2)  # the later one is ready first: it must still wait for 1
    broker.open(4)
    await settle()
    assert broker.started == [("a", 1), ("b", 3)]
    broker.open(1)
    broker.open(3)
    await asyncio.gather(*sends)
    assert [d for ch, d in broker.started if ch == "a"] == [1, 2, 4]


async def test_a_failed_publish_raises_and_the_next_one_goes_on() -> None:
    """A broker failure reaches its own caller only; the publishes after it are handed over."""
    broker = GatedBroker()
    outbound = BrokerOutbound(broker)
    broker.fail.add(1)
    first = asyncio.create_task(outbound.send("a", Publication(data=1)))
    second = asyncio.create_task(outbound.send("a", Publication(data=2)))
    broker.open(1)
    broker.open(2)
    with pytest.raises(BrokerUnavailable):
        await first
    await second
    assert broker.started == [("a", 1), ("a", 2)]


async def test_cancelled_waiter_does_not_cancel_the_publish_before_it() -> None:
    """Cancelling a waiting publish leaves the one in flight alone, and later ones still follow it."""
    broker = GatedBroker()
    outbound = BrokerOutbound(broker)
    first = asyncio.create_task(outbound.send("a", Publication(data=1)))
    second = asyncio.create_task(outbound.send("a", Publication(data=2)))
    third = asyncio.create_task(outbound.send("a", Publication(data=3)))
    await settle()
    second.cancel()
    broker.open(1)
    broker.open(3)
    await first
    await third
    assert second.cancelled()
    assert broker.started == [("a", 1), ("a", 3)]
