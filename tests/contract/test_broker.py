"""The Broker and Presence contracts, run against every implementation.

Each implementation is one param of the ``broker_kind`` / ``presence_kind`` fixtures: the
in-process one, a real ``redis-server`` and a real 3-master Redis Cluster (sharded pub/sub), both
started by the session fixtures, each test under a key prefix of its own. Nothing here assumes
synchronous delivery: tests wait for messages under ``asyncio.timeout``, and prove that something
was *not* delivered by publishing a marker afterwards on a channel that is still subscribed and
waiting for it, which relies on the Broker's per-publisher order. A cluster keeps that order only
within a shard, so the marker channel (``other_channel``) shares the test channel's hash slot.
Presence time is advanced through the harness (a fake clock the implementation reads), never
slept.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from tests.helpers import FakeClock
from tests.redis_helpers import RecordingListener
from wirehub.broker.base import Broker, Presence
from wirehub.broker.memory import MemoryBroker, MemoryPresence
from wirehub.broker.redis import RedisBroker, RedisClient, RedisPresence, channel_slot
from wirehub.types import (
    JSON,
    BrokerMessage,
    ClientInfo,
    ControlMessage,
    DisconnectUser,
    Join,
    Leave,
    Publication,
    UnsubscribeUser,
)

WAIT_S = 5.0


@dataclass
class PresenceHarness:
    presence: Presence
    advance: Callable[[float], Awaitable[None]]
    """Let this many seconds pass for the implementation's expiry."""
    close: Callable[[], Awaitable[None]] | None = None


KINDS = ["memory", "redis", "redis-cluster"]


def _server_url(kind: str, request: pytest.FixtureRequest) -> str:
    """The session's Redis (or cluster) for that kind; its fixture starts it only when asked for."""
    if kind == "memory":
        return ""
    url: str = request.getfixturevalue("redis_cluster_url" if kind == "redis-cluster" else "redis_url")
    return url


def _open_broker(kind: str, url: str, prefix: str) -> Broker:
    if kind == "memory":
        return MemoryBroker()
    if kind in ("redis", "redis-cluster"):
        client = RedisClient(url, cluster=kind == "redis-cluster", max_connections=8)
        return RedisBroker(client, key_prefix=prefix)
    raise AssertionError(f"unknown broker kind {kind!r}")


def _open_presence(kind: str, url: str, prefix: str) -> PresenceHarness:
    clock = FakeClock(1000.0)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    if kind == "memory":
        return PresenceHarness(MemoryPresence(clock=clock), advance)
    if kind in ("redis", "redis-cluster"):
        client = RedisClient(url, cluster=kind == "redis-cluster", max_connections=8)
        presence = RedisPresence(client, key_prefix=prefix, clock=clock, owns_client=True)
        return PresenceHarness(presence, advance, presence.close)
    raise AssertionError(f"unknown presence kind {kind!r}")


