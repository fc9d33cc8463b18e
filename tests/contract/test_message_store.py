"""The MessageStore contract, run against every implementation.

Each implementation is one param of the ``store_kind`` fixture; a new one only needs a param and
a branch in ``_open_store``. "mongo" runs on the nx-27017 stand-in (or WIREHUB_TEST_MONGODB_URL), in
a database of its own per test. Time is a fake clock the tests advance, never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.helpers import FakeClock
from tests.mongo_helpers import drop_database, start_store
from wirehub.config import StoreSettings
from wirehub.errors import StoreUnavailable
from wirehub.storage.base import HistoryQuery, MessageStore
from wirehub.storage.mongo import MongoStore
from wirehub.storage.sqlite import SqliteStore
from wirehub.types import JSON, ClientInfo, HistoryLimits, NewPublication, Publication, StreamPosition

LIMITS = HistoryLimits(size=1000, ttl_s=3600.0)
IDEMPOTENCY_WINDOW_S = 300.0


def _open_store(kind: str, tmp_path: Path, clock: FakeClock, mongo_url: str) -> MessageStore:
    window = IDEMPOTENCY_WINDOW_S
    if kind == "sqlite-file":
        return SqliteStore(str(tmp_path / "history.db"), clock=clock, idempotency_window_s=window)
    if kind == "sqlite-memory":
        return SqliteStore(":memory:", clock=clock, idempotency_window_s=window)
    if kind == "mongo":
        # trim_interval_s=0: physical trimming runs on every append, so it is exercised too.
        return MongoStore(mongo_url, clock=clock, idempotency_window_s=window, trim_interval_s=0.0)
    raise AssertionError(f"unknown store kind {kind!r}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(
    store_kind: str, tmp_path: Path, clock: FakeClock, mongo_url: str
) -> AsyncIterator[MessageStore]:
    store = _open_store(store_kind, tmp_path, clock, mongo_url)
    await start_store(store)
    try:
        yield store
    finally:
        await store.close()
        if mongo_url:
            await drop_database(mongo_url)


def _pubs(*values: JSON) -> list[NewPublication]:
    return [NewPublication(data=value) for value in values]


def _offsets(pubs: Sequence[Publication]) -> list[int]:
    return [pub.offset for pub in pubs]


async def _fill(store: MessageStore, channel: str, count: int) -> None:
    await store.append(channel, _pubs(*range(1, count + 1)), limits=LIMITS)


# --------------------------------------------------------------------------- append


async def test_append_assigns_consecutive_offsets_from_one_across_batches(store: MessageStore) -> None:
    """Offsets start at 1 and continue without gaps from one batch to the next."""
    first = (await store.append("ch", _pubs("a", "b", "c"), limits=LIMITS)).publications
    second = (await store.append("ch", _pubs("d"), limits=LIMITS)).publications
    third = (await store.append("ch", _pubs("e", "f"), limits=LIMITS)).publications

    assert _offsets(first) == [1, 2, 3]
    assert _offsets(second) == [4]
    assert _offsets(third) == [5, 6]
    assert [pub.data for pub in first + second + third] == ["a", "b", "c", "d", "e", "f"]
    assert (await store.position("ch")).offset == 6


async def test_append_assigns_unique_consecutive_offsets_when_concurrent(store: MessageStore) -> None:
    """Fifty concurrent appends share out offsets 1..N with no duplicate and no hole."""
    batches_appended = await asyncio.gather(
        *(store.append("ch", _pubs(f"{task}-0", f"{task}-1"), limits=LIMITS) for task in range(50))
    )
    batches = [appended.publications for appended in batches_appended]

    for batch in batches:
        assert _offsets(batch) == [batch[0].offset, batch[0].offset + 1]
    all_offsets = sorted(offset for batch in batches for offset in _offsets(batch))
    assert all_offsets == list(range(1, 101))
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    assert _offsets(page.publications) == list(range(1, 101))
    assert page.position.offset == 100


async def test_append_returns_nothing_when_batch_is_empty(store: MessageStore) -> None:
    """An empty batch assigns no offset and leaves the stream top alone."""
    await _fill(store, "ch", 2)

    assert (await store.append("ch", [], limits=LIMITS)).publications == []
    assert (await store.position("ch")).offset == 2


async def test_append_stamps_time_when_not_given(store: MessageStore, clock: FakeClock) -> None:
    """A publication without time gets the store's now in ms; a given time is kept."""
    appended = (
        await store.append("ch", [NewPublication(data=1), NewPublication(data=2, time_ms=123)], limits=LIMITS)
    ).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    now_ms = int(clock.now * 1000)
    assert [pub.time_ms for pub in appended] == [now_ms, 123]
    assert [pub.time_ms for pub in page.publications] == [now_ms, 123]


