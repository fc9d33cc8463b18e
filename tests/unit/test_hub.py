"""Unit tests for ``wirehub.server.hub``: refcounted broker subscriptions, encode-once fan-out,
ordered delivery with gap repair, and seamless recovery (docs/architecture.md, "Ordering and recovery").

The broker is a fake the tests drive by calling ``hub.on_message`` / ``hub.on_gap`` themselves. The
store is a real ``SqliteStore(":memory:")``, so gap repair and recovery read what the tests appended;
a thin subclass only adds one-shot hooks around ``read``/``position`` to put events exactly into the
hub's await points. The reorder deadline is either far away (the broker must fill holes) or tiny
(the store must); tests wait on conditions under ``asyncio.timeout``, never on sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from wirehub.broker.base import BrokerListener
from wirehub.errors import StoreUnavailable
from wirehub.server.hub import Hub, Joined, Recovery
from wirehub.storage.base import HistoryQuery
from wirehub.storage.sqlite import SqliteStore
from wirehub.types import (
    BrokerMessage,
    ClientInfo,
    ControlMessage,
    HistoryLimits,
    HistoryPage,
    Join,
    Leave,
    NewPublication,
    Publication,
    StreamPosition,
)

CHANNEL = "chat:room"
LIMITS = HistoryLimits(size=1000, ttl_s=3600.0)
TRIMMING = HistoryLimits(size=1, ttl_s=3600.0)
WAIT_S = 5.0
LONG_REORDER_S = 60.0
"""Far beyond any test: only the broker can fill a hole."""
SHORT_REORDER_S = 0.001
"""Next to nothing: a hole is filled from the store almost at once."""
REPLY = b'{"id":1,"subscribe":{}}'
"""What ``on_joined`` queues, standing in for the subscribe reply."""

Hook = Callable[[], Awaitable[None]]


class FakeBroker:
    """Records what the hub asks of the broker; messages are injected through ``hub.on_message``."""

    def __init__(self) -> None:
        self.subscribes: list[str] = []
        self.unsubscribes: list[str] = []
        self.published: list[tuple[str, BrokerMessage]] = []
        self.controls: list[ControlMessage] = []
        self.listener: BrokerListener | None = None
        self.unsubscribed = asyncio.Event()

    async def start(self, listener: BrokerListener) -> None:
        self.listener = listener

    async def close(self) -> None:
        self.listener = None

    async def subscribe(self, channel: str) -> None:
        self.subscribes.append(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.unsubscribes.append(channel)
        self.unsubscribed.set()

    async def publish(self, channel: str, message: BrokerMessage) -> None:
        self.published.append((channel, message))

    def publish_now(self, channel: str, message: BrokerMessage) -> bool:
        return False

    async def publish_control(self, message: ControlMessage) -> None:
        self.controls.append(message)

    async def check(self) -> None: ...


class HookedStore(SqliteStore):
    """The real SQLite store, plus one-shot hooks run around ``read`` and ``position``."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.before_read: Hook | None = None
        self.after_read: Hook | None = None
        self.before_position: Hook | None = None
        self.after_position: Hook | None = None

    async def read(self, channel: str, query: HistoryQuery) -> HistoryPage:
        hook, self.before_read = self.before_read, None
        if hook is not None:
            await hook()
        page = await super().read(channel, query)
        hook, self.after_read = self.after_read, None
        if hook is not None:
            await hook()
        return page

    async def position(self, channel: str) -> StreamPosition:
        hook, self.before_position = self.before_position, None
        if hook is not None:
            await hook()
        position = await super().position(channel)
        hook, self.after_position = self.after_position, None
        if hook is not None:
            await hook()
        return position


