"""MongoStore beyond the shared contract: several replicas, crashes between steps, retention on
disk, indexes, and MongoDB absent at start or going away while serving.

Replicas are separate ``MongoStore`` instances (each with its own client, cache and locks) on one
database. Outage tests run their own nx-27017 on a port of their own, so they can stop and start
it without disturbing the session's server (and they work the same with WIREHUB_TEST_MONGODB_URL
set, since a real MongoDB cannot be stopped by a test).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pymongo.errors import AutoReconnect

from tests.helpers import FakeClock
from tests.mongo_helpers import WAIT_S, database_url, drop_database, raw_client, start_store
from tests.services import MongoStandIn, free_port
from wirehub.errors import StoreUnavailable
from wirehub.storage.base import HistoryQuery
from wirehub.storage.mongo import MongoStore
from wirehub.types import JSON, HistoryLimits, NewPublication, Publication

LIMITS = HistoryLimits(size=10_000, ttl_s=3600.0)

S = TypeVar("S", bound=MongoStore)


def _pubs(*values: JSON) -> list[NewPublication]:
    return [NewPublication(data=value) for value in values]


def _offsets(pubs: Sequence[Publication]) -> list[int]:
    return [pub.offset for pub in pubs]


async def _ready(store: S) -> S:
    await start_store(store)
    return store


@pytest.fixture
def db_url(mongodb_url: str, unique_name: str) -> str:
    return database_url(mongodb_url, unique_name)


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[list[MongoStore]]:
    """Started stores on the test's database (add with ``stores.append``); closed, db dropped after."""
    opened: list[MongoStore] = []
    yield opened
    for store in opened:
        await store.close()
    await drop_database(db_url)


class LosesPendingInsert(MongoStore):
    """A store whose insert of a just-written batch into ``publications`` fails, as if the process
    died or the connection dropped between step 4 and step 5 of the append algorithm."""

    fail = True

    async def _store_pending(self, db: Any, channel: str, stream: Any) -> None:
        if self.fail and not stream.pending_stored:
            raise AutoReconnect("connection lost (simulated by the test)")
        await super()._store_pending(db, channel, stream)


# --------------------------------------------------------------------------- replicas


async def test_mongo_store_hands_out_each_offset_once_when_replicas_append_concurrently(
    db_url: str, stores: list[MongoStore]
) -> None:
    """Two replicas, four writers each, 20 small batches each: offsets 1..N once each, batches consecutive."""
    replicas = [await _ready(MongoStore(db_url)) for _ in range(2)]
    stores.extend(replicas)

    async def writer(store: MongoStore, name: str) -> list[list[Publication]]:
        batches = []
        for n in range(20):
            size = 1 + n % 3
            batches.append(
                (
                    await store.append("ch", _pubs(*(f"{name}-{n}-{k}" for k in range(size))), limits=LIMITS)
                ).publications
            )
        return batches

    results = await asyncio.gather(
        *(writer(store, f"{r}.{w}") for r, store in enumerate(replicas) for w in range(4))
    )

    batches = [batch for per_writer in results for batch in per_writer]
    for batch in batches:
        assert _offsets(batch) == list(range(batch[0].offset, batch[0].offset + len(batch)))
    by_offset = {pub.offset: pub.data for batch in batches for pub in batch}
    total = sum(len(batch) for batch in batches)
    assert sorted(by_offset) == list(range(1, total + 1))
    for store in replicas:
        page = await store.read("ch", HistoryQuery(since=None, limit=-1))
        assert [(pub.offset, pub.data) for pub in page.publications] == sorted(by_offset.items())
        assert page.position.offset == total
    assert (await replicas[0].position("ch")).epoch == (await replicas[1].position("ch")).epoch