async def test_append_trims_to_newest_size(store: MessageStore) -> None:
    """Only the newest ``size`` publications are kept, and the top offset is unchanged."""
    limits = HistoryLimits(size=3, ttl_s=3600.0)
    for value in range(1, 11):
        await store.append("ch", _pubs(value), limits=limits)

    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert _offsets(page.publications) == [8, 9, 10]
    assert [pub.data for pub in page.publications] == [8, 9, 10]
    assert page.position.offset == 10


async def test_append_trims_to_newest_size_when_one_batch_overflows(store: MessageStore) -> None:
    """A single batch larger than ``size`` keeps only its newest ``size`` publications."""
    await store.append("ch", _pubs(*range(1, 8)), limits=HistoryLimits(size=2, ttl_s=3600.0))

    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert _offsets(page.publications) == [6, 7]
    assert page.position.offset == 7


# --------------------------------------------------------------------------- position and epoch


async def test_position_of_unknown_channel_is_zero_without_epoch_until_first_append(
    store: MessageStore,
) -> None:
    """A channel never published to has no stream: offset 0, no epoch; the first append makes one."""
    first = await store.position("new")
    second = await store.position("new")
    await _fill(store, "new", 3)
    after_append = await store.position("new")
    page = await store.read("new", HistoryQuery(since=None, limit=0))

    assert first == second == StreamPosition(0, "")
    assert after_append.offset == 3
    assert after_append.epoch
    assert page.position == after_append


async def test_reads_of_unknown_channels_leave_nothing_to_expire(
    store: MessageStore, clock: FakeClock
) -> None:
    """Positions and history of channels nobody published to store nothing (no stream record)."""
    for n in range(20):
        await store.position(f"probe-{n}")
        await store.read(f"probe-{n}", HistoryQuery(since=None, limit=10))
    clock.advance(10**9)
    assert await store.expire_streams() == 0


async def test_expired_stream_is_removed_and_the_next_publication_starts_a_new_one(
    store: MessageStore, clock: FakeClock
) -> None:
    """Once every publication (and idempotency key) expired, expire_streams drops the stream; the
    next append starts at offset 1 under a new epoch, so no client takes old offsets for new ones."""
    limits = HistoryLimits(size=10, ttl_s=10.0)
    await store.append("quiet", _pubs(1, 2), limits=limits)
    await store.append("busy", _pubs(1), limits=HistoryLimits(size=10, ttl_s=10_000.0))
    old = await store.position("quiet")
    clock.advance(11 + IDEMPOTENCY_WINDOW_S)

    assert await store.expire_streams() == 1
    assert await store.position("quiet") == StreamPosition(0, "")
    assert (await store.read("quiet", HistoryQuery(since=None, limit=-1))).publications == []
    appended = await store.append("quiet", _pubs("again"), limits=limits)
    assert _offsets(appended.publications) == [1]
    assert appended.epoch not in ("", old.epoch)
    assert (await store.position("busy")).offset == 1  # still within its retention