class FakeSubscriber:
    """A local connection as the hub sees it: collects frames and continuity losses."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.lost: list[str] = []
        self._changed = asyncio.Event()

    def deliver(self, frame: bytes) -> None:
        self.frames.append(frame)
        self._changed.set()

    def lost_continuity(self, channel: str) -> None:
        self.lost.append(channel)
        self._changed.set()

    def decoded(self) -> list[dict[str, Any]]:
        return [json.loads(frame) for frame in self.frames]

    def pubs(self) -> list[dict[str, Any]]:
        """The bodies of the ``pub`` pushes received, in order."""
        return [msg["push"]["pub"] for msg in self.decoded() if "pub" in msg.get("push", {})]

    def offsets(self) -> list[int]:
        return [pub.get("offset", 0) for pub in self.pubs()]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
async def store() -> AsyncIterator[HookedStore]:
    store = HookedStore()
    await store.start()
    try:
        yield store
    finally:
        await store.close()


MakeHub = Callable[[float], Hub]


@pytest.fixture
async def make_hub(broker: FakeBroker, store: HookedStore) -> AsyncIterator[MakeHub]:
    hubs: list[Hub] = []

    def make(reorder_timeout_s: float) -> Hub:
        hub = Hub(broker, store, reorder_timeout_s=reorder_timeout_s)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.close()


@pytest.fixture
def hub(make_hub: MakeHub) -> Hub:
    """A hub whose reorder deadline never passes during a test."""
    return make_hub(LONG_REORDER_S)


async def append(store: SqliteStore, count: int, *, limits: HistoryLimits = LIMITS) -> list[Publication]:
    """Append ``count`` publications to CHANNEL for real; return them with their offsets."""
    appended = await store.append(
        CHANNEL, [NewPublication(data={"n": i}) for i in range(count)], limits=limits
    )
    return appended.publications


def inject(hub: Hub, pubs: list[Publication], *offsets: int) -> None:
    """Deliver the publications with these offsets through the broker listener, in this order."""
    by_offset = {pub.offset: pub for pub in pubs}
    for offset in offsets:
        hub.on_message(CHANNEL, by_offset[offset])


async def join(
    hub: Hub,
    subscriber: FakeSubscriber,
    *,
    history: bool = True,
    join_leave: bool = False,
    recovery: Recovery | None = None,
    accept: bool = True,
) -> tuple[bool, Joined]:
    """Subscribe like a connection does: ``on_joined`` queues the reply; return the result and Joined."""
    seen: list[Joined] = []

    def on_joined(joined: Joined) -> bool:
        seen.append(joined)
        if accept:
            subscriber.deliver(REPLY)
        return accept

    ok = await hub.subscribe(
        CHANNEL, subscriber, history=history, join_leave=join_leave, recovery=recovery, on_joined=on_joined
    )
    assert len(seen) == 1
    return ok, seen[0]


async def joined(hub: Hub, subscriber: FakeSubscriber, **kwargs: Any) -> Joined:
    ok, result = await join(hub, subscriber, **kwargs)
    assert ok
    return result


def offsets_of(pubs: tuple[Publication, ...]) -> list[int]:
    return [pub.offset for pub in pubs]


# --------------------------------------------------------------------------- subscriptions and fan-out


@pytest.mark.parametrize("history", [False, True])
async def test_hub_encodes_publication_once_when_fanning_out(
    hub: Hub, store: HookedStore, history: bool
) -> None:
    """Every subscriber gets the very same frame object: one encode per publication."""
    subscribers = [FakeSubscriber() for _ in range(3)]
    for subscriber in subscribers:
        await joined(hub, subscriber, history=history)
    pub = (await append(store, 1))[0] if history else Publication(data={"text": "hi"})
    hub.on_message(CHANNEL, pub)
    frames = [subscriber.frames[-1] for subscriber in subscribers]
    assert all(frame is frames[0] for frame in frames)
    assert json.loads(frames[0]) == {"push": {"channel": CHANNEL, "pub": pub.to_wire()}}


async def test_hub_subscribes_broker_once_when_subscribers_join(hub: Hub, broker: FakeBroker) -> None:
    """The first local subscriber subscribes the broker; later ones do not."""
    for _ in range(3):
        await joined(hub, FakeSubscriber())
    assert broker.subscribes == [CHANNEL]
    assert hub.subscriber_count(CHANNEL) == 3
    assert hub.channels == frozenset({CHANNEL})


async def test_hub_subscribes_broker_once_when_subscribers_join_concurrently(
    hub: Hub, broker: FakeBroker
) -> None:
    """Subscribers racing to open the same channel share one broker subscription and one position."""
    results = await asyncio.gather(*(joined(hub, FakeSubscriber()) for _ in range(3)))
    assert broker.subscribes == [CHANNEL]
    assert {result.position for result in results} == {results[0].position}
    assert hub.subscriber_count(CHANNEL) == 3


async def test_hub_unsubscribes_broker_once_when_last_subscriber_leaves(hub: Hub, broker: FakeBroker) -> None:
    """The broker subscription is refcounted: only the last leaving subscriber unsubscribes it."""
    first, second = FakeSubscriber(), FakeSubscriber()
    await joined(hub, first)
    await joined(hub, second)
    await hub.unsubscribe(CHANNEL, first)
    assert broker.unsubscribes == []
    assert hub.subscriber_count(CHANNEL) == 1
    await hub.unsubscribe(CHANNEL, second)
    assert broker.unsubscribes == [CHANNEL]
    assert hub.subscriber_count(CHANNEL) == 0
    assert hub.channels == frozenset()
    await hub.unsubscribe(CHANNEL, second)
    assert broker.unsubscribes == [CHANNEL]


async def test_hub_unsubscribes_broker_when_first_subscribe_fails(
    hub: Hub, broker: FakeBroker, store: HookedStore
) -> None:
    """A first subscribe that fails after the broker subscribed leaves no broker subscription behind."""

    async def fail() -> None:
        raise StoreUnavailable()

    store.before_position = fail
    with pytest.raises(StoreUnavailable):
        await join(hub, FakeSubscriber())
    async with asyncio.timeout(5):
        await broker.unsubscribed.wait()
    assert broker.subscribes == [CHANNEL]
    assert broker.unsubscribes == [CHANNEL]
    assert hub.channels == frozenset()


async def test_hub_resubscribes_broker_when_channel_reopened(hub: Hub, broker: FakeBroker) -> None:
    """A channel whose last subscriber left is subscribed on the broker again by the next one."""
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    await hub.unsubscribe(CHANNEL, subscriber)
    await joined(hub, FakeSubscriber())
    assert broker.subscribes == [CHANNEL, CHANNEL]
    assert broker.unsubscribes == [CHANNEL]


async def test_hub_stops_delivering_when_subscriber_left(hub: Hub) -> None:
    """A subscriber that unsubscribed receives nothing more; the others still do."""
    leaving, staying = FakeSubscriber(), FakeSubscriber()
    await joined(hub, leaving, history=False)
    await joined(hub, staying, history=False)
    await hub.unsubscribe(CHANNEL, leaving)
    hub.on_message(CHANNEL, Publication(data=1))
    assert leaving.pubs() == []
    assert staying.pubs() == [{"data": 1}]


async def test_hub_ignores_message_when_channel_not_subscribed(hub: Hub) -> None:
    """Messages for channels without local subscribers are dropped quietly."""
    subscriber = FakeSubscriber()
    await joined(hub, subscriber, history=False)
    hub.on_message("other", Publication(data=1))
    hub.on_gap(frozenset({"other"}))
    assert subscriber.pubs() == []


async def test_hub_delivers_as_received_when_channel_has_no_history(hub: Hub, broker: FakeBroker) -> None:
    """Without history there are no offsets: publications go out in arrival order, none dropped."""
    subscriber = FakeSubscriber()
    result = await joined(hub, subscriber, history=False)
    assert result == Joined(None)
    for value in [3, 1, 2, 2]:
        hub.on_message(CHANNEL, Publication(data=value))
    assert subscriber.pubs() == [{"data": 3}, {"data": 1}, {"data": 2}, {"data": 2}]


async def test_hub_sends_join_and_leave_only_when_subscriber_asked(hub: Hub) -> None:
    """Join/leave pushes go to subscribers that asked for them, and to no one else."""
    watcher, quiet = FakeSubscriber(), FakeSubscriber()
    await joined(hub, watcher, history=False, join_leave=True)
    await joined(hub, quiet, history=False)
    info = ClientInfo(user="u1", client="c1")
    hub.on_message(CHANNEL, Join(info))
    hub.on_message(CHANNEL, Leave(info))
    assert watcher.decoded()[1:] == [
        {"push": {"channel": CHANNEL, "join": {"info": {"user": "u1", "client": "c1"}}}},
        {"push": {"channel": CHANNEL, "leave": {"info": {"user": "u1", "client": "c1"}}}},
    ]
    assert quiet.frames == [REPLY]


# --------------------------------------------------------------------------- ordered delivery


async def test_hub_joins_at_stream_top_when_channel_has_history(hub: Hub, store: HookedStore) -> None:
    """A non-recovering subscribe gets the store's top and epoch as its position."""
    await append(store, 4)
    expected = await store.position(CHANNEL)
    result = await joined(hub, FakeSubscriber())
    assert result == Joined(expected)
    assert expected.offset == 4


