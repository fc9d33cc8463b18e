"""The MessageStore contract, run against every implementation.

Each implementation is one param of the ``store_kind`` fixture; a new one (e.g. "mongo") only
needs a param and a branch in ``_open_store``. Time is a fake clock the tests advance, never a sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from wirehub.errors import StoreUnavailable
from wirehub.storage.base import MessageStore
from wirehub.storage.sqlite import SqliteStore
from wirehub.types import JSON, ClientInfo, HistoryLimits, NewPublication, Publication

LIMITS = HistoryLimits(size=1000, ttl_s=3600.0)


class FakeClock:
    """A clock that only moves when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _open_store(kind: str, tmp_path: Path, clock: FakeClock) -> MessageStore:
    if kind == "sqlite-file":
        return SqliteStore(str(tmp_path / "history.db"), clock=clock)
    if kind == "sqlite-memory":
        return SqliteStore(":memory:", clock=clock)
    raise AssertionError(f"unknown store kind {kind!r}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite-file", "sqlite-memory"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def store(store_kind: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[MessageStore]:
    store = _open_store(store_kind, tmp_path, clock)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def _pubs(*values: JSON) -> list[NewPublication]:
    return [NewPublication(data=value) for value in values]


def _offsets(pubs: Sequence[Publication]) -> list[int]:
    return [pub.offset for pub in pubs]


async def _fill(store: MessageStore, channel: str, count: int) -> None:
    await store.append(channel, _pubs(*range(1, count + 1)), limits=LIMITS)


# --------------------------------------------------------------------------- append


async def test_append_assigns_consecutive_offsets_from_one_across_batches(store: MessageStore) -> None:
    """Offsets start at 1 and continue without gaps from one batch to the next."""
    first = await store.append("ch", _pubs("a", "b", "c"), limits=LIMITS)
    second = await store.append("ch", _pubs("d"), limits=LIMITS)
    third = await store.append("ch", _pubs("e", "f"), limits=LIMITS)

    assert _offsets(first) == [1, 2, 3]
    assert _offsets(second) == [4]
    assert _offsets(third) == [5, 6]
    assert [pub.data for pub in first + second + third] == ["a", "b", "c", "d", "e", "f"]
    assert (await store.position("ch")).offset == 6


async def test_append_assigns_unique_consecutive_offsets_when_concurrent(store: MessageStore) -> None:
    """Fifty concurrent appends share out offsets 1..N with no duplicate and no hole."""
    batches = await asyncio.gather(
        *(store.append("ch", _pubs(f"{task}-0", f"{task}-1"), limits=LIMITS) for task in range(50))
    )

    for batch in batches:
        assert _offsets(batch) == [batch[0].offset, batch[0].offset + 1]
    all_offsets = sorted(offset for batch in batches for offset in _offsets(batch))
    assert all_offsets == list(range(1, 101))
    page = await store.read("ch", since=None, limit=-1)
    assert _offsets(page.publications) == list(range(1, 101))
    assert page.position.offset == 100


async def test_append_returns_nothing_when_batch_is_empty(store: MessageStore) -> None:
    """An empty batch assigns no offset and leaves the stream top alone."""
    await _fill(store, "ch", 2)

    assert await store.append("ch", [], limits=LIMITS) == []
    assert (await store.position("ch")).offset == 2


async def test_append_stamps_time_when_not_given(store: MessageStore, clock: FakeClock) -> None:
    """A publication without time gets the store's now in ms; a given time is kept."""
    appended = await store.append(
        "ch", [NewPublication(data=1), NewPublication(data=2, time_ms=123)], limits=LIMITS
    )
    page = await store.read("ch", since=None, limit=-1)

    now_ms = int(clock.now * 1000)
    assert [pub.time_ms for pub in appended] == [now_ms, 123]
    assert [pub.time_ms for pub in page.publications] == [now_ms, 123]


async def test_append_trims_to_newest_size(store: MessageStore) -> None:
    """Only the newest ``size`` publications are kept, and the top offset is unchanged."""
    limits = HistoryLimits(size=3, ttl_s=3600.0)
    for value in range(1, 11):
        await store.append("ch", _pubs(value), limits=limits)

    page = await store.read("ch", since=None, limit=-1)

    assert _offsets(page.publications) == [8, 9, 10]
    assert [pub.data for pub in page.publications] == [8, 9, 10]
    assert page.position.offset == 10


async def test_append_trims_to_newest_size_when_one_batch_overflows(store: MessageStore) -> None:
    """A single batch larger than ``size`` keeps only its newest ``size`` publications."""
    await store.append("ch", _pubs(*range(1, 8)), limits=HistoryLimits(size=2, ttl_s=3600.0))

    page = await store.read("ch", since=None, limit=-1)

    assert _offsets(page.publications) == [6, 7]
    assert page.position.offset == 7


# --------------------------------------------------------------------------- position and epoch


async def test_position_is_zero_with_stable_epoch_when_channel_unknown(store: MessageStore) -> None:
    """An unknown channel starts at top 0 with an epoch that then stays the same."""
    first = await store.position("new")
    second = await store.position("new")
    await _fill(store, "new", 3)
    after_append = await store.position("new")
    page = await store.read("new", since=None, limit=0)

    assert first.offset == 0
    assert first.epoch
    assert second == first
    assert after_append.offset == 3
    assert after_append.epoch == first.epoch
    assert page.position == after_append


async def test_position_epoch_outlives_publications_when_all_trimmed_or_expired(
    store: MessageStore, clock: FakeClock
) -> None:
    """Losing every publication to retention keeps both the top offset and the epoch."""
    limits = HistoryLimits(size=1, ttl_s=10.0)
    await store.append("ch", _pubs(1, 2, 3), limits=limits)
    before = await store.position("ch")
    clock.advance(60)
    await store.append("ch", _pubs(4), limits=HistoryLimits(size=1, ttl_s=0.0))

    page = await store.read("ch", since=None, limit=-1)

    assert list(page.publications) == []
    assert page.position.offset == 4
    assert page.position.epoch == before.epoch


async def test_read_creates_stream_when_channel_unknown(store: MessageStore) -> None:
    """Reading an unknown channel gives top 0 and the epoch ``position`` later reports."""
    page = await store.read("new", since=None, limit=-1)

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
        appended = await second.append("ch", _pubs(4), limits=LIMITS)
        page = await second.read("ch", since=None, limit=-1)
    finally:
        await second.close()

    assert _offsets(appended) == [4]
    assert [pub.data for pub in page.publications] == [1, 2, 3, 4]
    assert page.position.epoch == before.epoch


# --------------------------------------------------------------------------- read


async def test_read_returns_all_ascending_when_since_is_none(store: MessageStore) -> None:
    """Without ``since`` a forward read starts at the oldest publication."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", since=None, limit=-1)

    assert _offsets(page.publications) == [1, 2, 3, 4, 5]
    assert page.position.offset == 5


async def test_read_returns_publications_after_since(store: MessageStore) -> None:
    """A forward read returns the offsets strictly after ``since``, oldest first."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", since=2, limit=-1)

    assert _offsets(page.publications) == [3, 4, 5]


async def test_read_returns_nothing_when_since_is_top(store: MessageStore) -> None:
    """A client already at the top gets no publications, only the position."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", since=5, limit=-1)

    assert list(page.publications) == []
    assert page.position.offset == 5


async def test_read_returns_at_most_limit_oldest_first(store: MessageStore) -> None:
    """A positive limit cuts a forward read after the first ``limit`` publications."""
    await _fill(store, "ch", 5)

    from_start = await store.read("ch", since=None, limit=2)
    from_since = await store.read("ch", since=1, limit=3)

    assert _offsets(from_start.publications) == [1, 2]
    assert _offsets(from_since.publications) == [2, 3, 4]
    assert from_start.position.offset == 5


async def test_read_returns_only_position_when_limit_is_zero(store: MessageStore) -> None:
    """``limit == 0`` returns the stream top and no publications."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", since=None, limit=0)
    reverse_page = await store.read("ch", since=None, limit=0, reverse=True)

    assert list(page.publications) == []
    assert list(reverse_page.publications) == []
    assert page.position == await store.position("ch")
    assert page.position.offset == 5


