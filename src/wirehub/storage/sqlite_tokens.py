"""SqliteRefreshTokenStore: the RefreshTokenStore in the SqliteStore's database.

Two tables on the SqliteStore's connection and worker thread: ``refresh_tokens`` (one row per
token, keyed by its SHA-256) and ``refresh_families`` (one row per login, carrying the
revocation). Every method is one statement or one transaction on the single worker, so
``use`` is a compare-and-set: ``UPDATE ... WHERE used_at_ms IS NULL`` changes one row once.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from wirehub.storage.base import RefreshToken, check_token_hash, from_millis, millis
from wirehub.storage.sqlite_worker import ConnectionRunner, changed_rows, fetch_one, transaction

__all__ = ["SqliteRefreshTokenStore"]

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS refresh_families (
        family TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        account_id TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        used_at_ms INTEGER
    )
    """,
    "CREATE INDEX IF NOT EXISTS refresh_tokens_expiry ON refresh_tokens (expires_at_ms)",
    "CREATE INDEX IF NOT EXISTS refresh_families_expiry ON refresh_families (expires_at_ms)",
)


def _token(row: tuple[Any, ...]) -> RefreshToken:
    token_hash, family, account_id, created_ms, expires_ms, used_ms, revoked_ms = row
    return RefreshToken(
        token_hash=token_hash,
        family=family,
        account_id=account_id,
        created_at=from_millis(created_ms),
        expires_at=from_millis(expires_ms),
        used_at=None if used_ms is None else from_millis(used_ms),
        revoked=revoked_ms is not None,
    )


class SqliteRefreshTokenStore:
    """RefreshTokenStore on SQLite; see the module docstring."""

    def __init__(self, store: ConnectionRunner) -> None:
        self._store = store

    async def start(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            for statement in _SCHEMA:
                conn.execute(statement)

        await self._store.run_with_connection(create)

    async def add(self, token: RefreshToken) -> None:
        check_token_hash(token.token_hash)
        created, expires = millis(token.created_at), millis(token.expires_at)

        def insert(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO refresh_families (family, account_id, expires_at_ms) VALUES (?, ?, ?)"
                    " ON CONFLICT (family) DO UPDATE SET"
                    " expires_at_ms = MAX(expires_at_ms, excluded.expires_at_ms)",
                    (token.family, token.account_id, expires),
                )
                conn.execute(
                    "INSERT INTO refresh_tokens"
                    " (token_hash, family, account_id, created_at_ms, expires_at_ms, used_at_ms)"
                    " VALUES (?, ?, ?, ?, ?, NULL)",
                    (token.token_hash, token.family, token.account_id, created, expires),
                )

        await self._store.run_with_connection(insert)

    async def get(self, token_hash: str) -> RefreshToken | None:
        row = await fetch_one(
            self._store,
            "SELECT t.token_hash, t.family, t.account_id, t.created_at_ms, t.expires_at_ms,"
            " t.used_at_ms, f.revoked_at_ms"
            " FROM refresh_tokens t LEFT JOIN refresh_families f ON f.family = t.family"
            " WHERE t.token_hash = ?",
            (token_hash,),
        )
        return None if row is None else _token(row)

    async def use(self, token_hash: str, at: datetime) -> bool:
        changed = await changed_rows(
            self._store,
            "UPDATE refresh_tokens SET used_at_ms = ? WHERE token_hash = ? AND used_at_ms IS NULL",
            (millis(at), token_hash),
        )
        return changed == 1

    async def revoke_family(self, family: str, at: datetime) -> None:
        await changed_rows(
            self._store,
            "UPDATE refresh_families SET revoked_at_ms = ? WHERE family = ? AND revoked_at_ms IS NULL",
            (millis(at), family),
        )

    async def purge(self, before: datetime) -> int:
        ms = millis(before)

        def delete(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                deleted = conn.execute("DELETE FROM refresh_tokens WHERE expires_at_ms < ?", (ms,)).rowcount
                # A family outlives none of its tokens: its expiry is the latest of theirs.
                conn.execute("DELETE FROM refresh_families WHERE expires_at_ms < ?", (ms,))
            return int(deleted)

        return await self._store.run_with_connection(delete)