async def test_hub_delivers_in_order_when_channel_has_history(hub: Hub, store: HookedStore) -> None:
    """Publications arriving in offset order are delivered in that order, payload intact."""
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 5)
    inject(hub, pubs, 1, 2, 3, 4, 5)
    assert subscriber.offsets() == [1, 2, 3, 4, 5]
    assert subscriber.pubs() == [pub.to_wire() for pub in pubs]


async def test_hub_drops_duplicates_when_offset_not_above_top(hub: Hub, store: HookedStore) -> None:
    """A publication at or below the last delivered offset is a duplicate and is dropped."""
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 3)
    inject(hub, pubs, 1, 2, 1, 2, 3, 3, 1)
    assert subscriber.offsets() == [1, 2, 3]


async def test_hub_drops_publications_when_already_in_joined_position(hub: Hub, store: HookedStore) -> None:
    """Publications covered by the position given at subscribe time are not delivered again."""
    pubs = await append(store, 3)
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs += await append(store, 1)
    inject(hub, pubs, 1, 2, 3, 4)
    assert subscriber.offsets() == [4]


async def test_hub_holds_early_publication_until_missing_one_arrives(hub: Hub, store: HookedStore) -> None:
    """A publication past a hole waits; when the hole is filled, both go out in offset order."""
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 3)
    inject(hub, pubs, 3)
    inject(hub, pubs, 2)
    assert subscriber.offsets() == []
    inject(hub, pubs, 1)
    assert subscriber.offsets() == [1, 2, 3]


