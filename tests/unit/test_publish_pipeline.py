"""Unit tests for ``wirehub.server.pipeline``: per-channel order, group commit, broker failures.

The store is the real SQLite store (counting its round trips); the broker records what it is
handed and can be made to fail or to hold a publish until the test lets it go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from tests.helpers import next_turn

from wirehub.errors import BrokerUnavailable, StoreUnavailable
from wirehub.server.pipeline import Published, PublishPipeline
from wirehub.storage.sqlite import SqliteStore
from wirehub.types import Appended, BrokerMessage, ControlMessage, HistoryLimits, NewPublication, Publication

LIMITS = HistoryLimits(size=1000, ttl_s=3600)


class CountingStore(SqliteStore):
    """A real SQLite store that counts its append round trips."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.batches: list[int] = []

    async def append(
        self, channel: str, pubs: Sequence[NewPublication], *, limits: HistoryLimits
    ) -> Appended:
        self.batches.append(len(pubs))
        return await super().append(channel, pubs, limits=limits)


class RecordingBroker:
    def __init__(self) -> None:
        self.published: list[tuple[str, Publication]] = []
        self.down = False
        self.gate: asyncio.Event | None = None
        self.at_once = False
        """Take publications without waiting, as the in-process broker does."""

    async def publish(self, channel: str, message: BrokerMessage) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise BrokerUnavailable()
        assert isinstance(message, Publication)
        self.published.append((channel, message))

    def publish_now(self, channel: str, message: BrokerMessage) -> bool:
        if not self.at_once:
            return False
        if self.down:
            raise BrokerUnavailable()
        assert isinstance(message, Publication)
        self.published.append((channel, message))
        return True

    async def publish_control(self, message: ControlMessage) -> None: ...

    async def check(self) -> None: ...

    async def start(self, listener: object) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...


@pytest.fixture
async def store() -> AsyncIterator[CountingStore]:
    store = CountingStore()
    await store.start()
    yield store
    await store.close()


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture
def local() -> list[tuple[str, BrokerMessage]]:
    return []


@pytest.fixture
def pipeline(
    store: CountingStore, broker: RecordingBroker, local: list[tuple[str, BrokerMessage]]
) -> PublishPipeline:
    return PublishPipeline(store, broker, lambda channel, message: local.append((channel, message)))


async def test_concurrent_publishes_share_store_round_trips_in_submit_order(
    pipeline: PublishPipeline, store: CountingStore, broker: RecordingBroker
) -> None:
    """Fifty publications submitted at once: far fewer appends, offsets and broker order as submitted."""
    results = await asyncio.gather(
        *(pipeline.publish("chat:a", NewPublication({"n": i}), LIMITS) for i in range(50))
    )

    assert [pub.offset for pub, _ in results] == list(range(1, 51))
    assert [pub.data for pub, _ in results] == [{"n": i} for i in range(50)]
    assert len({epoch for _, epoch in results}) == 1
    assert sum(store.batches) == 50
    assert len(store.batches) < 50
    assert [pub.offset for _, pub in broker.published] == list(range(1, 51))


async def test_channels_are_stored_and_numbered_apart(pipeline: PublishPipeline) -> None:
    """Publications of different channels get offsets of their own."""
    (a, _), (b, _) = await asyncio.gather(
        pipeline.publish("chat:a", NewPublication("x"), LIMITS),
        pipeline.publish("chat:b", NewPublication("y"), LIMITS),
    )
    assert (a.offset, b.offset) == (1, 1)


async def test_unstored_publications_keep_their_order_behind_stored_ones(
    pipeline: PublishPipeline, broker: RecordingBroker
) -> None:
    """Stored and unstored publications of one channel reach the broker in submit order."""
    futures = [
        pipeline.publish("c", NewPublication(1), LIMITS),
        pipeline.publish("c", NewPublication(2), None),
        pipeline.publish("c", NewPublication(3), LIMITS),
    ]
    results = await asyncio.gather(*futures)
    assert [pub.data for _, pub in broker.published] == [1, 2, 3]
    assert [(pub.offset, epoch != "") for pub, epoch in results] == [(1, True), (0, False), (2, True)]