async def test_stream_is_kept_while_an_idempotency_key_is_held(store: MessageStore, clock: FakeClock) -> None:
    """A stream whose publications expired but whose idempotency key is still held stays."""
    await store.append("ch", [_keyed("once", "k")], limits=HistoryLimits(size=10, ttl_s=1.0))
    clock.advance(2)
    assert await store.expire_streams() == 0
    retried = (
        await store.append("ch", [_keyed("once", "k")], limits=HistoryLimits(size=10, ttl_s=1.0))
    ).publications
    assert _offsets(retried) == [1]


async def test_position_epoch_outlives_publications_when_all_trimmed_or_expired(
    store: MessageStore, clock: FakeClock
) -> None:
    """Losing every publication to retention keeps both the top offset and the epoch."""
    limits = HistoryLimits(size=1, ttl_s=10.0)
    await store.append("ch", _pubs(1, 2, 3), limits=limits)
    before = await store.position("ch")
    clock.advance(60)
    await store.append("ch", _pubs(4), limits=HistoryLimits(size=1, ttl_s=0.0))

    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert list(page.publications) == []
    assert page.position.offset == 4
    assert page.position.epoch == before.epoch


async def test_read_creates_stream_when_channel_unknown(store: MessageStore) -> None:
    """Reading an unknown channel gives top 0 and the epoch ``position`` later reports."""
    page = await store.read("new", HistoryQuery(since=None, limit=-1))

    assert list(page.publications) == []
    assert page.position.offset == 0
    assert page.position == await store.position("new")


async def test_position_survives_reopen_when_same_file(tmp_path: Path, clock: FakeClock) -> None:
    """Closing and reopening the same file keeps the epoch, the top and the publications."""
    path = str(tmp_path / "history.db")
    first = SqliteStore(path, clock=clock)
    await first.start()
    await _fill(first, "ch", 3)
    empty_before = await first.position("empty")
    before = await first.position("ch")
    await first.close()

    second = SqliteStore(path, clock=clock)
    await second.start()
    try:
        assert await second.position("ch") == before
        assert await second.position("empty") == empty_before
        appended = (await second.append("ch", _pubs(4), limits=LIMITS)).publications
        page = await second.read("ch", HistoryQuery(since=None, limit=-1))
    finally:
        await second.close()

    assert _offsets(appended) == [4]
    assert [pub.data for pub in page.publications] == [1, 2, 3, 4]
    assert page.position.epoch == before.epoch


# --------------------------------------------------------------------------- read


async def test_read_returns_all_ascending_when_since_is_none(store: MessageStore) -> None:
    """Without ``since`` a forward read starts at the oldest publication."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert _offsets(page.publications) == [1, 2, 3, 4, 5]
    assert page.position.offset == 5


async def test_read_returns_publications_after_since(store: MessageStore) -> None:
    """A forward read returns the offsets strictly after ``since``, oldest first."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", HistoryQuery(since=2, limit=-1))

    assert _offsets(page.publications) == [3, 4, 5]


async def test_read_returns_nothing_when_since_is_top(store: MessageStore) -> None:
    """A client already at the top gets no publications, only the position."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", HistoryQuery(since=5, limit=-1))

    assert list(page.publications) == []
    assert page.position.offset == 5


async def test_read_returns_at_most_limit_oldest_first(store: MessageStore) -> None:
    """A positive limit cuts a forward read after the first ``limit`` publications."""
    await _fill(store, "ch", 5)

    from_start = await store.read("ch", HistoryQuery(since=None, limit=2))
    from_since = await store.read("ch", HistoryQuery(since=1, limit=3))

    assert _offsets(from_start.publications) == [1, 2]
    assert _offsets(from_since.publications) == [2, 3, 4]
    assert from_start.position.offset == 5


async def test_read_returns_only_position_when_limit_is_zero(store: MessageStore) -> None:
    """``limit == 0`` returns the stream top and no publications."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", HistoryQuery(since=None, limit=0))
    reverse_page = await store.read("ch", HistoryQuery(since=None, limit=0, reverse=True))

    assert list(page.publications) == []
    assert list(reverse_page.publications) == []
    assert page.position == await store.position("ch")
    assert page.position.offset == 5