async def test_hub_fills_hole_from_store_when_broker_does_not_within_deadline(
    make_hub: MakeHub, store: HookedStore
) -> None:
    """A hole still open after ``reorder_timeout_s`` is read from the store and delivered in order."""
    hub = make_hub(SHORT_REORDER_S)
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 3)
    inject(hub, pubs, 1, 3)
    assert subscriber.offsets() == [1]
    await subscriber.wait_until(lambda: len(subscriber.offsets()) >= 3)
    assert subscriber.offsets() == [1, 2, 3]
    assert subscriber.lost == []
    inject(hub, pubs, 2)
    assert subscriber.offsets() == [1, 2, 3]


async def test_hub_fills_several_holes_from_store_when_broker_lost_them(
    make_hub: MakeHub, store: HookedStore
) -> None:
    """Several holes before the newest publication are all filled from the store, in order."""
    hub = make_hub(SHORT_REORDER_S)
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 8)
    inject(hub, pubs, 1, 4, 6, 8)
    await subscriber.wait_until(lambda: len(subscriber.offsets()) >= 8)
    assert subscriber.offsets() == list(range(1, 9))


async def test_hub_calls_lost_continuity_when_store_cannot_fill_hole(
    make_hub: MakeHub, store: HookedStore
) -> None:
    """A hole the store trimmed away drops the channel's subscribers so that they recover."""
    hub = make_hub(SHORT_REORDER_S)
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 1, limits=TRIMMING)
    inject(hub, pubs, 1)
    pubs += await append(store, 3, limits=TRIMMING)  # the store keeps only offset 4
    inject(hub, pubs, 4)
    await subscriber.wait_until(lambda: bool(subscriber.lost))
    assert subscriber.lost == [CHANNEL]
    assert subscriber.offsets() == [1]