async def test_store_failure_fails_every_publication_of_the_batch(
    pipeline: PublishPipeline, store: CountingStore, broker: RecordingBroker
) -> None:
    """When the store fails, every waiting publisher gets the error and nothing reaches the broker."""
    await store.close()
    results = await asyncio.gather(
        *(pipeline.publish("c", NewPublication(i), LIMITS) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert broker.published == []


async def test_broker_failure_delivers_stored_publications_locally_and_fails_unstored_ones(
    pipeline: PublishPipeline, broker: RecordingBroker, local: list[tuple[str, BrokerMessage]]
) -> None:
    """A stored publication is acknowledged and delivered here; an unstored one fails with 100."""
    broker.down = True
    stored, _ = await pipeline.publish("c", NewPublication("kept"), LIMITS)
    with pytest.raises(BrokerUnavailable):
        await pipeline.publish("c", NewPublication("lost"), None)
    assert stored.offset == 1
    assert local == [("c", stored)]


async def test_a_publisher_that_stops_waiting_leaves_its_publication_in_line(
    pipeline: PublishPipeline, broker: RecordingBroker
) -> None:
    """Cancelling ``publish`` does not take the publication out: it is still published, in order."""
    broker.gate = asyncio.Event()
    first = asyncio.create_task(pipeline.publish("c", NewPublication(1), LIMITS))
    await next_turn()  # the task submits its publication
    second = pipeline.publish("c", NewPublication(2), LIMITS)
    first.cancel()
    broker.gate.set()
    await second
    await pipeline.close()  # the broker stage runs after the acks
    assert [pub.data for _, pub in broker.published] == [1, 2]


async def test_stored_publications_are_acknowledged_while_the_broker_is_stuck(
    pipeline: PublishPipeline, broker: RecordingBroker
) -> None:
    """A broker that takes nothing delays the fan-out, never the ack of what the store has."""
    broker.gate = asyncio.Event()
    first, _ = await pipeline.publish("c", NewPublication(1), LIMITS)
    second, _ = await pipeline.publish("c", NewPublication(2), LIMITS)
    assert (first.offset, second.offset) == (1, 2)
    assert broker.published == []
    broker.gate.set()
    await pipeline.close()
    assert [pub.offset for _, pub in broker.published] == [1, 2]


async def test_unstored_publication_waits_for_the_broker_behind_stored_ones(
    pipeline: PublishPipeline, broker: RecordingBroker
) -> None:
    """An unstored publication is acknowledged once the broker has it, after the stored ones before it."""
    broker.gate = asyncio.Event()
    stored = asyncio.ensure_future(pipeline.publish("c", NewPublication("stored"), LIMITS))
    unstored = asyncio.ensure_future(pipeline.publish("c", NewPublication("live"), None))
    await stored
    await next_turn()
    assert not unstored.done()
    broker.gate.set()
    await unstored
    assert [pub.data for _, pub in broker.published] == ["stored", "live"]


async def test_a_full_broker_backlog_leaves_out_the_oldest(
    pipeline: PublishPipeline,
    broker: RecordingBroker,
    local: list[tuple[str, BrokerMessage]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_BROKER_BACKLOG waiting publications, the oldest stored ones are delivered here only."""
    monkeypatch.setattr("wirehub.server.pipeline.MAX_BROKER_BACKLOG", 3)
    broker.gate = asyncio.Event()
    results = await asyncio.gather(*(pipeline.publish("c", NewPublication(n), LIMITS) for n in range(6)))
    assert [pub.offset for pub, _ in results] == list(range(1, 7))
    broker.gate.set()
    await pipeline.close()
    handed_over = [pub.offset for _, pub in broker.published]
    left_out = [message.offset for _, message in local if isinstance(message, Publication)]
    assert sorted(handed_over + left_out) == list(range(1, 7))
    assert handed_over == sorted(handed_over)
    assert left_out


Outcomes = list[tuple[Published | None, BaseException | None]]


def recording(outcomes: Outcomes) -> Callable[[Published | None, BaseException | None], None]:
    return lambda published, exc: outcomes.append((published, exc))


async def test_a_broker_that_takes_at_once_fans_out_before_submit_soon_returns(
    pipeline: PublishPipeline, broker: RecordingBroker
) -> None:
    """The in-process broker's path: nothing to await, the outcome is told within the call."""
    broker.at_once = True
    outcomes: Outcomes = []
    pipeline.submit_soon("c", NewPublication("now"), None, recording(outcomes))
    assert [pub.data for _, pub in broker.published] == ["now"]
    assert len(outcomes) == 1
    published, exc = outcomes[0]
    assert exc is None
    assert published is not None
    assert published[0].data == "now"


async def test_a_broker_that_fails_at_once_fails_the_publication(
    pipeline: PublishPipeline, broker: RecordingBroker
) -> None:
    """Nothing holds an unstored publication the broker refused: the publisher learns it at once."""
    broker.at_once = broker.down = True
    outcomes: Outcomes = []
    pipeline.submit_soon("c", NewPublication("lost"), None, recording(outcomes))
    assert len(outcomes) == 1
    assert isinstance(outcomes[0][1], BrokerUnavailable)


async def test_a_broker_that_must_be_waited_for_keeps_what_follows_in_the_same_step_behind(
    pipeline: PublishPipeline, broker: RecordingBroker
) -> None:
    """Two publications submitted in one step to an idle channel, the broker held: handed over in
    that order, each acknowledged once the broker has it."""
    broker.gate = asyncio.Event()
    outcomes: Outcomes = []
    pipeline.submit_soon("c", NewPublication(1), None, recording(outcomes))
    pipeline.submit_soon("c", NewPublication(2), None, recording(outcomes))
    await next_turn()
    assert outcomes == []
    broker.gate.set()
    await pipeline.close()
    assert [pub.data for _, pub in broker.published] == [1, 2]
    assert [published[0].data for published, _ in outcomes if published is not None] == [1, 2]