async def test_read_returns_everything_when_limit_is_negative(store: MessageStore) -> None:
    """``limit == -1`` means no limit in the store (the caller applies its own cap)."""
    await _fill(store, "ch", 400)

    page = await store.read("ch", since=None, limit=-1)
    reverse_page = await store.read("ch", since=None, limit=-1, reverse=True)

    assert _offsets(page.publications) == list(range(1, 401))
    assert _offsets(reverse_page.publications) == list(range(400, 0, -1))


async def test_read_returns_newest_first_when_reverse(store: MessageStore) -> None:
    """A reverse read without ``since`` starts at the newest publication."""
    await _fill(store, "ch", 5)

    page = await store.read("ch", since=None, limit=3, reverse=True)

    assert _offsets(page.publications) == [5, 4, 3]
    assert page.position.offset == 5


async def test_read_returns_publications_before_since_when_reverse(store: MessageStore) -> None:
    """A reverse read returns the offsets strictly before ``since``, newest first."""
    await _fill(store, "ch", 5)

    limited = await store.read("ch", since=4, limit=2, reverse=True)
    unlimited = await store.read("ch", since=4, limit=-1, reverse=True)
    at_bottom = await store.read("ch", since=1, limit=-1, reverse=True)

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
    assert [pub.data for pub in (await store.read("ch", since=None, limit=-1)).publications] == [
        "old-1",
        "old-2",
        "new",
    ]

    clock.advance(0.1)
    page = await store.read("ch", since=None, limit=-1)
    reverse_page = await store.read("ch", since=None, limit=-1, reverse=True)
    assert _offsets(page.publications) == [3]
    assert _offsets(reverse_page.publications) == [3]

    clock.advance(5)
    page = await store.read("ch", since=None, limit=-1)
    assert list(page.publications) == []
    assert page.position.offset == 3