@pytest.mark.parametrize("appended", [True, False], ids=["in_position", "after_position"])
async def test_hub_does_not_lose_publication_when_it_arrives_while_channel_opens(
    hub: Hub, store: HookedStore, appended: bool
) -> None:
    """A publication arriving between broker subscribe and position read is in the position or delivered."""
    pubs = await append(store, 2)
    early: list[Publication] = []

    async def publish_meanwhile() -> None:
        # Appended before the position read (it is in the position) or after it (it is not).
        if appended:
            early.extend(await append(store, 1))
            hub.on_message(CHANNEL, early[0])
        else:
            early.append(Publication(data={"n": 0}, offset=3))
            hub.on_message(CHANNEL, early[0])

    if appended:
        store.before_position = publish_meanwhile
    else:
        store.after_position = publish_meanwhile
    subscriber = FakeSubscriber()
    result = await joined(hub, subscriber)
    assert early, "the hook did not run while the channel opened"
    assert result.position is not None
    if not appended:
        await store.append(CHANNEL, [NewPublication(data={"n": 0})], limits=LIMITS)  # offset 3, now stored
    pubs = [*pubs, *early, *(await append(store, 1))]
    inject(hub, pubs, 4)
    await subscriber.wait_until(lambda: 4 in subscriber.offsets())
    covered = [*range(1, result.position.offset + 1), *subscriber.offsets()]
    assert covered == [1, 2, 3, 4]


# --------------------------------------------------------------------------- on_joined


async def test_hub_runs_on_joined_before_any_publication_reaches_subscriber(
    hub: Hub, store: HookedStore
) -> None:
    """What ``on_joined`` queues precedes every live publication, even with publications flowing meanwhile."""
    await joined(hub, FakeSubscriber())
    pubs = await append(store, 3)
    inject(hub, pubs, 1, 2, 3)

    async def publish_meanwhile() -> None:
        pubs.extend(await append(store, 2))
        inject(hub, pubs, 4, 5)

    store.after_read = publish_meanwhile
    subscriber = FakeSubscriber()
    frames_at_join: list[list[bytes]] = []

    def on_joined(result: Joined) -> bool:
        frames_at_join.append(list(subscriber.frames))
        subscriber.deliver(REPLY)
        return True

    recovery = Recovery(offset=1, epoch="", max_publications=100)
    assert await hub.subscribe(CHANNEL, subscriber, history=True, recovery=recovery, on_joined=on_joined)
    pubs.extend(await append(store, 1))
    inject(hub, pubs, 6)
    assert frames_at_join == [[]]
    assert subscriber.frames[0] == REPLY
    assert subscriber.offsets() == [6]