async def test_read_returns_everything_when_limit_is_negative(store: MessageStore) -> None:
    """``limit == -1`` means no limit in the store (the caller applies its own cap)."""
    await _fill(store, "ch", 400)

    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    reverse_page = await store.read("ch", HistoryQuery(since=None, limit=-1, reverse=True))

    assert _offsets(page.publications) == list(range(1, 401))
    assert _offsets(reverse_page.publications) == list(range(400, 0, -1))


async def test_read_returns_newest_first_when_reverse(store: MessageStore) -> None:
    """A reverse read without ``since`` starts at the newest publication."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", HistoryQuery(since=None, limit=3, reverse=True))

    assert _offsets(page.publications) == [5, 4, 3]
    assert page.position.offset == 5


async def test_read_returns_publications_before_since_when_reverse(store: MessageStore) -> None:
    """A reverse read returns the offsets strictly before ``since``, newest first."""
    await _fill(store, "ch", 5)

    limited = await store.read("ch", HistoryQuery(since=4, limit=2, reverse=True))
    unlimited = await store.read("ch", HistoryQuery(since=4, limit=-1, reverse=True))
    at_bottom = await store.read("ch", HistoryQuery(since=1, limit=-1, reverse=True))

    assert _offsets(limited.publications) == [3, 2]
    assert _offsets(unlimited.publications) == [3, 2, 1]
    assert list(at_bottom.publications) == []


# --------------------------------------------------------------------------- ttl


async def test_read_hides_publications_when_ttl_expired(store: MessageStore, clock: FakeClock) -> None:
    """Publications older than ``ttl_s`` are never returned, even without a later append."""
    limits = HistoryLimits(size=100, ttl_s=10.0)
    await store.append("ch", _pubs("old-1", "old-2"), limits=limits)
    clock.advance(5)
    await store.append("ch", _pubs("new"), limits=limits)

    clock.advance(4.9)
    assert [
        pub.data for pub in (await store.read("ch", HistoryQuery(since=None, limit=-1))).publications
    ] == [
        "old-1",
        "old-2",
        "new",
    ]

    clock.advance(0.1)
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    reverse_page = await store.read("ch", HistoryQuery(since=None, limit=-1, reverse=True))
    assert _offsets(page.publications) == [3]
    assert _offsets(reverse_page.publications) == [3]

    clock.advance(5)
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    assert list(page.publications) == []
    assert page.position.offset == 3


# --------------------------------------------------------------------------- remove_history


async def test_remove_history_drops_publications_and_keeps_position(store: MessageStore) -> None:
    """After remove_history nothing is read, the top and epoch stay, and appends continue from the top."""
    await _fill(store, "ch", 3)
    before = await store.position("ch")

    await store.remove_history("ch")

    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    assert list(page.publications) == []
    assert page.position == before
    assert (await store.read("ch", HistoryQuery(since=0, limit=-1))).publications == []
    appended = (await store.append("ch", _pubs("after"), limits=LIMITS)).publications
    assert _offsets(appended) == [4]
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    assert [(p.offset, p.data) for p in page.publications] == [(4, "after")]
    assert page.position.epoch == before.epoch


async def test_remove_history_leaves_other_channels_alone(store: MessageStore) -> None:
    """Only the named channel loses its publications; removing a channel never used is a no-op."""
    await _fill(store, "a", 2)
    await _fill(store, "b", 2)

    await store.remove_history("a")
    await store.remove_history("never-used")

    assert _offsets((await store.read("b", HistoryQuery(since=None, limit=-1))).publications) == [1, 2]
    assert (await store.read("a", HistoryQuery(since=None, limit=-1))).publications == []


async def test_remove_history_keeps_idempotency_keys(store: MessageStore) -> None:
    """A retry with a key whose window is open still gets its original publication, not a new one."""
    first = (await store.append("ch", [_keyed("once", "k")], limits=LIMITS)).publications

    await store.remove_history("ch")
    retried = (await store.append("ch", [_keyed("once", "k")], limits=LIMITS)).publications

    assert _offsets(retried) == _offsets(first) == [1]
    assert (await store.position("ch")).offset == 1


async def test_append_returns_the_stream_epoch(store: MessageStore) -> None:
    """Every append reports the epoch of the stream it went to, the one reads report too."""
    first = await store.append("ch", _pubs(1), limits=LIMITS)
    second = await store.append("ch", _pubs(2), limits=LIMITS)
    assert first.epoch == second.epoch == (await store.position("ch")).epoch != ""


async def test_append_continues_offsets_when_stream_expired(store: MessageStore, clock: FakeClock) -> None:
    """After every publication expired, the next append continues from the old top."""
    limits = HistoryLimits(size=100, ttl_s=10.0)
    await _fill(store, "ch", 3)
    epoch = (await store.position("ch")).epoch
    clock.advance(3600)

    appended = (await store.append("ch", _pubs("later"), limits=limits)).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert _offsets(appended) == [4]
    assert _offsets(page.publications) == [4]
    assert page.position.epoch == epoch


# --------------------------------------------------------------------------- round-trips


def _json_exact(value: JSON) -> str:
    # Python's == treats True == 1 == 1.0; the JSON text tells them (and key order) apart.
    return json.dumps(value)


async def test_payload_round_trips_exactly_when_keys_look_like_operators(store: MessageStore) -> None:
    """Operator-like keys, big ints, NUL characters and mixed scalars come back unchanged."""
    payload: JSON = {"$where": 1, "a.b": {"__proto__": [1, 2**62, "x\u0000y", None, True, 1.5]}}

    appended = (await store.append("ch", _pubs(payload), limits=LIMITS)).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert _json_exact(appended[0].data) == _json_exact(payload)
    assert _json_exact(page.publications[0].data) == _json_exact(payload)


async def test_payload_round_trips_exactly_when_deeply_nested(store: MessageStore) -> None:
    """Objects and arrays nested 100 levels deep come back unchanged."""
    nested_objects: JSON = "leaf"
    nested_arrays: JSON = 0
    for depth in range(100):
        nested_objects = {f"k{depth}": nested_objects}
        nested_arrays = [nested_arrays, depth]

    await store.append("ch", _pubs(nested_objects, nested_arrays), limits=LIMITS)
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert [_json_exact(pub.data) for pub in page.publications] == [
        _json_exact(nested_objects),
        _json_exact(nested_arrays),
    ]


async def test_payload_round_trips_when_scalar_or_empty(store: MessageStore) -> None:
    """Top-level scalars, null and empty containers are valid payloads too."""
    values: list[JSON] = [None, 0, -1, 0.25, "", "ünïcode ✓", False, {}, []]

    await store.append("ch", _pubs(*values), limits=LIMITS)
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert [_json_exact(pub.data) for pub in page.publications] == [_json_exact(v) for v in values]


async def test_info_and_tags_round_trip(store: MessageStore) -> None:
    """Client info (with its JSON extras) and tags are returned as appended."""
    full = ClientInfo(user="u1", client="c1", conn_info={"name": "Ann", "n": [1]}, chan_info="vip")
    bare = ClientInfo(user="", client="c2")
    new = [
        NewPublication(data=1, info=full, tags={"kind": "chat", "a.b": "$x"}),
        NewPublication(data=2, info=bare),
        NewPublication(data=3),
    ]

    appended = (await store.append("ch", new, limits=LIMITS)).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    for pubs in (appended, list(page.publications)):
        assert [pub.info for pub in pubs] == [full, bare, None]
        assert [dict(pub.tags) for pub in pubs] == [{"kind": "chat", "a.b": "$x"}, {}, {}]
    assert list(page.publications) == appended


async def test_channels_are_independent(store: MessageStore) -> None:
    """Each channel has its own offsets, retention and publications."""
    await _fill(store, "a", 3)
    await store.append("b", _pubs("b1"), limits=HistoryLimits(size=1, ttl_s=3600.0))
    await store.append("b", _pubs("b2"), limits=HistoryLimits(size=1, ttl_s=3600.0))

    page_a = await store.read("a", HistoryQuery(since=None, limit=-1))
    page_b = await store.read("b", HistoryQuery(since=None, limit=-1))

    assert [pub.data for pub in page_a.publications] == [1, 2, 3]
    assert page_a.position.offset == 3
    assert [pub.data for pub in page_b.publications] == ["b2"]
    assert page_b.position.offset == 2
    assert (await store.position("c")).offset == 0


# --------------------------------------------------------------------------- idempotency


def _keyed(data: JSON, key: str) -> NewPublication:
    return NewPublication(data=data, idempotency_key=key)


async def test_append_returns_original_when_idempotency_key_repeats(store: MessageStore) -> None:
    """A retried publication with the same key gets the original offset, time and data; nothing is stored."""
    first = (await store.append("ch", [_keyed({"n": 1}, "k1")], limits=LIMITS)).publications
    await store.append("ch", _pubs("other"), limits=LIMITS)

    retried = (
        await store.append(
            "ch", [NewPublication(data={"n": 1}, time_ms=5, idempotency_key="k1")], limits=LIMITS
        )
    ).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert retried == first
    assert _offsets(retried) == [1]
    assert [pub.data for pub in page.publications] == [{"n": 1}, "other"]
    assert page.position.offset == 2


async def test_append_assigns_new_offsets_around_repeated_key_in_one_batch(store: MessageStore) -> None:
    """In one batch, a key seen before (in the batch or stored) reuses that publication; others go on."""
    await store.append("ch", [_keyed("a", "ka")], limits=LIMITS)

    batch = [
        _keyed("b", "kb"),
        _keyed("a again", "ka"),
        NewPublication(data="plain"),
        _keyed("b again", "kb"),
    ]
    appended = (await store.append("ch", batch, limits=LIMITS)).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert _offsets(appended) == [2, 1, 3, 2]
    assert [pub.data for pub in appended] == ["b", "a", "plain", "b"]
    assert [pub.data for pub in page.publications] == ["a", "b", "plain"]


async def test_append_stores_again_when_idempotency_window_passed(
    store: MessageStore, clock: FakeClock
) -> None:
    """After the idempotency window a key is forgotten and the publication is stored anew."""
    await store.append("ch", [_keyed(1, "k")], limits=LIMITS)
    clock.advance(IDEMPOTENCY_WINDOW_S - 1)
    within = (await store.append("ch", [_keyed(1, "k")], limits=LIMITS)).publications
    clock.advance(1)

    after = (await store.append("ch", [_keyed(1, "k")], limits=LIMITS)).publications

    assert _offsets(within) == [1]
    assert _offsets(after) == [2]


async def test_append_returns_original_when_key_repeats_after_retention_dropped_it(
    store: MessageStore, clock: FakeClock
) -> None:
    """Retention hides the original from reads, but a retry inside the window still gets its offset."""
    limits = HistoryLimits(size=1, ttl_s=10.0)
    await store.append("ch", [_keyed("orig", "k")], limits=limits)
    await store.append("ch", _pubs("newer"), limits=limits)
    clock.advance(20)
    await store.append("ch", _pubs("newest"), limits=limits)

    retried = (await store.append("ch", [_keyed("orig", "k")], limits=limits)).publications
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))

    assert [(pub.offset, pub.data) for pub in retried] == [(1, "orig")]
    assert [(pub.offset, pub.data) for pub in page.publications] == [(3, "newest")]
    assert page.position.offset == 3


async def test_append_keeps_idempotency_keys_per_channel(store: MessageStore) -> None:
    """The same key in another channel is another publication."""
    a = (await store.append("a", [_keyed(1, "k")], limits=LIMITS)).publications
    b = (await store.append("b", [_keyed(1, "k")], limits=LIMITS)).publications
    a_again = (await store.append("a", [_keyed(1, "k")], limits=LIMITS)).publications

    assert _offsets(a) == _offsets(b) == _offsets(a_again) == [1]
    assert (await store.position("b")).offset == 1
    assert (await store.position("a")).offset == 1


async def test_append_stores_key_once_when_retries_are_concurrent(store: MessageStore) -> None:
    """Twenty concurrent retries of one keyed publication store it once and all get its offset."""
    results = await asyncio.gather(
        *(store.append("ch", [_keyed("once", "k"), NewPublication(data=n)], limits=LIMITS) for n in range(20))
    )

    assert {batch.publications[0].offset for batch in results} == {results[0].publications[0].offset}
    page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    assert [pub.data for pub in page.publications].count("once") == 1
    assert _offsets(page.publications) == list(range(1, 22))


# --------------------------------------------------------------------------- failures


async def test_store_raises_unavailable_when_not_started(
    store_kind: str, tmp_path: Path, mongo_url: str
) -> None:
    """Calls before ``start`` (or after ``close``) fail as a temporary store error."""
    store = _open_store(store_kind, tmp_path, FakeClock(), mongo_url)
    with pytest.raises(StoreUnavailable):
        await store.position("ch")

    await start_store(store)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.append("ch", _pubs(1), limits=LIMITS)
    if mongo_url:
        await drop_database(mongo_url)


async def test_start_raises_unavailable_when_file_cannot_be_opened(tmp_path: Path) -> None:
    """A driver error at open time surfaces as ``StoreUnavailable`` with the cause chained."""
    store = SqliteStore(str(tmp_path / "missing-dir" / "history.db"))

    with pytest.raises(StoreUnavailable) as caught:
        await store.start()

    assert caught.value.__cause__ is not None
    await store.close()


# --------------------------------------------------------------------------- sqlite URLs


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///history.db", "history.db"),
        ("sqlite:///data/history.db", "data/history.db"),
        ("sqlite:////var/lib/wirehub/history.db", "/var/lib/wirehub/history.db"),
        ("memory://", ":memory:"),
    ],
)
def test_sqlite_store_url_resolves_path(url: str, path: str) -> None:
    """``sqlite:///`` takes the rest as the path (a fourth slash makes it absolute)."""
    assert SqliteStore.from_settings(StoreSettings(url=url)).path == path


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "mongodb://localhost/db", "history.db"])
def test_sqlite_store_url_rejects_url_when_not_sqlite(url: str) -> None:
    """Anything but ``sqlite:///PATH`` or ``memory://`` is a configuration mistake."""
    with pytest.raises(ValueError, match="sqlite store URL"):
        SqliteStore.from_settings(StoreSettings(url=url))


