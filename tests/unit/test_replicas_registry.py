"""Unit tests for ``wirehub.server.replicas``: who is alive among the replicas, and surveys.

The replicas talk over ``ControlBus``, which hands every control message to every other
replica at once, as the nodes' brokers do (a node ignores its own messages).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from tests.helpers import FakeClock, next_turn

from wirehub.server.replicas import MISSED_HEARTBEATS, Answer, Replicas
from wirehub.types import JSON, BrokerMessage, ControlMessage, NodeAlive, NodeGone

INTERVAL_S = 3600.0
"""Heartbeats beyond any test: the clock, not the loop, makes peers stale."""


class ControlBus:
    def __init__(self) -> None:
        self.members: list[Replicas] = []
        self.sent: list[ControlMessage] = []

    def broker(self) -> BusBroker:
        return BusBroker(self)

    def deliver(self, message: ControlMessage) -> None:
        self.sent.append(message)
        for member in self.members:
            if member.node_id != message.origin:
                member.on_control(message)


class BusBroker:
    def __init__(self, bus: ControlBus) -> None:
        self.bus = bus

    async def start(self, listener: object) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, message: BrokerMessage) -> None: ...

    def publish_now(self, channel: str, message: BrokerMessage) -> bool:
        return False

    async def publish_control(self, message: ControlMessage) -> None:
        self.bus.deliver(message)

    async def check(self) -> None: ...


def answering(name: str) -> Answer:
    def answer(op: str, args: JSON) -> JSON:
        return {"node": name, "op": op, "args": args}

    return answer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pair(clock: FakeClock) -> AsyncIterator[tuple[ControlBus, Replicas, Replicas]]:
    bus = ControlBus()
    one, two = (
        Replicas(
            name,
            bus.broker(),
            answering(name),
            heartbeat_interval_s=INTERVAL_S,
            survey_timeout_s=0.2,
            clock=clock,
        )
        for name in ("one", "two")
    )
    bus.members += [one, two]
    await one.start()
    await two.start()
    await _until(lambda: one.peers() == ["two"] and two.peers() == ["one"])
    yield bus, one, two
    await one.close()
    await two.close()


async def _until(condition: Callable[[], bool]) -> None:
    """Let the replicas' own tasks run until ``condition`` holds (they finish within a few steps)."""
    async with asyncio.timeout(5):
        while not condition():
            await next_turn()


async def test_replicas_know_each_other_once_both_started(
    pair: tuple[ControlBus, Replicas, Replicas],
) -> None:
    """A starting node says hello and the others answer at once: no heartbeat interval to wait for."""
    bus, _, _ = pair
    hellos = [m for m in bus.sent if isinstance(m, NodeAlive) and m.hello]
    assert {m.origin for m in hellos} == {"one", "two"}


async def test_survey_gathers_every_live_node_answer(pair: tuple[ControlBus, Replicas, Replicas]) -> None:
    """A survey returns this node's answer and each peer's, by node id."""
    _, one, _ = pair
    answers = await one.survey("info", {"x": 1})
    assert answers == {
        "one": {"node": "one", "op": "info", "args": {"x": 1}},
        "two": {"node": "two", "op": "info", "args": {"x": 1}},
    }


async def test_survey_returns_after_timeout_without_a_silent_peer(
    pair: tuple[ControlBus, Replicas, Replicas],
) -> None:
    """A peer that is known but never answers is left out once the survey timeout passes."""
    _, one, _ = pair
    one.on_control(NodeAlive("ghost"))
    answers = await one.survey("info")
    assert set(answers) == {"one", "two"}
    assert set(one.peers()) == {"two", "ghost"}


async def test_peer_counts_as_gone_when_not_heard_of_or_after_goodbye(
    pair: tuple[ControlBus, Replicas, Replicas], clock: FakeClock
) -> None:
    """Silence for MISSED_HEARTBEATS intervals, or a NodeGone, removes a peer."""
    _, one, _ = pair
    one.on_control(NodeAlive("quiet"))
    one.on_control(NodeAlive("leaving"))
    one.on_control(NodeGone("leaving"))
    assert set(one.peers()) == {"two", "quiet"}
    clock.advance(MISSED_HEARTBEATS * INTERVAL_S + 1)
    one.on_control(NodeAlive("two"))
    assert one.peers() == ["two"]