async def test_hub_rejects_subscriber_when_on_joined_returns_false(
    hub: Hub, store: HookedStore, broker: FakeBroker
) -> None:
    """If ``on_joined`` refuses, subscribe returns False, nothing is delivered and the idle channel closes."""
    subscriber = FakeSubscriber()
    ok, _ = await join(hub, subscriber, accept=False)
    assert not ok
    hub.on_message(CHANNEL, (await append(store, 1))[0])
    assert subscriber.frames == []
    assert hub.subscriber_count(CHANNEL) == 0
    assert hub.channels == frozenset()
    assert broker.unsubscribes == [CHANNEL]


async def test_hub_keeps_channel_when_on_joined_refuses_second_subscriber(
    hub: Hub, store: HookedStore, broker: FakeBroker
) -> None:
    """A refused subscriber does not go live, while existing subscribers keep the channel open."""
    member, refused = FakeSubscriber(), FakeSubscriber()
    await joined(hub, member)
    ok, _ = await join(hub, refused, accept=False)
    assert not ok
    inject(hub, await append(store, 1), 1)
    assert member.offsets() == [1]
    assert refused.frames == []
    assert broker.unsubscribes == []
    assert hub.subscriber_count(CHANNEL) == 1


# --------------------------------------------------------------------------- recovery


async def test_hub_recovers_publications_after_offset(hub: Hub, store: HookedStore) -> None:
    """Recovery from offset O returns O+1..top, ``recovered`` and the position O in the current epoch."""
    await append(store, 5)
    epoch = (await store.position(CHANNEL)).epoch
    result = await joined(
        hub, FakeSubscriber(), recovery=Recovery(offset=2, epoch=epoch, max_publications=100)
    )
    assert result.recovered
    assert result.position == StreamPosition(2, epoch)
    assert offsets_of(result.publications) == [3, 4, 5]
    assert [pub.data for pub in result.publications] == [{"n": 2}, {"n": 3}, {"n": 4}]


async def test_hub_recovers_nothing_when_offset_is_top(hub: Hub, store: HookedStore) -> None:
    """A client already at the top recovers with no publications."""
    await append(store, 5)
    epoch = (await store.position(CHANNEL)).epoch
    result = await joined(
        hub, FakeSubscriber(), recovery=Recovery(offset=5, epoch=epoch, max_publications=100)
    )
    assert result == Joined(StreamPosition(5, epoch), recovered=True, publications=())


async def test_hub_recovers_when_epoch_not_given(hub: Hub, store: HookedStore) -> None:
    """An empty epoch in the request matches any epoch (docs/protocol.md, "Recovery")."""
    await append(store, 3)
    epoch = (await store.position(CHANNEL)).epoch
    result = await joined(hub, FakeSubscriber(), recovery=Recovery(offset=1, epoch="", max_publications=100))
    assert result.recovered
    assert result.position == StreamPosition(1, epoch)
    assert offsets_of(result.publications) == [2, 3]


async def test_hub_does_not_recover_when_epoch_differs(hub: Hub, store: HookedStore) -> None:
    """A wrong epoch gives ``recovered`` False, no publications, and the current top."""
    await append(store, 5)
    top = await store.position(CHANNEL)
    recovery = Recovery(offset=2, epoch=top.epoch + "-old", max_publications=100)
    result = await joined(hub, FakeSubscriber(), recovery=recovery)
    assert result == Joined(top, recovered=False, publications=())


async def test_hub_does_not_recover_when_too_many_missed(hub: Hub, store: HookedStore) -> None:
    """More missed publications than ``max_publications`` gives ``recovered`` False and the top."""
    await append(store, 5)
    top = await store.position(CHANNEL)
    result = await joined(
        hub, FakeSubscriber(), recovery=Recovery(offset=0, epoch=top.epoch, max_publications=2)
    )
    assert result == Joined(top, recovered=False, publications=())


async def test_hub_recovers_when_missed_equals_max_publications(hub: Hub, store: HookedStore) -> None:
    """Exactly ``max_publications`` missed publications are still recovered."""
    await append(store, 5)
    epoch = (await store.position(CHANNEL)).epoch
    result = await joined(hub, FakeSubscriber(), recovery=Recovery(offset=2, epoch=epoch, max_publications=3))
    assert result.recovered
    assert offsets_of(result.publications) == [3, 4, 5]