async def test_mongo_store_stores_key_once_when_replicas_retry_concurrently(
    db_url: str, stores: list[MongoStore]
) -> None:
    """The same keyed publication retried at once through three replicas is stored under one offset."""
    replicas = [await _ready(MongoStore(db_url)) for _ in range(3)]
    stores.extend(replicas)

    results = await asyncio.gather(
        *(
            store.append(
                "ch",
                [NewPublication(data=f"filler {r}.{n}"), NewPublication("once", idempotency_key="k")],
                limits=LIMITS,
            )
            for n in range(5)
            for r, store in enumerate(replicas)
        )
    )

    assert len({batch.publications[1].offset for batch in results}) == 1
    page = await replicas[0].read("ch", HistoryQuery(since=None, limit=-1))
    assert [pub.data for pub in page.publications].count("once") == 1
    assert _offsets(page.publications) == list(range(1, 17))


async def test_mongo_store_creates_one_epoch_when_replicas_open_stream_concurrently(
    db_url: str, stores: list[MongoStore]
) -> None:
    """Replicas racing to create a stream agree on its epoch."""
    replicas = [await _ready(MongoStore(db_url)) for _ in range(3)]
    stores.extend(replicas)

    positions = await asyncio.gather(*(store.position(f"ch{n}") for n in range(10) for store in replicas))

    for n in range(10):
        assert len({p.epoch for p in positions[n * 3 : n * 3 + 3]}) == 1


# --------------------------------------------------------------------------- crash between steps


async def test_mongo_store_keeps_batch_when_insert_after_update_fails(
    db_url: str, stores: list[MongoStore]
) -> None:
    """A batch whose insert into publications failed is acknowledged, readable, stored by the next append."""
    crashing = await _ready(LosesPendingInsert(db_url))
    other = await _ready(MongoStore(db_url))
    stores.extend([crashing, other])

    acknowledged = (await crashing.append("ch", _pubs("a", "b"), limits=LIMITS)).publications
    raw = raw_client(db_url)
    try:
        on_disk_before = await raw.get_default_database()["publications"].count_documents({"channel": "ch"})
        seen_by_other = await other.read("ch", HistoryQuery(since=None, limit=-1))
        appended = (await other.append("ch", _pubs("c"), limits=LIMITS)).publications
        on_disk_after = (
            await raw.get_default_database()["publications"]
            .find({"channel": "ch"}, {"_id": 0, "offset": 1})
            .sort("offset", 1)
            .to_list()
        )
    finally:
        await raw.close()

    assert _offsets(acknowledged) == [1, 2]
    assert on_disk_before == 0
    assert [(p.offset, p.data) for p in seen_by_other.publications] == [(1, "a"), (2, "b")]
    assert _offsets(appended) == [3]
    assert [d["offset"] for d in on_disk_after] == [1, 2, 3]


async def test_mongo_store_stores_pending_before_next_write_when_same_store_failed(
    db_url: str, stores: list[MongoStore]
) -> None:
    """After its own failed insert, a store inserts the pending batch before writing the next one."""
    store = await _ready(LosesPendingInsert(db_url))
    stores.append(store)

    await store.append("ch", _pubs(1), limits=LIMITS)
    store.fail = False
    await store.append("ch", _pubs(2), limits=LIMITS)
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    raw = raw_client(db_url)
    try:
        on_disk = await raw.get_default_database()["publications"].count_documents({"channel": "ch"})
    finally:
        await raw.close()

    assert [(p.offset, p.data) for p in page.publications] == [(1, 1), (2, 2)]
    assert on_disk == 2


async def test_mongo_store_fails_whole_append_when_chunk_cannot_be_stored_before_next_chunk(
    db_url: str, stores: list[MongoStore]
) -> None:
    """A multi-chunk append whose first chunk's insert fails stops there with a temporary error."""
    store = await _ready(LosesPendingInsert(db_url, max_pending_bytes=1))
    stores.append(store)

    with pytest.raises(StoreUnavailable):
        await store.append("ch", _pubs(1, 2, 3), limits=LIMITS)
    store.fail = False
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    after = (await store.append("ch", _pubs(4), limits=LIMITS)).publications

    # The first chunk was durable before the failure: it stays, without a hole after it.
    assert [p.data for p in page.publications] == [1]
    assert _offsets(after) == [2]


