"""The auth interfaces: the token verifier and the claims it yields, the password hasher, the
token issuer and the accounts service the ``/auth/*`` endpoints call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wirehub.config import AccountsSettings
from wirehub.types import JSON

__all__ = [
    "MAX_PASSWORD_BYTES",
    "AccountService",
    "ConnectionClaims",
    "IssuedTokens",
    "PasswordHasher",
    "ServerSubscription",
    "SubscriptionClaims",
    "TokenIssuer",
    "TokenVerifier",
]


@dataclass(frozen=True, slots=True)
class ServerSubscription:
    """A subscription the server makes at connect, from the token's ``channels`` or ``subs``."""

    channel: str
    info: JSON = None
    data: JSON = None


@dataclass(frozen=True, slots=True)
class ConnectionClaims:
    user: str
    expire_at: int | None = None
    """Unix seconds after which the connection must be refreshed; None never expires."""
    info: JSON = None
    meta: JSON = None
    subs: tuple[ServerSubscription, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionClaims:
    user: str
    channel: str
    client: str = ""
    expire_at: int | None = None
    info: JSON = None
    data: JSON = None
    override: Mapping[str, bool] = field(default_factory=dict)


class TokenVerifier(Protocol):
    """Checks signed tokens.

    Raises ``TokenExpired`` when expired or not yet valid, ``KeysUnavailable`` when the keys to
    check the token with could not be fetched (a temporary failure), ``TokenError`` otherwise.
    Verifying may await a key fetch but never blocks the event loop. ``start`` begins whatever
    background key refreshing the verifier does; ``close`` stops it.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def verify_connection(self, token: str) -> ConnectionClaims: ...

    async def verify_subscription(self, token: str) -> SubscriptionClaims: ...


MAX_PASSWORD_BYTES = 72
"""bcrypt reads at most 72 bytes: longer passwords are refused at registration, never truncated."""


class PasswordHasher(Protocol):
    """Hashes and checks passwords, off the event loop (bcrypt in a bounded thread pool).

    ``verify`` takes as long for a password that cannot match (no such account: checked against
    ``dummy_hash``) as for a wrong one, and never raises for an odd password (too long, NUL
    bytes): such a password simply does not match. ``AccountsUnavailable`` when too many
    hashes wait already. ``start`` begins computing ``dummy_hash`` in the background (it never
    delays start-up); ``close`` stops that.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def dummy_hash(self) -> str:
        """A hash of a random password at the configured cost, for accounts that do not exist."""
        ...

    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, password_hash: str) -> bool: ...


class TokenIssuer(Protocol):
    """Signs the tokens the account endpoints hand out; the gateway's verifier accepts them."""

    def connection_token(self, user: str, *, ttl_s: int, info: JSON = None) -> str: ...

    def subscription_token(self, user: str, channel: str, *, ttl_s: int, data: JSON = None) -> str: ...


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a successful register, login or refresh hands back: a connection token and the
    refresh token that gets the next one."""

    user: str
    username: str
    token: str
    expires_at: int
    refresh_token: str
    refresh_expires_at: int


class AccountService(Protocol):
    """Register, log in, refresh and log out: what the ``/auth/*`` endpoints run
    (``wirehub.auth.accounts.Accounts``; the server layer knows only this interface).

    Failures are ``AccountError`` subclasses, each with its HTTP status and code.
    """

    @property
    def settings(self) -> AccountsSettings: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def register(self, username: str, password: str, *, address: str) -> IssuedTokens: ...

    async def login(self, username: str, password: str, *, address: str) -> IssuedTokens: ...

    async def refresh(self, refresh_token: str) -> IssuedTokens: ...

    async def logout(self, refresh_token: str) -> None: ...

    def subscription_token(
        self, user: str, channel: str, *, data: JSON, not_after: int | None
    ) -> tuple[str, int]:
        """A subscription token and its expiry (Unix seconds), never later than ``not_after``."""
        ...