async def test_hub_does_not_recover_when_history_trimmed(hub: Hub, store: HookedStore) -> None:
    """A range the store no longer holds is never partially replayed."""
    await append(store, 5, limits=HistoryLimits(size=2, ttl_s=3600.0))
    top = await store.position(CHANNEL)
    result = await joined(
        hub, FakeSubscriber(), recovery=Recovery(offset=1, epoch=top.epoch, max_publications=100)
    )
    assert result == Joined(top, recovered=False, publications=())


async def test_hub_does_not_recover_when_offset_beyond_top(hub: Hub, store: HookedStore) -> None:
    """An offset the stream never reached cannot be recovered from."""
    await append(store, 2)
    top = await store.position(CHANNEL)
    result = await joined(
        hub, FakeSubscriber(), recovery=Recovery(offset=9, epoch=top.epoch, max_publications=100)
    )
    assert result == Joined(top, recovered=False, publications=())


async def test_hub_recovers_without_duplicates_or_gaps_when_live_publications_keep_flowing(
    hub: Hub, store: HookedStore
) -> None:
    """Publications delivered live while the recovery read awaits end up in the reply, not twice or never."""
    first = FakeSubscriber()
    await joined(hub, first)
    pubs = await append(store, 5)
    inject(hub, pubs, 1, 2, 3, 4, 5)

    async def publish_meanwhile() -> None:
        pubs.extend(await append(store, 2))
        inject(hub, pubs, 6, 7)

    store.after_read = publish_meanwhile
    recovering = FakeSubscriber()
    epoch = (await store.position(CHANNEL)).epoch
    result = await joined(hub, recovering, recovery=Recovery(offset=2, epoch=epoch, max_publications=100))
    assert result.recovered
    assert result.position == StreamPosition(2, epoch)
    assert offsets_of(result.publications) == [3, 4, 5, 6, 7]  # 6 and 7 bridged from the live stream
    pubs.extend(await append(store, 2))
    inject(hub, pubs, 8, 9)
    assert [*offsets_of(result.publications), *recovering.offsets()] == list(range(3, 10))
    assert first.offsets() == list(range(1, 10))


async def test_hub_recovers_without_duplicates_when_store_is_ahead_of_live_stream(
    hub: Hub, store: HookedStore
) -> None:
    """Publications the store has but the broker has not delivered yet come live, not in the reply too."""
    await joined(hub, FakeSubscriber())
    pubs = await append(store, 5)
    inject(hub, pubs, 1, 2, 3, 4, 5)

    async def append_meanwhile() -> None:
        pubs.extend(await append(store, 1))  # offset 6: stored, its broker message still on the way

    store.before_read = append_meanwhile
    recovering = FakeSubscriber()
    epoch = (await store.position(CHANNEL)).epoch
    result = await joined(hub, recovering, recovery=Recovery(offset=3, epoch=epoch, max_publications=100))
    inject(hub, pubs, 6)
    assert result.recovered
    assert [*offsets_of(result.publications), *recovering.offsets()] == [4, 5, 6]


# --------------------------------------------------------------------------- broker gaps


async def test_hub_repairs_from_store_when_broker_reports_gap(hub: Hub, store: HookedStore) -> None:
    """``on_gap`` makes the hub read the store and deliver what the broker lost, in order."""
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 1)
    inject(hub, pubs, 1)
    await append(store, 3)  # lost by the broker
    hub.on_gap(frozenset({CHANNEL}))
    await subscriber.wait_until(lambda: len(subscriber.offsets()) >= 4)
    assert subscriber.offsets() == [1, 2, 3, 4]
    assert subscriber.lost == []


