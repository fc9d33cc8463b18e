"""BcryptHasher: the PasswordHasher, bcrypt in worker threads behind a semaphore.

bcrypt at cost 12 takes a few hundred milliseconds of CPU; run on the event loop it would stall
every connection of the replica. Each hash runs in ``asyncio.to_thread`` (bcrypt releases the
GIL), at most ``max_concurrency`` at once; at most ``max_waiting`` more wait for a turn, and
beyond that a request fails at once with ``AccountsUnavailable`` (503) instead of queueing
without bound.

Passwords bcrypt cannot take (longer than 72 bytes in UTF-8, or lone surrogates that have no
UTF-8 form) never match; checking them still costs one bcrypt run, against a throwaway input,
so their answer takes as long as any other wrong password's.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TypeVar

import bcrypt

from wirehub.auth.base import MAX_PASSWORD_BYTES
from wirehub.auth.errors import AccountsUnavailable
from wirehub.tasks import cancel_and_wait

__all__ = ["MAX_PASSWORD_BYTES", "BcryptHasher", "password_bytes"]

_T = TypeVar("_T")


def password_bytes(password: str) -> bytes | None:
    """The UTF-8 bytes bcrypt hashes, or None if bcrypt cannot take this password."""
    try:
        data = password.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return data if len(data) <= MAX_PASSWORD_BYTES else None


class BcryptHasher:
    """A ``PasswordHasher``; ``start`` computes the dummy hash used for unknown usernames."""

    def __init__(self, cost: int = 12, *, max_concurrency: int = 2, max_waiting: int = 64) -> None:
        if not 4 <= cost <= 31:
            raise ValueError("bcrypt cost must be between 4 and 31")
        self.cost = cost
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_waiting = max_waiting
        self._waiting = 0
        self._dummy: asyncio.Task[str] | None = None

    async def start(self) -> None:
        if self._dummy is None:
            # In the background: a cost-12 hash would add a few hundred ms to every start-up.
            self._dummy = asyncio.get_running_loop().create_task(self.hash(secrets.token_urlsafe(24)))

    async def close(self) -> None:
        task, self._dummy = self._dummy, None
        if task is not None and not task.done():
            await cancel_and_wait(task)

    async def dummy_hash(self) -> str:
        if self._dummy is None or (self._dummy.done() and self._dummy.exception() is not None):
            self._dummy = None
            await self.start()
        assert self._dummy is not None
        # Shielded: a cancelled login must not cancel the hash every later login waits on.
        return await asyncio.shield(self._dummy)

    async def hash(self, password: str) -> str:
        data = password_bytes(password)
        if data is None:
            raise ValueError(f"password must be valid UTF-8 of at most {MAX_PASSWORD_BYTES} bytes")
        salt = bcrypt.gensalt(self.cost)
        hashed = await self._run(lambda: bcrypt.hashpw(data, salt))
        return hashed.decode("ascii")

    async def verify(self, password: str, password_hash: str) -> bool:
        data = password_bytes(password)
        stored = password_hash.encode("ascii", errors="replace")
        if data is None:
            # Same cost as a wrong password: no shortcut that a stopwatch could tell apart.
            await self._run(lambda: _checkpw(b"\x00", stored))
            return False
        return await self._run(lambda: _checkpw(data, stored))

    async def _run(self, job: Callable[[], _T]) -> _T:
        if self._slots.locked() and self._waiting >= self._max_waiting:
            raise AccountsUnavailable("too many password checks in progress")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(job)
        finally:
            self._slots.release()


def _checkpw(password: bytes, password_hash: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, password_hash)
    except ValueError:
        # A malformed stored hash: nothing matches it (stores only keep bcrypt hashes anyway).
        return False
