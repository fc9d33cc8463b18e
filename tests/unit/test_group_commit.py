"""Group commit: concurrent appends to one channel share store round trips, each gets its offset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from wirehub.errors import StoreUnavailable
from wirehub.server.commit import GroupCommitter
from wirehub.storage.sqlite import SqliteStore
from wirehub.types import Appended, HistoryLimits, NewPublication

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


@pytest.fixture
async def store() -> AsyncIterator[CountingStore]:
    store = CountingStore()
    await store.start()
    yield store
    await store.close()


async def test_group_commit_batches_concurrent_appends(store: CountingStore) -> None:
    """Fifty concurrent appends take far fewer round trips and each gets a distinct offset."""
    committer = GroupCommitter(store)
    appended = await asyncio.gather(
        *(committer.append("chat:a", NewPublication({"n": i}), LIMITS) for i in range(50))
    )
    pubs = [pub for pub, _ in appended]
    assert len({epoch for _, epoch in appended}) == 1
    assert sorted(p.offset for p in pubs) == list(range(1, 51))
    assert [p.data for p in pubs] == [{"n": i} for i in range(50)]
    assert sum(store.batches) == 50
    assert len(store.batches) < 50


async def test_group_commit_keeps_channels_apart(store: CountingStore) -> None:
    """Appends to different channels are batched separately, with offsets of their own."""
    committer = GroupCommitter(store)
    (a, _), (b, _) = await asyncio.gather(
        committer.append("chat:a", NewPublication("x"), LIMITS),
        committer.append("chat:b", NewPublication("y"), LIMITS),
    )
    assert (a.offset, b.offset) == (1, 1)


async def test_group_commit_fails_every_publication_of_a_failed_batch(store: CountingStore) -> None:
    """When the store fails, every waiting publisher gets the error and none is acknowledged."""
    committer = GroupCommitter(store)
    await store.close()
    results = await asyncio.gather(
        *(committer.append("chat:a", NewPublication(i), LIMITS) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)


async def test_group_commit_starts_a_new_flush_after_the_previous_ends(store: CountingStore) -> None:
    """An append after an idle period is stored on its own, with the next offset."""
    committer = GroupCommitter(store)
    first, _ = await committer.append("chat:a", NewPublication(1), LIMITS)
    second, _ = await committer.append("chat:a", NewPublication(2), LIMITS)
    assert (first.offset, second.offset) == (1, 2)
    assert store.batches == [1, 1]