async def test_hub_calls_lost_continuity_when_gap_cannot_be_repaired(hub: Hub, store: HookedStore) -> None:
    """A broker gap whose publications the store already trimmed drops the channel's subscribers."""
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    inject(hub, await append(store, 1, limits=TRIMMING), 1)
    await append(store, 3, limits=TRIMMING)  # lost by the broker; the store keeps only offset 4
    hub.on_gap(frozenset({CHANNEL}))
    await subscriber.wait_until(lambda: bool(subscriber.lost))
    assert subscriber.lost == [CHANNEL]


async def test_hub_repairs_gap_when_reported_while_channel_opens(hub: Hub, store: HookedStore) -> None:
    """A broker gap reported while the first subscriber's position read is in flight is repaired later."""
    await append(store, 1)

    async def broker_reconnects_meanwhile() -> None:
        # The position read has seen offset 1; offset 2 is published while the broker is away.
        await append(store, 1)
        hub.on_gap(frozenset({CHANNEL}))

    store.after_position = broker_reconnects_meanwhile
    subscriber = FakeSubscriber()
    result = await joined(hub, subscriber)
    assert result.position is not None
    assert result.position.offset == 1
    await subscriber.wait_until(lambda: len(subscriber.offsets()) >= 1)
    assert subscriber.offsets() == [2]
    assert subscriber.lost == []


async def test_hub_repairs_gap_when_reported_while_repair_in_flight(
    make_hub: MakeHub, store: HookedStore
) -> None:
    """A broker gap reported while a reorder repair is reading the store is repaired too, not forgotten."""
    hub = make_hub(SHORT_REORDER_S)
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    pubs = await append(store, 3)
    inject(hub, pubs, 1, 3)  # hole at 2: a repair will read the store

    async def broker_reconnects_meanwhile() -> None:
        await append(store, 2)  # offsets 4, 5: published while the broker was away, lost
        hub.on_gap(frozenset({CHANNEL}))

    store.after_read = broker_reconnects_meanwhile
    await subscriber.wait_until(lambda: len(subscriber.offsets()) >= 5)
    assert subscriber.offsets() == [1, 2, 3, 4, 5]


# --------------------------------------------------------------------------- stream epochs


async def test_hub_adopts_the_epoch_of_a_stream_made_after_the_channel_opened(
    make_hub: MakeHub, store: HookedStore
) -> None:
    """Subscribed before the first publication (no stream, no epoch): the first publications'
    epoch becomes the channel's, without a break; a recovering subscribe then uses it."""
    hub = make_hub(LONG_REORDER_S)
    first = FakeSubscriber()
    result = await joined(hub, first)
    assert result.position == StreamPosition(0, "")
    appended = await store.append(CHANNEL, [NewPublication(data=n) for n in range(2)], limits=LIMITS)
    for pub in appended.publications:
        hub.on_message(CHANNEL, dataclasses.replace(pub, epoch=appended.epoch))
    assert first.offsets() == [1, 2]
    assert first.lost == []
    late = await joined(hub, FakeSubscriber(), recovery=Recovery(1, "", max_publications=100))
    assert late.recovered
    assert late.position == StreamPosition(1, appended.epoch)


async def test_hub_drops_positioned_subscribers_when_the_stream_was_made_anew(
    make_hub: MakeHub, store: HookedStore
) -> None:
    """A publication of another epoch than the channel's (the stream expired and was made anew):
    subscribers are told continuity is lost (3010: they recover and learn the new stream)."""
    hub = make_hub(LONG_REORDER_S)
    pubs = await append(store, 2)
    subscriber = FakeSubscriber()
    await joined(hub, subscriber)
    hub.on_message(CHANNEL, dataclasses.replace(pubs[0], offset=3, epoch="another-epoch"))
    await subscriber.wait_until(lambda: bool(subscriber.lost))
    assert subscriber.lost == [CHANNEL]
    assert subscriber.offsets() == []