async def test_append_continues_offsets_when_stream_expired(store: MessageStore, clock: FakeClock) -> None:
    """After every publication expired, the next append continues from the old top."""
    limits = HistoryLimits(size=100, ttl_s=10.0)
    await _fill(store, "ch", 3)
    epoch = (await store.position("ch")).epoch
    clock.advance(3600)

    appended = await store.append("ch", _pubs("later"), limits=limits)
    page = await store.read("ch", since=None, limit=-1)

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

    appended = await store.append("ch", _pubs(payload), limits=LIMITS)
    page = await store.read("ch", since=None, limit=-1)

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
    page = await store.read("ch", since=None, limit=-1)

    assert [_json_exact(pub.data) for pub in page.publications] == [
        _json_exact(nested_objects),
        _json_exact(nested_arrays),
    ]


async def test_payload_round_trips_when_scalar_or_empty(store: MessageStore) -> None:
    """Top-level scalars, null and empty containers are valid payloads too."""
    values: list[JSON] = [None, 0, -1, 0.25, "", "ünïcode ✓", False, {}, []]

    await store.append("ch", _pubs(*values), limits=LIMITS)
    page = await store.read("ch", since=None, limit=-1)

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

    appended = await store.append("ch", new, limits=LIMITS)
    page = await store.read("ch", since=None, limit=-1)

    for pubs in (appended, list(page.publications)):
        assert [pub.info for pub in pubs] == [full, bare, None]
        assert [dict(pub.tags) for pub in pubs] == [{"kind": "chat", "a.b": "$x"}, {}, {}]
    assert list(page.publications) == appended


async def test_channels_are_independent(store: MessageStore) -> None:
    """Each channel has its own offsets, retention and publications."""
    await _fill(store, "a", 3)
    await store.append("b", _pubs("b1"), limits=HistoryLimits(size=1, ttl_s=3600.0))
    await store.append("b", _pubs("b2"), limits=HistoryLimits(size=1, ttl_s=3600.0))

    page_a = await store.read("a", since=None, limit=-1)
    page_b = await store.read("b", since=None, limit=-1)

    assert [pub.data for pub in page_a.publications] == [1, 2, 3]
    assert page_a.position.offset == 3
    assert [pub.data for pub in page_b.publications] == ["b2"]
    assert page_b.position.offset == 2
    assert (await store.position("c")).offset == 0


# --------------------------------------------------------------------------- failures


async def test_store_raises_unavailable_when_not_started(store_kind: str, tmp_path: Path) -> None:
    """Calls before ``start`` (or after ``close``) fail as a temporary store error."""
    store = _open_store(store_kind, tmp_path, FakeClock())
    with pytest.raises(StoreUnavailable):
        await store.position("ch")

    await store.start()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.append("ch", _pubs(1), limits=LIMITS)


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
def test_sqlite_from_url_resolves_path(url: str, path: str) -> None:
    """``sqlite:///`` takes the rest as the path (a fourth slash makes it absolute)."""
    assert SqliteStore.from_url(url).path == path


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "mongodb://localhost/db", "history.db"])
def test_sqlite_from_url_rejects_url_when_not_sqlite(url: str) -> None:
    """Anything but ``sqlite:///PATH`` or ``memory://`` is a configuration mistake."""
    with pytest.raises(ValueError, match="sqlite store URL"):
        SqliteStore.from_url(url)
