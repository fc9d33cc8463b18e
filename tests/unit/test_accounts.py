"""The Accounts service and BcryptHasher, on a real in-memory SQLite store and real bcrypt (cost 4).

No HTTP here: ``tests/integration/test_accounts.py`` drives the same rules through a gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from wirehub.app import build_accounts
from wirehub.auth.accounts import Accounts, refresh_token_hash
from wirehub.auth.errors import (
    AccountDisabled,
    AccountsUnavailable,
    InvalidCredentials,
    InvalidRefreshToken,
    TooManyAttempts,
    UsernameUnavailable,
    WeakPassword,
)
from wirehub.auth.issuer import HmacTokenIssuer
from wirehub.auth.jwt import JwtVerifier
from wirehub.auth.passwords import BcryptHasher
from wirehub.broker.memory_rate import MemoryRateLimiter
from wirehub.config import AccountsSettings, AuthSettings, Settings, load_settings
from wirehub.storage.sqlite import SqliteStore
from wirehub.storage.sqlite_tokens import SqliteRefreshTokenStore

SECRET = "unit-test-secret-0123456789abcdef"
ADDRESS = "192.0.2.7"


@dataclass
class CountingHasher:
    """A real BcryptHasher that records which hashes ``verify`` was asked to check."""

    inner: BcryptHasher
    verified: list[str] = field(default_factory=list)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def dummy_hash(self) -> str:
        return await self.inner.dummy_hash()

    async def hash(self, password: str) -> str:
        return await self.inner.hash(password)

    async def verify(self, password: str, password_hash: str) -> bool:
        self.verified.append(password_hash)
        return await self.inner.verify(password, password_hash)


@dataclass
class Harness:
    accounts: Accounts
    hasher: CountingHasher
    store: SqliteStore


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    store = SqliteStore(":memory:")
    await store.start()
    hasher = CountingHasher(BcryptHasher(4))
    settings = AccountsSettings(bcrypt_cost=4, login_attempts_per_username=3, login_attempts_per_address=5)
    accounts = Accounts(
        settings,
        users=store.users,
        refresh_tokens=SqliteRefreshTokenStore(store),
        hasher=hasher,
        issuer=HmacTokenIssuer(AuthSettings(token_hmac_secret=SECRET)),
        limiter=MemoryRateLimiter(),
    )
    await accounts.start()
    try:
        yield Harness(accounts, hasher, store)
    finally:
        await accounts.close()
        await store.close()


async def test_login_checks_dummy_hash_when_username_unknown(harness: Harness) -> None:
    """An unknown username costs one bcrypt check against the dummy hash, as a wrong password costs one."""
    account = (await harness.accounts.register("alice", "correct horse", address=ADDRESS)).user
    stored = await harness.store.users.get(account)
    assert stored is not None
    harness.hasher.verified.clear()

    with pytest.raises(InvalidCredentials) as unknown:
        await harness.accounts.login("nobody", "correct horse", address=ADDRESS)
    with pytest.raises(InvalidCredentials) as wrong:
        await harness.accounts.login("alice", "wrong password", address=ADDRESS)

    dummy = await harness.hasher.dummy_hash()
    assert harness.hasher.verified == [dummy, stored.password_hash]
    assert dummy.startswith("$2b$04$")
    assert dummy != stored.password_hash
    assert unknown.value.message == wrong.value.message == "invalid username or password"


async def test_login_returns_token_the_verifier_accepts(harness: Harness) -> None:
    """A login token verifies with the gateway's verifier: sub is the account id, info has the username."""
    registered = await harness.accounts.register("Bob", "long enough pw", address=ADDRESS)

    session = await harness.accounts.login("bob", "long enough pw", address=ADDRESS)
    claims = await JwtVerifier(AuthSettings(token_hmac_secret=SECRET)).verify_connection(session.token)

    assert claims.user == registered.user == session.user
    assert claims.info == {"username": "Bob"}
    assert claims.expire_at == session.expires_at


async def test_login_refunds_attempts_when_password_right(harness: Harness) -> None:
    """Successful logins give their attempt back: more of them than the username limit all pass."""
    await harness.accounts.register("carol", "carol's password", address=ADDRESS)

    for _ in range(6):
        await harness.accounts.login("carol", "carol's password", address=ADDRESS)


