"""The UserStore contract, run against every implementation (``store.users`` of each store).

Params as in the MessageStore contract: "sqlite-file", "sqlite-memory" and "mongo" (the nx-27017
stand-in, or WIREHUB_TEST_MONGODB_URL, one database per test). Time is a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.helpers import FakeClock
from tests.mongo_helpers import drop_database, start_store
from wirehub.errors import UsernameTaken
from wirehub.storage.base import UserStore
from wirehub.storage.mongo import MongoStore
from wirehub.storage.sqlite import SqliteStore

# Real bcrypt hashes (cost 4) of two throwaway passwords: the store only ever sees hashes.
HASH = "$2b$04$z2VUeQYkFWRiLfdMNQKdj..dGV2RfPZm0/72ivCeCfMm8rl/ari8e"
OTHER_HASH = "$2b$04$/EusYCcpGdrdYwcJnN3MmOLOcLaC8WxZ2CH.Qf8TCoRdJYtLGkebe"
NOW = 1_700_000_000.123


@dataclass
class Opened:
    users: UserStore
    store: SqliteStore | MongoStore


def _open(kind: str, tmp_path: Path, clock: FakeClock, mongo_url: str) -> SqliteStore | MongoStore:
    if kind == "sqlite-file":
        return SqliteStore(str(tmp_path / "accounts.db"), clock=clock)
    if kind == "sqlite-memory":
        return SqliteStore(":memory:", clock=clock)
    if kind == "mongo":
        return MongoStore(mongo_url, clock=clock)
    raise AssertionError(f"unknown store kind {kind!r}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def users(
    store_kind: str, tmp_path: Path, clock: FakeClock, mongo_url: str
) -> AsyncIterator[UserStore]:
    store = _open(store_kind, tmp_path, clock, mongo_url)
    await start_store(store)
    try:
        yield store.users
    finally:
        await store.close()
        if mongo_url:
            await drop_database(mongo_url)


async def test_create_returns_account_with_creation_time_to_the_millisecond(users: UserStore) -> None:
    """A new account has an id, the username as given, the hash, now (ms precision) and no login."""
    account = await users.create("Alice", HASH)

    assert account.id
    assert account.username == "Alice"
    assert account.password_hash == HASH
    assert account.created_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert account.last_login_at is None
    assert account.disabled is False
    assert await users.get(account.id) == account


async def test_find_matches_username_case_insensitively(users: UserStore) -> None:
    """find() ignores case and Unicode compatibility forms, and returns the username as created."""
    account = await users.create("Alice", HASH)

    assert await users.find("alice") == account
    assert await users.find("ALICE") == account
    assert await users.find("\uff21lice") == account  # fullwidth A
    assert await users.find("alicia") is None


async def test_create_raises_username_taken_when_name_differs_only_in_case(users: UserStore) -> None:
    """A second account whose username differs only in case is refused; the first is unchanged."""
    first = await users.create("Alice", HASH)

    with pytest.raises(UsernameTaken):
        await users.create("aLiCe", OTHER_HASH)

    assert await users.find("alice") == first


async def test_create_admits_one_account_when_same_name_is_created_concurrently(users: UserStore) -> None:
    """Ten concurrent creates of one username: exactly one succeeds, the others get UsernameTaken."""
    outcomes = await asyncio.gather(*(users.create("bob", HASH) for _ in range(10)), return_exceptions=True)

    created = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(created) == 1
    assert all(isinstance(o, UsernameTaken) for o in outcomes if isinstance(o, BaseException))
    assert await users.find("BOB") == created[0]


@pytest.mark.parametrize("not_a_hash", ["hunter2", "", "$2b$04$short", "$1$abc$" + "x" * 53])
async def test_create_rejects_password_hash_when_not_bcrypt(users: UserStore, not_a_hash: str) -> None:
    """Anything but a bcrypt hash (a password passed by mistake, above all) is refused and not stored."""
    with pytest.raises(ValueError, match="bcrypt") as caught:
        await users.create("carol", not_a_hash)

    if not_a_hash:
        assert not_a_hash not in str(caught.value)
    assert await users.find("carol") is None


async def test_create_rejects_username_when_empty(users: UserStore) -> None:
    """An empty username is refused."""
    with pytest.raises(ValueError, match="username"):
        await users.create("", HASH)


async def test_record_login_sets_last_login_time(users: UserStore) -> None:
    """record_login stores the time (to the ms); other fields stay as they were."""
    account = await users.create("dave", HASH)
    at = datetime(2024, 5, 6, 7, 8, 9, 987654, tzinfo=UTC)

    assert await users.record_login(account.id, at) is True
    stored = await users.get(account.id)

    assert stored is not None
    assert stored.last_login_at == at.replace(microsecond=987000)
    assert stored.created_at == account.created_at
    assert stored.username == "dave"


async def test_record_login_accepts_other_timezones_and_rejects_naive_times(users: UserStore) -> None:
    """A time in another zone is stored as the same instant; a naive datetime is a caller bug."""
    account = await users.create("erin", HASH)
    at = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))

    await users.record_login(account.id, at)
    stored = await users.get(account.id)

    assert stored is not None
    assert stored.last_login_at == at
    with pytest.raises(ValueError, match="timezone"):
        await users.record_login(account.id, datetime(2024, 1, 1))


async def test_set_disabled_toggles_flag(users: UserStore) -> None:
    """An account can be disabled and enabled again; find() still returns it while disabled."""
    account = await users.create("frank", HASH)

    assert await users.set_disabled(account.id, True) is True
    disabled = await users.find("frank")
    assert await users.set_disabled(account.id, False) is True
    enabled = await users.get(account.id)

    assert disabled is not None
    assert disabled.disabled is True
    assert enabled is not None
    assert enabled.disabled is False


async def test_updates_return_false_when_account_unknown(users: UserStore) -> None:
    """record_login and set_disabled report a missing account; get() returns None for it."""
    assert await users.get("no-such-id") is None
    assert await users.record_login("no-such-id", datetime.now(tz=UTC)) is False
    assert await users.set_disabled("no-such-id", True) is False


async def test_account_repr_hides_password_hash(users: UserStore) -> None:
    """The hash never shows up in a repr (and so not in logs)."""
    account = await users.create("grace", HASH)

    assert HASH not in repr(account)
    assert "grace" in repr(account)


@pytest.mark.parametrize("store_kind", ["sqlite-file", "mongo"])  # in-memory is gone once closed
async def test_accounts_survive_reopen_when_store_is_persistent(
    store_kind: str, tmp_path: Path, clock: FakeClock, mongo_url: str
) -> None:
    """Closing and reopening a file or MongoDB store keeps accounts and the username index."""
    first = _open(store_kind, tmp_path, clock, mongo_url)
    await start_store(first)
    account = await first.users.create("heidi", HASH)
    await first.close()

    second = _open(store_kind, tmp_path, clock, mongo_url)
    await start_store(second)
    try:
        assert await second.users.find("HEIDI") == account
        with pytest.raises(UsernameTaken):
            await second.users.create("heidi", HASH)
    finally:
        await second.close()
        if mongo_url:
            await drop_database(mongo_url)
