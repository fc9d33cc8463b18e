"""The store interfaces: MessageStore (channel streams) and UserStore (accounts), and their values.

Concrete stores (``sqlite.py``, the ``mongo`` package) implement both; ``wirehub.app`` picks one by the
URL scheme of ``store.url``. Nothing here imports a driver.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from wirehub.types import Appended, HistoryLimits, HistoryPage, NewPublication, StreamPosition

__all__ = [
    "CHECK_TIMEOUT_S",
    "EPOCH",
    "TOKEN_HASH",
    "UNAVAILABLE",
    "Account",
    "HistoryQuery",
    "MessageStore",
    "RefreshToken",
    "RefreshTokenStore",
    "UserStore",
    "check_new_account",
    "check_token_hash",
    "from_millis",
    "millis",
    "new_account",
    "username_key",
]

CHECK_TIMEOUT_S = 1.0
"""How long a readiness check (``check``) may take before the store counts as not answering."""

UNAVAILABLE = "history store unavailable"
"""The message of a store's ``StoreUnavailable``. It reaches clients (a request error), so it stays
generic; the driver's own error is chained for the server log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryQuery:
    """Which publications of a stream ``MessageStore.read`` returns.

    Those after offset ``since`` (before it with ``reverse``, newest first); ``since`` None starts
    from the edge (the oldest, or with ``reverse`` the newest). At most ``limit`` of them: a negative
    limit reads all there are, 0 only the position.
    """

    since: int | None
    limit: int
    reverse: bool = False


class MessageStore(Protocol):
    """System of record for channels with history.

    Guarantees, per channel:

    * ``append`` assigns offsets consecutive from 1, in the order of ``pubs``: no offset is used
      twice or skipped, also with several appenders (processes, replicas) at once, and they
      survive restarts. One call's publications get top + 1 ... top + n; the only exception is a
      MongoDB batch too large for one write (see ``MongoStore``), whose chunks may interleave with
      other replicas' appends, still in order and still without holes;
    * a stream has an epoch that changes only when the stream is lost and created anew;
    * once ``append`` returns, the publications are durable (nothing acknowledged is lost);
    * a publication whose non-empty ``idempotency_key`` was appended to the same channel within
      the store's idempotency window is not stored again: ``append`` returns the original
      publication (offset, time and data as first stored) in its place.

    Streams exist from their first append: the position of a channel nobody published to is
    offset 0 with no epoch (""), and reading it stores nothing.

    Retention: each publication expires ``limits.ttl_s`` after its append and ``read`` never
    returns an expired one; ``append`` also drops publications beyond the newest ``limits.size``.
    The stream's top offset and epoch outlive its publications until ``expire_streams`` removes
    a stream whose every publication and idempotency key has expired; the channel's next append
    then starts a new stream, with a new epoch and offsets from 1.

    Failures: every driver error leaves the store as ``StoreUnavailable`` (error 100, temporary).

    Readiness: ``check`` answers within about a second whether the store serves now; ``/ready``
    reports 503 with its message while it does not.
    """

    async def start(self) -> None:
        """Open the store. Must not block on an unreachable server (``wait_ready`` waits)."""
        ...

    async def wait_ready(self) -> None:
        """Return once the store can serve (a server store reached and prepared)."""
        ...

    async def check(self) -> None:
        """Answer quickly: ``StoreUnavailable`` naming what does not answer."""
        ...

    async def close(self) -> None: ...

    async def append(
        self, channel: str, pubs: Sequence[NewPublication], *, limits: HistoryLimits
    ) -> Appended:
        """Store ``pubs`` in order; return them with their offsets, and the stream's epoch."""
        ...

    async def read(self, channel: str, query: HistoryQuery) -> HistoryPage:
        """The publications ``query`` asks for.

        ``position`` in the page is the stream top at the time of the read.
        """
        ...

    async def position(self, channel: str) -> StreamPosition:
        """The stream top: last offset and epoch; ``(0, "")`` for a channel without a stream."""
        ...

    async def expire_streams(self, *, limit: int = 500) -> int:
        """Remove up to ``limit`` streams whose publications and idempotency keys all expired.

        Returns how many were removed. The node calls it every ``store.sweep_interval_s``;
        several replicas calling it at once is harmless.
        """
        ...

    async def remove_history(self, channel: str) -> None:
        """Drop every publication of the channel; its top offset and epoch stay as they were.

        Reads return nothing up to the current top, and the next append continues from it, so
        subscribers' positions stay valid. An idempotency key whose window is open still finds
        its original publication.
        """
        ...


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class Account:
    """A stored account. Times are UTC, kept to the millisecond.

    ``password_hash`` is a bcrypt hash, never a password: stores refuse anything else, and it is
    left out of ``repr``.
    """

    id: str
    username: str
    password_hash: str = field(repr=False)
    created_at: datetime
    last_login_at: datetime | None = None
    disabled: bool = False


