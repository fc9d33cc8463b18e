"""What the SQLite store and its companions (accounts, refresh tokens) share: a way to run a job on
the store's one connection and worker thread, an interface so that the companions do not import
the store that builds them, and the statement shapes every one of them uses."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["ConnectionRunner", "changed_rows", "fetch_one", "transaction"]

_T = TypeVar("_T")

Params = tuple[object, ...]


class ConnectionRunner(Protocol):
    async def run_with_connection(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``job(connection)`` on the worker thread; driver errors as ``StoreUnavailable``."""
        ...


async def fetch_one(runner: ConnectionRunner, sql: str, params: Params) -> tuple[Any, ...] | None:
    """The first row ``sql`` selects, or None."""
    row: tuple[Any, ...] | None = await runner.run_with_connection(
        lambda conn: conn.execute(sql, params).fetchone()
    )
    return row


async def changed_rows(runner: ConnectionRunner, sql: str, params: Params) -> int:
    """How many rows one ``UPDATE`` (or ``DELETE``) changed."""
    return await runner.run_with_connection(lambda conn: conn.execute(sql, params).rowcount)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """One transaction on the worker thread: committed when the block ends, rolled back if it raises.

    ``BEGIN IMMEDIATE`` takes the write lock up front (a writer that read first could otherwise
    fail to upgrade its lock); readers pass ``"BEGIN"``, for one consistent snapshot.
    """
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