async def test_sqlite_store_migrates_database_when_created_before_idempotency(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A file from before retention floors and idempotency keys opens, keeps its stream, and takes keys."""
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE streams (channel TEXT PRIMARY KEY, top INTEGER NOT NULL, epoch TEXT NOT NULL)"
        )
        conn.execute(
            'CREATE TABLE publications (channel TEXT NOT NULL, "offset" INTEGER NOT NULL, data TEXT NOT NULL,'
            " info TEXT, tags TEXT NOT NULL, time_ms INTEGER NOT NULL, expires_at REAL NOT NULL,"
            ' PRIMARY KEY (channel, "offset"))'
        )
        conn.execute("INSERT INTO streams VALUES ('ch', 1, 'oldepoch')")
        conn.execute(
            "INSERT INTO publications VALUES ('ch', 1, '\"old\"', NULL, '{}', 5, ?)", (clock.now + 60,)
        )
    store = SqliteStore(str(path), clock=clock)
    await store.start()
    try:
        first = (await store.append("ch", [_keyed("new", "k")], limits=LIMITS)).publications
        retried = (await store.append("ch", [_keyed("new", "k")], limits=LIMITS)).publications
        page = await store.read("ch", HistoryQuery(since=None, limit=-1))
    finally:
        await store.close()

    assert _offsets(first) == _offsets(retried) == [2]
    assert [(p.offset, p.data) for p in page.publications] == [(1, "old"), (2, "new")]
    assert page.position.epoch == "oldepoch"