async def test_mongo_store_splits_batch_into_ordered_chunks_when_larger_than_one_write(
    db_url: str, stores: list[MongoStore]
) -> None:
    """A batch over ``max_pending_bytes`` goes in several writes and still gets offsets 1..n in order."""
    store = await _ready(MongoStore(db_url, max_pending_bytes=2000))
    stores.append(store)
    payloads: list[JSON] = [{"n": n, "pad": "x" * 500} for n in range(1, 21)]

    appended = (await store.append("ch", _pubs(*payloads), limits=LIMITS)).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert _offsets(appended) == list(range(1, 21))
    assert [p.data for p in page.publications] == payloads


# --------------------------------------------------------------------------- what is on disk


async def test_mongo_store_keeps_payload_as_json_text_when_keys_look_like_operators(
    db_url: str, stores: list[MongoStore]
) -> None:
    """The payload is one opaque string in MongoDB: operator-like and dotted keys are never parsed."""
    store = await _ready(MongoStore(db_url))
    stores.append(store)
    payload: JSON = {"$set": {"a.b": 1}, "__proto__": "x\u0000y", "n": 12345678901234567890}

    await store.append("ch", _pubs(payload), limits=LIMITS)
    raw = raw_client(db_url)
    try:
        doc = await raw.get_default_database()["publications"].find_one({"channel": "ch"})
    finally:
        await raw.close()

    assert doc is not None
    assert isinstance(doc["data"], str)
    assert json.loads(doc["data"]) == payload
    assert (await store.read("ch", HistoryQuery(since=None, limit=-1))).publications[0].data == payload


async def test_mongo_store_deletes_documents_beyond_size_and_ttl_from_disk(
    db_url: str, stores: list[MongoStore]
) -> None:
    """Retention is enforced by wirehub itself: dropped publications leave the collection, not just reads."""
    clock = FakeClock()
    store = await _ready(MongoStore(db_url, clock=clock, trim_interval_s=0.0))
    stores.append(store)
    limits = HistoryLimits(size=3, ttl_s=60.0)
    raw = raw_client(db_url)
    publications = raw.get_default_database()["publications"]
    try:
        for n in range(1, 11):
            await store.append("ch", _pubs(n), limits=limits)
        after_size = [
            d["offset"] for d in await publications.find({"channel": "ch"}).sort("offset", 1).to_list()
        ]
        await store.append("ch", [NewPublication(data="keyed", idempotency_key="k")], limits=limits)
        clock.now += 120
        await store.append("ch", _pubs("late"), limits=limits)
        after_ttl = [
            d["offset"] for d in await publications.find({"channel": "ch"}).sort("offset", 1).to_list()
        ]
        clock.now += 300
        await store.append("ch", _pubs("later"), limits=limits)
        after_window = [
            d["offset"] for d in await publications.find({"channel": "ch"}).sort("offset", 1).to_list()
        ]
    finally:
        await raw.close()

    assert after_size == [8, 9, 10]
    # Offset 11 carries an idempotency key: kept on disk (hidden from reads) until its window ends.
    assert after_ttl == [11, 12]
    assert after_window == [13]


async def test_mongo_store_creates_indexes_once_when_started_repeatedly(
    db_url: str, stores: list[MongoStore]
) -> None:
    """Every start creates the indexes idempotently; the unique ones exist once, whatever they are named."""
    for _ in range(3):
        stores.append(await _ready(MongoStore(db_url)))
    raw = raw_client(db_url)
    try:
        db = raw.get_default_database()
        publications = await db["publications"].index_information()
        accounts = await db["accounts"].index_information()
    finally:
        await raw.close()

    def unique_keys(info: Mapping[str, Any]) -> list[list[tuple[str, int]]]:
        return [[(k, int(d)) for k, d in spec["key"]] for spec in info.values() if spec.get("unique")]

    assert unique_keys(publications) == [[("channel", 1), ("offset", 1)]]
    assert unique_keys(accounts) == [[("username_key", 1)]]
    assert len(publications) == 3  # _id, (channel, offset), (channel, idem)


