"""Accounts: register, log in, refresh and log out; what the ``/auth/*`` endpoints run.

Pure logic over interfaces (UserStore, RefreshTokenStore, PasswordHasher, TokenIssuer,
RateLimiter): no HTTP, no driver. The rules it owns:

* **No user enumeration.** An unknown username and a wrong password get the same
  ``InvalidCredentials``, after the same work: a lookup and one bcrypt check (against the
  hasher's dummy hash when there is no account). Rate limits apply to both alike.
* **Limits.** Every login and registration takes an attempt from its client address's bucket
  and every login one from its username's bucket, before any bcrypt work; a successful login
  gives both back, so only failures add up. An exhausted bucket answers ``TooManyAttempts``
  with the seconds to wait.
* **Refresh tokens** are 256 random bits, stored as SHA-256 only, single use: each refresh uses
  one up and returns the next of the same family. Presenting a used token again means it was
  copied: the whole family is revoked, so both the thief's and the owner's next refresh fail and
  the owner logs in again. Logout revokes the family too.
* **Tokens** carry the account id as ``sub`` (stable, unlike the username, which compares
  case-insensitively) and ``{"username": ...}`` as connection info.

Passwords and tokens are never logged and never appear in error messages. This module imports
interfaces only (no adapter, no driver), so the server layer's ``accounts_http`` may use it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from wirehub.auth.base import MAX_PASSWORD_BYTES, IssuedTokens, PasswordHasher, TokenIssuer
from wirehub.auth.errors import (
    AccountDisabled,
    AccountsUnavailable,
    BearerTokenExpired,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidUsername,
    TooManyAttempts,
    UsernameUnavailable,
    WeakPassword,
)
from wirehub.broker.base import RateLimiter
from wirehub.config import AccountsSettings
from wirehub.errors import BrokerUnavailable, StoreUnavailable, UsernameTaken
from wirehub.storage.base import (
    Account,
    RefreshToken,
    RefreshTokenStore,
    UserStore,
    from_millis,
    username_key,
)
from wirehub.types import JSON

__all__ = ["Accounts", "refresh_token_hash"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

REFRESH_TOKEN_MAX_LENGTH = 128
PURGE_INTERVAL_S = 3600.0


def refresh_token_hash(token: str) -> str:
    """What the store keeps of a refresh token: 256 random bits need no slow hash."""
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


def _limit_key(kind: str, value: str) -> str:
    # Hashed: keys stay short and no username lands in Redis in the clear.
    return f"{kind}:" + hashlib.sha256(value.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]


@dataclass(eq=False)
class Accounts:
    settings: AccountsSettings
    _: KW_ONLY
    users: UserStore
    refresh_tokens: RefreshTokenStore
    hasher: PasswordHasher
    issuer: TokenIssuer
    limiter: RateLimiter
    clock: Callable[[], float] = time.time
    _next_purge: float = field(default=0.0, init=False)
    _tokens_ready: bool = field(default=False, init=False)

    async def start(self) -> None:
        """Start the hasher (its dummy hash), the limiter and (if reachable now) the token store.

        Never waits on an unreachable store: the token store is then prepared on first use.
        """
        await self.hasher.start()
        await self.limiter.start()
        try:
            await self._tokens()
        except AccountsUnavailable:
            logger.warning("refresh token store not ready; preparing it on first use")

    async def close(self) -> None:
        await self.hasher.close()
        await self.limiter.close()

    # ------------------------------------------------------------------ policy

    def check_username(self, username: str) -> None:
        """Raise ``InvalidUsername`` unless the username is fit for a new account."""
        if not 1 <= len(username) <= self.settings.username_max_length:
            raise InvalidUsername(f"username must be 1 to {self.settings.username_max_length} characters")
        if not username.isprintable() or any(ch.isspace() for ch in username):
            raise InvalidUsername("username must be printable characters without spaces")
        if any(unicodedata.category(ch) == "Cs" for ch in username):
            raise InvalidUsername("username must be valid Unicode")

    def check_password(self, username: str, password: str) -> None:
        """Raise ``WeakPassword`` unless the password meets the policy (never echoing it)."""
        if len(password) < self.settings.password_min_length:
            raise WeakPassword(f"password must be at least {self.settings.password_min_length} characters")
        try:
            size = len(password.encode("utf-8"))
        except UnicodeEncodeError:
            raise WeakPassword("password must be valid Unicode") from None
        if size > MAX_PASSWORD_BYTES:
            raise WeakPassword(f"password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
        if username_key(password) == username_key(username):
            raise WeakPassword("password must not be the username")

    # ------------------------------------------------------------------ endpoints

    async def register(self, username: str, password: str, *, address: str) -> IssuedTokens:
        """Create an account and log it in; ``UsernameUnavailable`` if the name is taken."""
        self.check_username(username)
        self.check_password(username, password)
        await self._take(_limit_key("address", address), self._address_limit())
        password_hash = await self.hasher.hash(password)
        try:
            account = await _store(self.users.create(username, password_hash))
        except UsernameTaken:
            raise UsernameUnavailable() from None
        logger.info("account registered", extra={"user": account.id, "username": username, "remote": address})
        return await self._issue(account)

    async def login(self, username: str, password: str, *, address: str) -> IssuedTokens:
        """Check the password; ``InvalidCredentials`` for an unknown user and a wrong password alike."""
        address_key = _limit_key("address", address)
        user_key = _limit_key("user", username_key(username))
        await self._take(address_key, self._address_limit())
        try:
            await self._take(user_key, self._username_limit())
        except TooManyAttempts:
            await self._give_back(address_key, self._address_limit())
            raise
        account = await _store(self.users.find(username))
        # Always one bcrypt check: an unknown username costs what a wrong password costs.
        password_hash = account.password_hash if account is not None else await self.hasher.dummy_hash()
        matches = await self.hasher.verify(password, password_hash)
        if account is None or not matches:
            reason = "unknown username" if account is None else "wrong password"
            logger.info("login failed", extra={"username": username, "remote": address, "reason": reason})
            raise InvalidCredentials()
        await self._give_back(user_key, self._username_limit())
        await self._give_back(address_key, self._address_limit())
        if account.disabled:
            raise AccountDisabled()
        await _store(self.users.record_login(account.id, self._now()))
        logger.info("login", extra={"user": account.id, "remote": address})
        return await self._issue(account)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Use the refresh token up and return a new session of the same family.

        A token presented a second time revokes its whole family (``InvalidRefreshToken``).
        """
        token_hash = self._checked_hash(refresh_token)
        tokens = await self._tokens()
        stored = await _store(tokens.get(token_hash))
        if stored is None or stored.revoked:
            raise InvalidRefreshToken()
        now = self._now()
        if stored.used_at is not None or not await _store(tokens.use(token_hash, now)):
            # Used before: someone holds a copy. Nobody can tell the thief from the owner, so
            # the family ends for both, and the owner logs in again.
            await _store(tokens.revoke_family(stored.family, now))
            logger.warning(
                "refresh token reused; family revoked",
                extra={"user": stored.account_id, "family": stored.family},
            )
            raise InvalidRefreshToken()
        if stored.expires_at <= now:
            raise InvalidRefreshToken()
        account = await _store(self.users.get(stored.account_id))
        if account is None or account.disabled:
            await _store(tokens.revoke_family(stored.family, now))
            if account is not None:
                raise AccountDisabled()
            raise InvalidRefreshToken()
        return await self._issue(account, family=stored.family)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the token's family; unknown tokens are ignored (nothing to tell a caller)."""
        token_hash = self._checked_hash(refresh_token)
        tokens = await self._tokens()
        stored = await _store(tokens.get(token_hash))
        if stored is not None:
            await _store(tokens.revoke_family(stored.family, self._now()))
            logger.info("logout", extra={"user": stored.account_id})

    def subscription_token(
        self, user: str, channel: str, *, data: JSON, not_after: int | None
    ) -> tuple[str, int]:
        """Sign a subscription token, expiring no later than ``not_after`` (the connection's expiry)."""
        now = int(self.clock())
        expires_at = now + self.settings.token_ttl_s
        if not_after is not None:
            if not_after <= now:
                raise BearerTokenExpired()
            expires_at = min(expires_at, not_after)
        ttl = max(1, expires_at - now)
        return self.issuer.subscription_token(user, channel, ttl_s=ttl, data=data), now + ttl

    # ------------------------------------------------------------------ internals

    async def _tokens(self) -> RefreshTokenStore:
        if not self._tokens_ready:
            await _store(self.refresh_tokens.start())
            self._tokens_ready = True
        return self.refresh_tokens

    def _now(self) -> datetime:
        return from_millis(int(self.clock() * 1000))

    @staticmethod
    def _checked_hash(refresh_token: str) -> str:
        if not 0 < len(refresh_token) <= REFRESH_TOKEN_MAX_LENGTH:
            raise InvalidRefreshToken()
        return refresh_token_hash(refresh_token)

    def _address_limit(self) -> tuple[int, float]:
        return self.settings.login_attempts_per_address, self.settings.login_address_window_s

    def _username_limit(self) -> tuple[int, float]:
        return self.settings.login_attempts_per_username, self.settings.login_username_window_s

    async def _take(self, key: str, limit: tuple[int, float]) -> None:
        attempts, window_s = limit
        if attempts <= 0:
            return
        try:
            wait = await self.limiter.hit(key, limit=attempts, window_s=window_s)
        except BrokerUnavailable:
            # Fail closed: without the shared counts, brute force would be unlimited.
            raise AccountsUnavailable("rate limiter unavailable") from None
        if wait > 0:
            raise TooManyAttempts(math.ceil(wait))

    async def _give_back(self, key: str, limit: tuple[int, float]) -> None:
        attempts, window_s = limit
        if attempts <= 0:
            return
        try:
            await self.limiter.refund(key, limit=attempts, window_s=window_s)
        except BrokerUnavailable:
            logger.warning("rate limiter unavailable; attempt not given back")

    async def _issue(self, account: Account, *, family: str | None = None) -> IssuedTokens:
        now_s = self.clock()
        now = from_millis(int(now_s * 1000))
        refresh_token = secrets.token_urlsafe(32)
        refresh_expires = now + timedelta(seconds=self.settings.refresh_token_ttl_s)
        tokens = await self._tokens()
        await _store(
            tokens.add(
                RefreshToken(
                    token_hash=refresh_token_hash(refresh_token),
                    family=family or secrets.token_hex(16),
                    account_id=account.id,
                    created_at=now,
                    expires_at=refresh_expires,
                )
            )
        )
        await self._maybe_purge(now_s, now)
        ttl = self.settings.token_ttl_s
        token = self.issuer.connection_token(account.id, ttl_s=ttl, info={"username": account.username})
        return IssuedTokens(
            user=account.id,
            username=account.username,
            token=token,
            expires_at=int(now_s) + ttl,
            refresh_token=refresh_token,
            refresh_expires_at=int(refresh_expires.timestamp()),
        )

    async def _maybe_purge(self, now_s: float, now: datetime) -> None:
        """Delete expired refresh tokens now and then (each replica at most hourly)."""
        if now_s < self._next_purge:
            return
        self._next_purge = now_s + PURGE_INTERVAL_S
        try:
            deleted = await self.refresh_tokens.purge(now)
        except StoreUnavailable:
            logger.warning("refresh token purge failed")
            return
        if deleted:
            logger.info("expired refresh tokens purged", extra={"count": deleted})


async def _store(call: Awaitable[_T]) -> _T:
    """Await a store call; an unreachable store is a temporary failure of the request (503)."""
    try:
        return await call
    except StoreUnavailable:
        raise AccountsUnavailable("account store unavailable") from None
