"""SqliteUserStore: the UserStore in the ``accounts`` table of the SqliteStore's database.

It runs on the SqliteStore's connection and worker thread (``store.users``), so accounts and
history share one file and one lifecycle. Usernames are unique by ``username_key`` (a UNIQUE
column); the store keeps bcrypt hashes only and never sees a password.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wirehub.errors import UsernameTaken
from wirehub.storage.base import Account, from_millis, millis, new_account, username_key
from wirehub.storage.sqlite_worker import ConnectionRunner, changed_rows, fetch_one

__all__ = ["ACCOUNTS_SCHEMA", "SqliteUserStore"]

ACCOUNTS_SCHEMA = """
    CREATE TABLE IF NOT EXISTS accounts (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        last_login_ms INTEGER,
        disabled INTEGER NOT NULL DEFAULT 0
    )
"""

_COLUMNS = "id, username, password_hash, created_at_ms, last_login_ms, disabled"
_BY_KEY = f"SELECT {_COLUMNS} FROM accounts WHERE username_key = ?"  # noqa: S608 - constant column list
_BY_ID = f"SELECT {_COLUMNS} FROM accounts WHERE id = ?"  # noqa: S608 - constant column list


def _account(row: tuple[Any, ...]) -> Account:
    account_id, username, password_hash, created_at_ms, last_login_ms, disabled = row
    return Account(
        id=account_id,
        username=username,
        password_hash=password_hash,
        created_at=from_millis(created_at_ms),
        last_login_at=None if last_login_ms is None else from_millis(last_login_ms),
        disabled=bool(disabled),
    )


class SqliteUserStore:
    """UserStore on the ``accounts`` table; see the module docstring."""

    def __init__(self, store: ConnectionRunner, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(self, username: str, password_hash: str) -> Account:
        account = new_account(username, password_hash, now_s=self._clock())

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO accounts ({_COLUMNS}, username_key) VALUES (?, ?, ?, ?, NULL, 0, ?)",  # noqa: S608 - constant column list
                    (account.id, username, password_hash, millis(account.created_at), username_key(username)),
                )
            except sqlite3.IntegrityError as exc:
                # username_key is the constraint that fails: ids are 96 random bits.
                raise UsernameTaken(username) from exc

        await self._store.run_with_connection(insert)
        return account

    async def find(self, username: str) -> Account | None:
        return await self._one(_BY_KEY, username_key(username))

    async def get(self, account_id: str) -> Account | None:
        return await self._one(_BY_ID, account_id)

    async def record_login(self, account_id: str, at: datetime) -> bool:
        changed = await changed_rows(
            self._store, "UPDATE accounts SET last_login_ms = ? WHERE id = ?", (millis(at), account_id)
        )
        return bool(changed)

    async def set_disabled(self, account_id: str, disabled: bool) -> bool:
        changed = await changed_rows(
            self._store, "UPDATE accounts SET disabled = ? WHERE id = ?", (int(disabled), account_id)
        )
        return bool(changed)

    async def _one(self, query: str, value: str) -> Account | None:
        row = await fetch_one(self._store, query, (value,))
        return None if row is None else _account(row)
