"""SqliteUserStore: the UserStore in the ``accounts`` table of the SqliteStore's database.

It runs on the SqliteStore's connection and worker thread (``store.users``), so accounts and
history share one file and one lifecycle. Usernames are unique by ``username_key`` (a UNIQUE
column); the store keeps bcrypt hashes only and never sees a password.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wirehub.errors import UsernameTaken
from wirehub.storage.base import Account, check_new_account, from_millis, millis, username_key
from wirehub.storage.sqlite_worker import ConnectionRunner

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


def new_account_id() -> str:
    return secrets.token_hex(12)


class SqliteUserStore:
    """UserStore on the ``accounts`` table; see the module docstring."""

    def __init__(self, store: ConnectionRunner, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(self, username: str, password_hash: str) -> Account:
        check_new_account(username, password_hash)
        account = Account(
            id=new_account_id(),
            username=username,
            password_hash=password_hash,
            created_at=from_millis(int(self._clock() * 1000)),
        )

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
        key = username_key(username)
        row = await self._store.run_with_connection(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM accounts WHERE username_key = ?",  # noqa: S608 - constant column list
                (key,),
            ).fetchone()
        )
        return None if row is None else _account(row)

    async def get(self, account_id: str) -> Account | None:
        row = await self._store.run_with_connection(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM accounts WHERE id = ?",  # noqa: S608 - constant column list
                (account_id,),
            ).fetchone()
        )
        return None if row is None else _account(row)

    async def record_login(self, account_id: str, at: datetime) -> bool:
        ms = millis(at)
        changed = await self._store.run_with_connection(
            lambda conn: (
                conn.execute("UPDATE accounts SET last_login_ms = ? WHERE id = ?", (ms, account_id)).rowcount
            )
        )
        return bool(changed)

    async def set_disabled(self, account_id: str, disabled: bool) -> bool:
        changed = await self._store.run_with_connection(
            lambda conn: (
                conn.execute(
                    "UPDATE accounts SET disabled = ? WHERE id = ?", (int(disabled), account_id)
                ).rowcount
            )
        )
        return bool(changed)