@pytest.fixture(params=KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture(params=KINDS)
def presence_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def broker_url(broker_kind: str, request: pytest.FixtureRequest) -> str:
    return _server_url(broker_kind, request)


@pytest.fixture
def presence_url(presence_kind: str, request: pytest.FixtureRequest) -> str:
    return _server_url(presence_kind, request)


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
async def broker(
    broker_kind: str, broker_url: str, listener: RecordingListener, unique_name: str
) -> AsyncIterator[Broker]:
    broker = _open_broker(broker_kind, broker_url, unique_name)
    await broker.start(listener)
    try:
        yield broker
    finally:
        await broker.close()


@pytest.fixture
async def presence_harness(
    presence_kind: str, presence_url: str, unique_name: str
) -> AsyncIterator[PresenceHarness]:
    harness = _open_presence(presence_kind, presence_url, unique_name)
    try:
        yield harness
    finally:
        if harness.close is not None:
            await harness.close()


@pytest.fixture
def presence(presence_harness: PresenceHarness) -> Presence:
    return presence_harness.presence


@pytest.fixture
def channel() -> str:
    """A channel name unique to the test, so a shared server needs no flushing."""
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def other_channel(channel: str) -> str:
    """Another unique channel, in the same Redis Cluster hash slot as ``channel`` (same shard)."""
    slot = channel_slot(channel)
    for i in itertools.count():
        other = f"{channel}-{i}"
        if channel_slot(other) == slot:
            return other
    raise AssertionError("unreachable")


ALICE = ClientInfo(user="alice", client="c-alice", conn_info={"name": "Alice"}, chan_info={"role": "admin"})
ALICE_PHONE = ClientInfo(user="alice", client="c-alice-phone")
BOB = ClientInfo(user="bob", client="c-bob")


async def _barrier(broker: Broker, listener: RecordingListener, channel: str) -> None:
    """Publish a marker on a subscribed channel and wait for it: earlier publishes have been handled."""
    before = len(listener.received(channel))
    await broker.publish(channel, Publication(data="barrier"))
    await listener.wait_for(channel, before + 1)


# --------------------------------------------------------------------------- Broker


async def test_broker_delivers_exact_publication_when_subscribed(
    broker: Broker, listener: RecordingListener, channel: str
) -> None:
    """A publication reaches the subscribed node's listener on that channel, every field intact."""
    pub = Publication(
        data={"text": "hi", "n": [1, 2.5, None, True]},
        offset=42,
        info=ALICE,
        tags={"k": "v"},
        time_ms=1_700_000_000_123,
    )
    await broker.subscribe(channel)
    await broker.publish(channel, pub)
    assert await listener.wait_for(channel, 1) == [pub]
    assert listener.messages == [(channel, pub)]


async def test_broker_does_not_deliver_when_never_subscribed(
    broker: Broker, listener: RecordingListener, channel: str, other_channel: str
) -> None:
    """Publications on a channel this node never subscribed to do not reach the listener."""
    await broker.subscribe(other_channel)
    await broker.publish(channel, Publication(data=1))
    await _barrier(broker, listener, other_channel)
    assert listener.received(channel) == []


async def test_broker_stops_delivering_when_unsubscribed(
    broker: Broker, listener: RecordingListener, channel: str, other_channel: str
) -> None:
    """After unsubscribe the channel's publications no longer reach the listener."""
    await broker.subscribe(channel)
    await broker.subscribe(other_channel)
    await broker.publish(channel, Publication(data="before"))
    await listener.wait_for(channel, 1)
    await broker.unsubscribe(channel)
    await broker.publish(channel, Publication(data="after"))
    await _barrier(broker, listener, other_channel)
    assert listener.received(channel) == [Publication(data="before")]


async def test_broker_delivers_once_when_subscribed_twice(
    broker: Broker, listener: RecordingListener, channel: str, other_channel: str
) -> None:
    """Subscribe is idempotent: subscribing twice does not duplicate deliveries."""
    await broker.subscribe(channel)
    await broker.subscribe(channel)
    await broker.subscribe(other_channel)
    await broker.publish(channel, Publication(data=1))
    await _barrier(broker, listener, other_channel)
    assert listener.received(channel) == [Publication(data=1)]


async def test_broker_stops_delivering_when_unsubscribed_once_after_subscribing_twice(
    broker: Broker, listener: RecordingListener, channel: str, other_channel: str
) -> None:
    """Subscribe is idempotent, not counted: one unsubscribe ends the subscription."""
    await broker.subscribe(channel)
    await broker.subscribe(channel)
    await broker.subscribe(other_channel)
    await broker.unsubscribe(channel)
    await broker.publish(channel, Publication(data=1))
    await _barrier(broker, listener, other_channel)
    assert listener.received(channel) == []


async def test_broker_allows_unsubscribe_when_not_subscribed(broker: Broker, channel: str) -> None:
    """Unsubscribing from a channel that is not subscribed is harmless."""
    await broker.unsubscribe(channel)


async def test_broker_passes_join_and_leave_through(
    broker: Broker, listener: RecordingListener, channel: str
) -> None:
    """Join and Leave messages arrive as sent, with the client info intact."""
    await broker.subscribe(channel)
    await broker.publish(channel, Join(ALICE))
    await broker.publish(channel, Leave(BOB))
    assert await listener.wait_for(channel, 2) == [Join(ALICE), Leave(BOB)]


async def test_broker_keeps_order_when_one_publisher_publishes_many(
    broker: Broker, listener: RecordingListener, channel: str
) -> None:
    """Messages from one publisher arrive in publish order, mixed kinds included."""
    messages: list[BrokerMessage] = []
    for i in range(1, 201):
        messages.append(Publication(data={"i": i}, offset=i))
        if i % 50 == 0:
            messages.append(Join(ClientInfo(user=f"u{i}", client=f"c{i}")))
    await broker.subscribe(channel)
    for message in messages:
        await broker.publish(channel, message)
    assert await listener.wait_for(channel, len(messages)) == messages


async def test_broker_keeps_channels_apart(
    broker: Broker, listener: RecordingListener, channel: str, other_channel: str
) -> None:
    """Each message is delivered with the channel it was published on."""
    await broker.subscribe(channel)
    await broker.subscribe(other_channel)
    await broker.publish(channel, Publication(data="a"))
    await broker.publish(other_channel, Publication(data="b"))
    assert await listener.wait_for(channel, 1) == [Publication(data="a")]
    assert await listener.wait_for(other_channel, 1) == [Publication(data="b")]


async def test_broker_delivers_any_json_value_intact(
    broker: Broker, listener: RecordingListener, channel: str
) -> None:
    """Unicode, deep nesting, empty containers, floats and integers beyond 64 bits survive the trip."""
    values: list[JSON] = [
        {"text": "héllo ✓ 𝄞", "empty": {}, "list": [], "nested": {"a": [{"b": [1, [2, [3]]]}]}},
        [2**70, -(2**80), 2**63, -(2**63), 0, 1.5, -0.0, 1e300],
        "",
        None,
        False,
        12345678901234567890123456789,
    ]
    await broker.subscribe(channel)
    for value in values:
        await broker.publish(channel, Publication(data=value, info=ALICE))
    received = await listener.wait_for(channel, len(values))
    assert [m.data for m in received if isinstance(m, Publication)] == values


async def test_broker_delivers_control_message_to_this_node(
    broker: Broker, listener: RecordingListener
) -> None:
    """Control messages reach every started node, this one included, fields intact and in order."""
    messages: list[ControlMessage] = [
        DisconnectUser(user="alice", code=3503, reason="force disconnect", origin="node-1"),
        UnsubscribeUser(user="bob", channel="chat:room", origin="node-1"),
    ]
    for message in messages:
        await broker.publish_control(message)
    await listener.wait_until(lambda: len(listener.controls) >= len(messages))
    assert listener.controls == messages
    assert listener.messages == []


# --------------------------------------------------------------------------- Presence


async def test_presence_lists_added_members(presence: Presence, channel: str) -> None:
    """Added clients are members, keyed by client id, with their info intact."""
    await presence.add(channel, ALICE, ttl_s=60)
    await presence.add(channel, BOB, ttl_s=60)
    assert await presence.members(channel) == {ALICE.client: ALICE, BOB.client: BOB}


async def test_presence_is_empty_when_channel_unknown(presence: Presence, channel: str) -> None:
    """A channel nobody joined has no members and zero stats."""
    assert await presence.members(channel) == {}
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (0, 0)


async def test_presence_forgets_removed_member(presence: Presence, channel: str) -> None:
    """A removed client is no longer a member; the others stay."""
    await presence.add(channel, ALICE, ttl_s=60)
    await presence.add(channel, BOB, ttl_s=60)
    await presence.remove(channel, ALICE.client)
    assert await presence.members(channel) == {BOB.client: BOB}


async def test_presence_allows_remove_when_not_member(presence: Presence, channel: str) -> None:
    """Removing an unknown client, also from an unknown channel, is harmless."""
    await presence.remove(channel, "nobody")
    await presence.add(channel, ALICE, ttl_s=60)
    await presence.remove(channel, "nobody")
    assert await presence.members(channel) == {ALICE.client: ALICE}


async def test_presence_replaces_info_when_client_added_again(presence: Presence, channel: str) -> None:
    """Adding a client again updates its entry instead of adding a second one."""
    await presence.add(channel, ALICE, ttl_s=60)
    updated = ClientInfo(user=ALICE.user, client=ALICE.client, conn_info={"name": "Alice 2"})
    await presence.add(channel, updated, ttl_s=60)
    assert await presence.members(channel) == {ALICE.client: updated}


async def test_presence_stats_counts_distinct_users(presence: Presence, channel: str) -> None:
    """``num_clients`` counts connections and ``num_users`` distinct user ids."""
    await presence.add(channel, ALICE, ttl_s=60)
    await presence.add(channel, ALICE_PHONE, ttl_s=60)
    await presence.add(channel, BOB, ttl_s=60)
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (3, 2)


async def test_presence_stats_counts_user_until_last_client_removed(presence: Presence, channel: str) -> None:
    """A user stays counted while any of its clients is present, removed or expired alike."""
    await presence.add(channel, ALICE, ttl_s=60)
    await presence.add(channel, ALICE_PHONE, ttl_s=60)
    await presence.add(channel, BOB, ttl_s=60)
    await presence.remove(channel, ALICE.client)
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (2, 2)
    await presence.remove(channel, ALICE_PHONE.client)
    await presence.remove(channel, ALICE_PHONE.client)
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (1, 1)


async def test_presence_stats_counts_new_user_when_client_added_again_as_other_user(
    presence: Presence, channel: str
) -> None:
    """Re-adding a client under another user moves it: the old user is no longer counted."""
    await presence.add(channel, ALICE, ttl_s=60)
    await presence.add(channel, ClientInfo(user="carol", client=ALICE.client), ttl_s=60)
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (1, 1)
    assert [info.user for info in (await presence.members(channel)).values()] == ["carol"]


async def test_presence_stats_forgets_user_when_its_entries_expire(
    presence_harness: PresenceHarness, channel: str
) -> None:
    """Expired entries no longer count as clients or users, while live ones of others do."""
    presence = presence_harness.presence
    await presence.add(channel, ALICE, ttl_s=10)
    await presence.add(channel, ALICE_PHONE, ttl_s=10)
    await presence.add(channel, BOB, ttl_s=30)
    await presence_harness.advance(11)
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (1, 1)
    await presence.add(channel, ALICE, ttl_s=10)
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (2, 2)


async def test_presence_keeps_channels_apart(presence: Presence, channel: str, other_channel: str) -> None:
    """Membership of one channel says nothing about another."""
    await presence.add(channel, ALICE, ttl_s=60)
    await presence.add(other_channel, BOB, ttl_s=60)
    await presence.remove(other_channel, ALICE.client)
    assert await presence.members(channel) == {ALICE.client: ALICE}
    assert await presence.members(other_channel) == {BOB.client: BOB}


async def test_presence_keeps_member_when_ttl_not_elapsed(
    presence_harness: PresenceHarness, channel: str
) -> None:
    """An entry stays a member before its ttl runs out."""
    await presence_harness.presence.add(channel, ALICE, ttl_s=10)
    await presence_harness.advance(9)
    assert await presence_harness.presence.members(channel) == {ALICE.client: ALICE}


async def test_presence_expires_member_when_ttl_elapsed(
    presence_harness: PresenceHarness, channel: str
) -> None:
    """An entry not refreshed within its ttl disappears from members and stats."""
    presence = presence_harness.presence
    await presence.add(channel, ALICE, ttl_s=10)
    await presence.add(channel, BOB, ttl_s=30)
    await presence_harness.advance(11)
    assert await presence.members(channel) == {BOB.client: BOB}
    stats = await presence.stats(channel)
    assert (stats.num_clients, stats.num_users) == (1, 1)


async def test_presence_extends_ttl_when_member_added_again(
    presence_harness: PresenceHarness, channel: str
) -> None:
    """Adding a member again refreshes its expiry."""
    presence = presence_harness.presence
    await presence.add(channel, ALICE, ttl_s=10)
    await presence_harness.advance(8)
    await presence.add(channel, ALICE, ttl_s=10)
    await presence_harness.advance(8)
    assert await presence.members(channel) == {ALICE.client: ALICE}
    await presence_harness.advance(3)
    assert await presence.members(channel) == {}