async def test_mongo_store_uses_wirehub_database_when_url_names_none(private_mongo: MongoStandIn) -> None:
    """A URL without a database path stores in ``wirehub``; one with a path stores there."""
    bare = await _ready(MongoStore(private_mongo.url))
    named = await _ready(MongoStore(private_mongo.url + "/chat_prod"))
    try:
        assert (bare.database_name, named.database_name) == ("wirehub", "chat_prod")
    finally:
        await bare.close()
        await named.close()


async def test_mongo_store_accepts_numeric_write_concern(db_url: str, stores: list[MongoStore]) -> None:
    """write_concern "1" (journaled) and a non-primary read preference work end to end."""
    store = await _ready(MongoStore(db_url, write_concern="1", read_preference="secondaryPreferred"))
    stores.append(store)

    await store.append("ch", _pubs(1, 2), limits=LIMITS)

    assert _offsets((await store.read("ch", HistoryQuery(since=None, limit=-1))).publications) == [1, 2]


# --------------------------------------------------------------------------- MongoDB away


async def test_mongo_store_starts_without_mongodb_and_becomes_ready_when_it_appears(tmp_path: Path) -> None:
    """start() returns at once with MongoDB down; calls fail temporarily until it appears, then work."""
    port = free_port()
    store = MongoStore(f"mongodb://127.0.0.1:{port}/late", timeout_s=0.5)
    server = MongoStandIn(tmp_path / "late-mongo", port=port)
    try:
        async with asyncio.timeout(2.0):
            await store.start()
        assert store.ready is False
        with pytest.raises(StoreUnavailable) as caught:
            await store.append("ch", _pubs(1), limits=LIMITS)
        assert caught.value.temporary

        await server.start()
        async with asyncio.timeout(WAIT_S):
            await store.wait_ready()
        appended = (await store.append("ch", _pubs(1), limits=LIMITS)).publications
    finally:
        await store.close()
        await server.stop()

    assert store.ready is False  # closed
    assert _offsets(appended) == [1]


async def test_mongo_store_fails_temporarily_then_resumes_when_mongodb_restarts(
    private_mongo: MongoStandIn,
) -> None:
    """While MongoDB is down appends fail temporarily; afterwards offsets go on and nothing is lost."""
    store = await _ready(MongoStore(private_mongo.url + "/outage", timeout_s=1.0))
    try:
        before = (await store.append("ch", _pubs(1, 2, 3), limits=LIMITS)).publications
        epoch = (await store.position("ch")).epoch

        await private_mongo.stop()
        with pytest.raises(StoreUnavailable) as caught:
            await store.append("ch", _pubs("lost"), limits=LIMITS)
        assert caught.value.temporary
        with pytest.raises(StoreUnavailable):
            await store.read("ch", HistoryQuery(since=None, limit=-1))
        assert store.ready  # not-ready is about start-up; the outage is reported per call

        await private_mongo.start()
        async with asyncio.timeout(WAIT_S):
            while True:  # no event tells when MongoDB is back: retry as a client would
                try:
                    after = (await store.append("ch", _pubs(4), limits=LIMITS)).publications
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.1)
        page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    finally:
        await store.close()

    assert _offsets(before) == [1, 2, 3]
    # The failed append never reached MongoDB, so 4 follows 3 directly (it could have been
    # stored if the connection had dropped after the write: that is what idempotency keys are for).
    assert _offsets(after) == [4]
    assert [(p.offset, p.data) for p in page.publications] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert page.position.epoch == epoch


# --------------------------------------------------------------------------- real MongoDB only


@pytest.mark.real_mongodb
async def test_mongo_store_names_indexes_as_documented(db_url: str, stores: list[MongoStore]) -> None:
    """On a real MongoDB the indexes carry the names docs/mongodb.md lists (the stand-in renames them)."""
    assert os.environ.get("WIREHUB_TEST_MONGODB_URL")
    stores.append(await _ready(MongoStore(db_url)))
    raw = raw_client(db_url)
    try:
        db = raw.get_default_database()
        names = set(await db["publications"].index_information()) | set(
            await db["accounts"].index_information()
        )
    finally:
        await raw.close()

    assert {"channel_offset", "channel_idem", "username_key"} <= names