class UserStore(Protocol):
    """Accounts: unique usernames (compared case-insensitively), bcrypt hashes only.

    The store keeps hashes; hashing and checking passwords (bcrypt, off the event loop) is the
    caller's job. A UserStore shares the lifecycle of the store it belongs to (``store.users``):
    it works between that store's ``start`` and ``close``. Driver errors leave it as
    ``StoreUnavailable``.
    """

    async def create(self, username: str, password_hash: str) -> Account:
        """Store a new account created now; ``UsernameTaken`` if the username is in use.

        ``ValueError`` if ``password_hash`` is not a bcrypt hash or the username is empty.
        """
        ...

    async def find(self, username: str) -> Account | None:
        """The account with this username, compared case-insensitively (``username_key``)."""
        ...

    async def get(self, account_id: str) -> Account | None: ...

    async def record_login(self, account_id: str, at: datetime) -> bool:
        """Set the last-login time; False if there is no such account."""
        ...

    async def set_disabled(self, account_id: str, disabled: bool) -> bool:
        """Disable or re-enable an account; False if there is no such account."""
        ...


_BCRYPT_HASH = re.compile(r"^\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def username_key(username: str) -> str:
    """What usernames are compared by: NFKC-normalised and case-folded (fullwidth ``Alice`` = ``ALICE``)."""
    return unicodedata.normalize("NFKC", username).casefold()


def check_new_account(username: str, password_hash: str) -> None:
    """Raise ``ValueError`` unless the username is non-empty and the hash is a bcrypt hash."""
    if not username_key(username):
        raise ValueError("username must not be empty")
    if not _BCRYPT_HASH.match(password_hash):
        # Do not echo the value: it might be a password passed by mistake.
        raise ValueError("password_hash must be a bcrypt hash ($2b$...), never a password")


def new_account(username: str, password_hash: str, *, now_s: float) -> Account:
    """The account ``UserStore.create`` stores: a random 96-bit id, created at ``now_s`` (Unix seconds).

    ``ValueError`` as ``check_new_account`` says.
    """
    check_new_account(username, password_hash)
    return Account(
        id=secrets.token_hex(12),
        username=username,
        password_hash=password_hash,
        created_at=from_millis(int(now_s * 1000)),
    )


def millis(at: datetime) -> int:
    """A timezone-aware datetime as whole milliseconds since the epoch."""
    if at.tzinfo is None:
        raise ValueError("account times must be timezone-aware datetimes")
    return (at - EPOCH) // timedelta(milliseconds=1)


def from_millis(ms: int) -> datetime:
    """The UTC datetime of ``ms`` milliseconds since the epoch (exact, no float rounding)."""
    return EPOCH + timedelta(milliseconds=ms)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- refresh tokens


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A stored refresh token: its SHA-256 (hex), never the token itself.

    A login starts a *family*; each refresh uses one token up and adds the next one to the same
    family. ``revoked`` is the family's state: revoking a family revokes every token in it,
    also tokens added after the revocation.
    """

    token_hash: str
    family: str
    account_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked: bool = False


class RefreshTokenStore(Protocol):
    """Refresh tokens by hash, grouped in families that can be revoked as a whole.

    Works between the owning store's ``start`` and ``close``, after its own ``start`` (which
    creates its tables or indexes, idempotently). Driver errors leave it as ``StoreUnavailable``.
    """

    async def start(self) -> None: ...

    async def add(self, token: RefreshToken) -> None:
        """Store a new, unused token (``used_at`` and ``revoked`` of ``token`` are ignored).

        A token added to a revoked family is revoked from the start.
        """
        ...

    async def get(self, token_hash: str) -> RefreshToken | None: ...

    async def use(self, token_hash: str, at: datetime) -> bool:
        """Mark the token used at ``at``, if it is not used yet: True for exactly one caller.

        Does not look at revocation or expiry; the caller checks ``get`` for those.
        """
        ...

    async def revoke_family(self, family: str, at: datetime) -> None:
        """Revoke every token of the family, now and to come. Idempotent.

        A family exists from its first ``add``; revoking one that does not is a no-op.
        """
        ...

    async def purge(self, before: datetime) -> int:
        """Delete tokens that expired before ``before`` (and families left without tokens).

        Returns how many tokens were deleted.
        """
        ...


TOKEN_HASH = re.compile(r"^[0-9a-f]{64}$")


def check_token_hash(token_hash: str) -> None:
    """Raise ``ValueError`` unless ``token_hash`` is a SHA-256 in lower-case hex (never a token)."""
    if not TOKEN_HASH.match(token_hash):
        raise ValueError("token_hash must be a SHA-256 hex digest, never the token itself")
