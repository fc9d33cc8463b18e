"""The RefreshTokenStore contract, against SQLite (file and in-memory) and MongoDB.

MongoDB is the nx-27017 stand-in, or WIREHUB_TEST_MONGODB_URL, one database per test.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.mongo_helpers import drop_database, start_store
from wirehub.storage.base import RefreshToken, RefreshTokenStore
from wirehub.storage.mongo import MongoStore
from wirehub.storage.mongo_tokens import MongoRefreshTokenStore
from wirehub.storage.sqlite import SqliteStore
from wirehub.storage.sqlite_tokens import SqliteRefreshTokenStore

NOW = datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(
    name: str, *, family: str = "fam-1", account: str = "acc-1", ttl: timedelta = timedelta(days=1)
) -> RefreshToken:
    return RefreshToken(
        token_hash=digest(name), family=family, account_id=account, created_at=NOW, expires_at=NOW + ttl
    )


def _open(kind: str, tmp_path: Path, mongo_url: str) -> SqliteStore | MongoStore:
    if kind == "sqlite-file":
        return SqliteStore(str(tmp_path / "tokens.db"))
    if kind == "sqlite-memory":
        return SqliteStore(":memory:")
    return MongoStore(mongo_url)


def _tokens_of(store: SqliteStore | MongoStore) -> RefreshTokenStore:
    if isinstance(store, MongoStore):
        return MongoRefreshTokenStore(store)
    return SqliteRefreshTokenStore(store)


async def _start(store: SqliteStore | MongoStore) -> RefreshTokenStore:
    await start_store(store)
    tokens = _tokens_of(store)
    await tokens.start()
    return tokens


@pytest.fixture
async def tokens(store_kind: str, tmp_path: Path, mongo_url: str) -> AsyncIterator[RefreshTokenStore]:
    store = _open(store_kind, tmp_path, mongo_url)
    try:
        yield await _start(store)
    finally:
        await store.close()
        if mongo_url:
            await drop_database(mongo_url)


async def test_add_then_get_returns_unused_unrevoked_token(tokens: RefreshTokenStore) -> None:
    """A new token reads back as stored, unused and not revoked; an unknown hash reads as None."""
    token = new_token("one")

    await tokens.add(token)

    assert await tokens.get(token.token_hash) == token
    assert await tokens.get(digest("unknown")) is None


async def test_add_rejects_value_when_not_a_sha256_hex(tokens: RefreshTokenStore) -> None:
    """Storing something that is not a digest (a raw token by mistake) is refused and not echoed."""
    raw = "rt_raw-token-value-that-must-not-be-stored-0123456789abcdef0123"
    bad = RefreshToken(token_hash=raw, family="f", account_id="a", created_at=NOW, expires_at=NOW)

    with pytest.raises(ValueError, match="SHA-256") as caught:
        await tokens.add(bad)

    assert raw not in str(caught.value)
    assert await tokens.get(raw) is None


async def test_use_succeeds_once_and_records_time(tokens: RefreshTokenStore) -> None:
    """The first use marks the token used at that time; a second use reports False."""
    token = new_token("one")
    await tokens.add(token)
    at = NOW + timedelta(minutes=5)

    first = await tokens.use(token.token_hash, at)
    second = await tokens.use(token.token_hash, at + timedelta(seconds=1))
    stored = await tokens.get(token.token_hash)

    assert (first, second) == (True, False)
    assert stored is not None
    assert stored.used_at == at


async def test_use_admits_exactly_one_caller_when_concurrent(tokens: RefreshTokenStore) -> None:
    """Ten concurrent uses of one token: exactly one wins (a refresh race cannot fork a family)."""
    token = new_token("raced")
    await tokens.add(token)

    outcomes = await asyncio.gather(*(tokens.use(token.token_hash, NOW) for _ in range(10)))

    assert sorted(outcomes) == [False] * 9 + [True]


async def test_use_returns_false_when_token_unknown(tokens: RefreshTokenStore) -> None:
    """Using a hash that was never stored reports False."""
    assert await tokens.use(digest("never"), NOW) is False


async def test_revoke_family_revokes_every_token_including_later_ones(tokens: RefreshTokenStore) -> None:
    """Revoking a family marks its tokens revoked, also one added afterwards; other families stay."""
    first, second, other = new_token("a"), new_token("b"), new_token("c", family="fam-2")
    for token in (first, second, other):
        await tokens.add(token)

    await tokens.revoke_family("fam-1", NOW)
    await tokens.revoke_family("fam-1", NOW)  # idempotent
    later = new_token("d")
    await tokens.add(later)

    states = [await tokens.get(t.token_hash) for t in (first, second, later, other)]
    assert [s.revoked if s else None for s in states] == [True, True, True, False]


async def test_purge_deletes_only_tokens_expired_before_time(tokens: RefreshTokenStore) -> None:
    """purge removes tokens past their expiry and keeps the rest; its count says how many went."""
    short = new_token("short", ttl=timedelta(hours=1))
    long = new_token("long", ttl=timedelta(days=2))
    await tokens.add(short)
    await tokens.add(long)

    deleted = await tokens.purge(NOW + timedelta(days=1))

    assert deleted == 1
    assert await tokens.get(short.token_hash) is None
    assert await tokens.get(long.token_hash) == long


async def test_purge_keeps_family_revocation_while_tokens_live(tokens: RefreshTokenStore) -> None:
    """Purging the expired token of a revoked family keeps the family revoked for its live tokens."""
    short = new_token("short", ttl=timedelta(hours=1))
    long = new_token("long", ttl=timedelta(days=2))
    await tokens.add(short)
    await tokens.add(long)
    await tokens.revoke_family("fam-1", NOW)

    await tokens.purge(NOW + timedelta(days=1))
    stored = await tokens.get(long.token_hash)

    assert stored is not None
    assert stored.revoked is True


@pytest.mark.parametrize("store_kind", ["sqlite-file", "mongo"])  # in-memory is gone once closed
async def test_tokens_survive_reopen_when_store_is_persistent(
    store_kind: str, tmp_path: Path, mongo_url: str
) -> None:
    """A used token and a revoked family read back the same after the store is reopened."""
    first = _open(store_kind, tmp_path, mongo_url)
    tokens = await _start(first)
    used, revoked = new_token("used"), new_token("revoked", family="fam-2")
    await tokens.add(used)
    await tokens.add(revoked)
    await tokens.use(used.token_hash, NOW)
    await tokens.revoke_family("fam-2", NOW)
    await first.close()

    second = _open(store_kind, tmp_path, mongo_url)
    try:
        reopened = await _start(second)
        again_used = await reopened.get(used.token_hash)
        again_revoked = await reopened.get(revoked.token_hash)
        assert again_used is not None
        assert again_used.used_at == NOW
        assert again_revoked is not None
        assert again_revoked.revoked is True
        assert await reopened.use(used.token_hash, NOW) is False
    finally:
        await second.close()
        if mongo_url:
            await drop_database(mongo_url)