async def test_login_raises_too_many_attempts_when_username_bucket_empty(harness: Harness) -> None:
    """After 3 failures the username is limited, even with the right password, with a wait in seconds."""
    await harness.accounts.register("dave", "dave's password", address=ADDRESS)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await harness.accounts.login("DAVE", "guess", address=ADDRESS)
    harness.hasher.verified.clear()

    with pytest.raises(TooManyAttempts) as limited:
        await harness.accounts.login("dave", "dave's password", address="198.51.100.1")

    assert limited.value.retry_after_s >= 1
    assert harness.hasher.verified == []  # refused before any bcrypt work


async def test_register_refuses_password_when_policy_fails(harness: Harness) -> None:
    """Too short, the username again (any case), or over 72 bytes: each is a WeakPassword."""
    for password in ("short", "ERIN-the-user", "é" * 37):
        with pytest.raises(WeakPassword):
            await harness.accounts.register("erin-the-user", password, address=ADDRESS)
    assert await harness.store.users.find("erin-the-user") is None


async def test_register_raises_username_unavailable_when_taken(harness: Harness) -> None:
    """A second registration of a username (in another case) is a conflict."""
    await harness.accounts.register("frank", "password one", address=ADDRESS)

    with pytest.raises(UsernameUnavailable):
        await harness.accounts.register("FRANK", "password two", address=ADDRESS)


async def test_refresh_revokes_family_when_used_token_presented_again(harness: Harness) -> None:
    """Reusing a rotated refresh token fails and kills its successor too."""
    first = await harness.accounts.register("grace", "grace password", address=ADDRESS)
    second = await harness.accounts.refresh(first.refresh_token)

    with pytest.raises(InvalidRefreshToken):
        await harness.accounts.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        await harness.accounts.refresh(second.refresh_token)


async def test_refresh_raises_account_disabled_when_account_disabled(harness: Harness) -> None:
    """A disabled account cannot refresh, and its family is revoked."""
    session = await harness.accounts.register("heidi", "heidi password", address=ADDRESS)
    await harness.store.users.set_disabled(session.user, True)

    with pytest.raises(AccountDisabled):
        await harness.accounts.refresh(session.refresh_token)
    tokens = SqliteRefreshTokenStore(harness.store)
    stored = await tokens.get(refresh_token_hash(session.refresh_token))
    assert stored is not None
    assert stored.revoked is True


async def test_refresh_token_is_stored_only_as_hash(harness: Harness) -> None:
    """The database holds the SHA-256 of a refresh token, never the token."""
    session = await harness.accounts.register("ivan", "ivan password", address=ADDRESS)

    rows = await harness.store.run_with_connection(
        lambda conn: conn.execute("SELECT token_hash FROM refresh_tokens").fetchall()
    )

    assert rows == [(refresh_token_hash(session.refresh_token),)]


async def test_hasher_refuses_work_when_too_many_wait() -> None:
    """With one slot and no waiting room, a second concurrent hash fails at once with AccountsUnavailable."""
    hasher = BcryptHasher(4, max_concurrency=1, max_waiting=0)

    outcomes = await asyncio.gather(
        hasher.hash("one password"), hasher.hash("two password"), return_exceptions=True
    )

    assert isinstance(outcomes[0], str)
    assert isinstance(outcomes[1], AccountsUnavailable)


async def test_hasher_verify_returns_false_when_password_unhashable() -> None:
    """Passwords bcrypt cannot take (over 72 bytes, lone surrogates) never match and never raise."""
    hasher = BcryptHasher(4)
    stored = await hasher.hash("x" * 72)

    assert await hasher.verify("x" * 72, stored) is True
    assert await hasher.verify("x" * 73, stored) is False
    assert await hasher.verify("\ud800", stored) is False
    assert await hasher.verify("x" * 72, "not a hash") is False


async def test_accounts_default_bcrypt_cost_is_12() -> None:
    """Out of the box, accounts hash with bcrypt cost 12."""
    settings = load_settings(env={"WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET, "WIREHUB_STORE_URL": "memory://"})
    store = SqliteStore(":memory:")
    await store.start()
    try:
        accounts = build_accounts(settings, store)
        assert accounts is not None
        password_hash = await accounts.hasher.hash("a default password")
    finally:
        await store.close()

    assert settings.accounts.bcrypt_cost == 12
    assert password_hash.startswith("$2b$12$")


async def test_build_accounts_returns_none_when_disabled_or_no_hmac_secret() -> None:
    """No account service when accounts are off, or when there is no HMAC secret to sign with."""
    store = SqliteStore(":memory:")

    off = build_accounts(
        Settings(auth=AuthSettings(token_hmac_secret=SECRET), accounts=AccountsSettings(enabled=False)), store
    )
    unsigned = build_accounts(Settings(), store)

    assert off is None
    assert unsigned is None
