"""SqliteStore: the MessageStore on one SQLite file (or ``:memory:``), via the stdlib ``sqlite3``.

It owns three tables and nothing else:

* ``streams``: one row per channel that was published to, with its top offset, epoch, ``floor``
  (offsets at or below it are beyond ``history_size``) and ``expires_at``, when its last
  publication (or idempotency key) expires. Only an append creates a row; reads of a channel
  without one answer offset 0 and no epoch. ``expire_streams`` deletes rows past ``expires_at``
  with their publications: the channel's next publication starts a new stream (a new epoch), so
  clients do not trust offsets of the old one;
* ``publications``: the retained publications, keyed by (channel, offset). A publication with an
  idempotency key stays on disk until its idempotency window ends (``hold_until``) even when
  retention already hides it from reads, so that a retry still finds the original;
* ``accounts``: the UserStore (``sqlite_users.py``), on the same connection and thread.

Every sqlite call runs on one dedicated worker thread with one connection: the event loop never
blocks on disk I/O, and the single thread serialises this process's appends, so offsets are
assigned without holes or duplicates. ``BEGIN IMMEDIATE`` keeps that true with other processes
on the same file too. Driver errors leave this module as ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from wirehub.config import StoreSettings
from wirehub.errors import StoreUnavailable
from wirehub.storage.base import CHECK_TIMEOUT_S, UNAVAILABLE, HistoryQuery
from wirehub.storage.batch import AppendBatch
from wirehub.storage.encoding import decode_publication, dumps, encode_info
from wirehub.storage.sqlite_users import ACCOUNTS_SCHEMA, SqliteUserStore
from wirehub.storage.sqlite_worker import transaction
from wirehub.types import (
    Appended,
    HistoryLimits,
    HistoryPage,
    NewPublication,
    Publication,
    StreamPosition,
)

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

MEMORY = ":memory:"
DEFAULT_IDEMPOTENCY_WINDOW_S = 300.0
BUSY_TIMEOUT_S = 5.0
"""How long a connection waits for other processes' locks before it fails."""

# "offset" is an SQL keyword (LIMIT ... OFFSET), hence quoted everywhere.
_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS streams (
        channel TEXT PRIMARY KEY,
        top INTEGER NOT NULL,
        epoch TEXT NOT NULL,
        floor INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID
    """,
    # WITHOUT ROWID: the rows are clustered by (channel, offset), which is the order every
    # read and trim walks them in.
    """
    CREATE TABLE IF NOT EXISTS publications (
        channel TEXT NOT NULL,
        "offset" INTEGER NOT NULL,
        data TEXT NOT NULL,
        info TEXT,
        tags TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        idem TEXT,
        hold_until REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (channel, "offset")
    ) WITHOUT ROWID
    """,
    ACCOUNTS_SCHEMA,
)

# Columns added after the first release of the schema: (table, column, definition). A database
# created before them gets them on open; the defaults are what the old rows meant.
_ADDED_COLUMNS = (
    ("streams", "floor", "INTEGER NOT NULL DEFAULT 0"),
    ("publications", "idem", "TEXT"),
    ("publications", "hold_until", "REAL NOT NULL DEFAULT 0"),
    ("streams", "expires_at", "REAL NOT NULL DEFAULT 0"),
)

# When ``streams.expires_at`` is added to an older database: each stream expires with its last
# publication; one that holds none (made by a read, before reads stopped making them) at once.
_BACKFILL_STREAM_EXPIRY = (
    "UPDATE streams SET expires_at = COALESCE((SELECT MAX(MAX(p.expires_at), MAX(p.hold_until))"
    " FROM publications p WHERE p.channel = streams.channel), 0)"
)

EXPIRE_BATCH = 500
"""Streams deleted per ``expire_streams`` call, at most (one statement's parameters)."""

# Created after the columns above exist (an old database only has them once migrated).
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS publications_idem ON publications (channel, idem) WHERE idem IS NOT NULL",
)

_INSERT = (
    'INSERT INTO publications (channel, "offset", data, info, tags, time_ms, expires_at, idem, hold_until)'
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The newest publication appended under an idempotency key whose window is still open.
_FIND_IDEM = (
    'SELECT "offset", data, info, tags, time_ms FROM publications'
    ' WHERE channel = ? AND idem = ? AND hold_until > ? ORDER BY "offset" DESC LIMIT 1'
)

# One literal query per (reverse, since given) case: no SQL is built from strings at runtime.
# Parameters: channel, now, floor[, since], limit.
_SELECT = (
    'SELECT "offset", data, info, tags, time_ms FROM publications'
    ' WHERE channel = ? AND expires_at > ? AND "offset" > ?'
)
_READ_QUERIES: dict[tuple[bool, bool], str] = {
    (False, False): _SELECT + ' ORDER BY "offset" ASC LIMIT ?',
    (False, True): _SELECT + ' AND "offset" > ? ORDER BY "offset" ASC LIMIT ?',
    (True, False): _SELECT + ' ORDER BY "offset" DESC LIMIT ?',
    (True, True): _SELECT + ' AND "offset" < ? ORDER BY "offset" DESC LIMIT ?',
}
_POSITION_ONLY = HistoryQuery(since=None, limit=0)
"""A read for the stream top alone: ``position``."""


def _new_epoch() -> str:
    return secrets.token_hex(4)


def _decode_row(row: tuple[Any, ...]) -> Publication:
    offset, data, info, tags, time_ms = row
    return decode_publication(offset=offset, data=data, info=info, tags=tags, time_ms=time_ms)


def _path_from_url(url: str) -> str:
    if url == "memory://":
        return MEMORY
    prefix = "sqlite:///"
    if url.startswith(prefix) and len(url) > len(prefix):
        # "sqlite:///rel.db" -> "rel.db"; "sqlite:////abs.db" -> "/abs.db".
        return url[len(prefix) :]
    raise ValueError(f"not a sqlite store URL (want sqlite:///PATH or memory://): {url!r}")


class SqliteStore:
    """MessageStore (and, as ``users``, UserStore) on SQLite.

    ``clock`` gives the time in seconds (injectable for tests); ``idempotency_window_s`` is how
    long an idempotency key is remembered.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        idempotency_window_s: float = DEFAULT_IDEMPOTENCY_WINDOW_S,
    ) -> None:
        self._path = path
        self._clock = clock
        self._idempotency_window_s = idempotency_window_s
        self._executor: ThreadPoolExecutor | None = None
        # Only ever touched on the worker thread.
        self._conn: sqlite3.Connection | None = None
        self.users = SqliteUserStore(self, clock=clock)

    @classmethod
    def from_settings(cls, settings: StoreSettings, *, clock: Callable[[], float] = time.time) -> SqliteStore:
        """The store at ``store.url``: ``sqlite:///rel.db``, ``sqlite:////abs/path.db`` or ``memory://``."""
        return cls(
            _path_from_url(settings.url), clock=clock, idempotency_window_s=settings.idempotency_window_s
        )

    @property
    def path(self) -> str:
        return self._path

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wirehub-sqlite")
        try:
            await self._run(self._open)
        except BaseException:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown)
            raise

    async def wait_ready(self) -> None:
        """Ready once started: the file is opened by ``start``."""

    async def check(self) -> None:
        """A trivial query on the worker thread, within CHECK_TIMEOUT_S (queued behind other jobs)."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._run(lambda: self._connection().execute("SELECT 1").fetchone())
        except TimeoutError:
            raise StoreUnavailable(f"sqlite does not answer within {CHECK_TIMEOUT_S:g} s") from None

    async def close(self) -> None:
        executor = self._executor
        if executor is None:
            return
        # New calls fail fast from here on; those already queued run before the close job,
        # since the single worker takes jobs in order.
        self._executor = None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._close_conn)
        finally:
            # The worker is idle by now, but joining it is still a blocking call.
            await asyncio.to_thread(executor.shutdown)

    # ------------------------------------------------------------------ MessageStore

    async def append(
        self, channel: str, pubs: Sequence[NewPublication], *, limits: HistoryLimits
    ) -> Appended:
        if not pubs:
            return Appended([], (await self.position(channel)).epoch)
        batch = list(pubs)
        return await self._run(lambda: self._append(channel, batch, limits))

    async def read(self, channel: str, query: HistoryQuery) -> HistoryPage:
        return await self._run(lambda: self._read(channel, query))

    async def position(self, channel: str) -> StreamPosition:
        page = await self._run(lambda: self._read(channel, _POSITION_ONLY))
        return page.position

    async def remove_history(self, channel: str) -> None:
        await self._run(lambda: self._remove_history(channel))

    async def expire_streams(self, *, limit: int = EXPIRE_BATCH) -> int:
        return await self._run(lambda: self._expire_streams(limit))

    # ------------------------------------------------------------------ event loop side

    async def run_with_connection(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``job(connection)`` on the worker thread (for the store's companions: accounts)."""
        return await self._run(lambda: job(self._connection()))

    async def _run(self, job: Callable[[], _T]) -> _T:
        executor = self._executor
        if executor is None:
            # Also what a request racing shutdown sees: a temporary error, not a crash.
            raise StoreUnavailable(UNAVAILABLE)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, job)
        except sqlite3.Error as exc:
            raise StoreUnavailable(UNAVAILABLE) from exc

    # ------------------------------------------------------------------ worker thread side

    def _open(self) -> None:
        # isolation_level=None: the module issues BEGIN/COMMIT itself, so it decides which
        # transactions take the write lock up front.
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            # Wait for other processes' write locks instead of failing at once.
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if self._path != MEMORY:
                # WAL: readers do not block the writer and vice versa.
                _enter_wal(conn)
            # FULL: an acknowledged append survives a power loss, not only a process crash.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            for table, column, definition in _ADDED_COLUMNS:
                # Table and column names are the literals above, never input.
                columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                    if (table, column) == ("streams", "expires_at"):
                        conn.execute(_BACKFILL_STREAM_EXPIRY)
            for statement in _INDEXES:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("connection is closed")
        return self._conn

    def _append(self, channel: str, pubs: list[NewPublication], limits: HistoryLimits) -> Appended:
        conn = self._connection()
        now = self._clock()
        now_ms = int(now * 1000)
        expires_at = now + limits.ttl_s
        hold_until = now + self._idempotency_window_s
        # Encode before taking the write lock; a non-JSON payload raises TypeError here,
        # which is the caller's bug and not a store failure.
        encoded = [
            (
                dumps(p.data),
                None if p.info is None else encode_info(p.info),
                dumps(dict(p.tags)),
                p.time_ms or now_ms,
            )
            for p in pubs
        ]
        batch = AppendBatch(pubs)
        with transaction(conn):
            row = conn.execute(
                "SELECT top, floor, epoch FROM streams WHERE channel = ?", (channel,)
            ).fetchone()
            if row is None:
                top, floor, epoch = 0, 0, _new_epoch()
                conn.execute("INSERT INTO streams (channel, top, epoch) VALUES (?, 0, ?)", (channel, epoch))
            else:
                top, floor, epoch = int(row[0]), int(row[1]), str(row[2])
            # Inside the write transaction: no other appender can slip in between the lookup
            # and the insert, so a key is stored at most once per window.
            rows = []
            offset = top
            for i in batch.todo:
                p, (data, info, tags, time_ms) = pubs[i], encoded[i]
                key = p.idempotency_key
                if key:
                    found = conn.execute(_FIND_IDEM, (channel, key, now)).fetchone()
                    if found is not None:
                        batch.results[i] = _decode_row(found)
                        continue
                offset += 1
                batch.results[i] = Publication(
                    data=p.data, offset=offset, info=p.info, tags=dict(p.tags), time_ms=time_ms
                )
                rows.append(
                    (
                        channel,
                        offset,
                        data,
                        info,
                        tags,
                        time_ms,
                        expires_at,
                        key or None,
                        hold_until if key else 0.0,
                    )
                )
            if rows:
                conn.executemany(_INSERT, rows)
                new_floor = max(floor, offset - limits.size)
                stream_expires_at = max(expires_at, hold_until if any(row[7] for row in rows) else 0.0)
                conn.execute(
                    "UPDATE streams SET top = ?, floor = ?, expires_at = MAX(expires_at, ?)"
                    " WHERE channel = ?",
                    (offset, new_floor, stream_expires_at, channel),
                )
                # Retention is enforced on append, the only time a stream grows; reads also filter
                # on floor and expires_at, so a stream nobody appends to never serves expired
                # publications. Rows still inside their idempotency window stay until it ends.
                conn.execute(
                    'DELETE FROM publications WHERE channel = ? AND ("offset" <= ? OR expires_at <= ?)'
                    " AND hold_until <= ?",
                    (channel, new_floor, now, now),
                )
        return batch.appended(epoch)

    def _expire_streams(self, limit: int) -> int:
        conn = self._connection()
        now = self._clock()
        with transaction(conn):
            channels = [
                row[0]
                for row in conn.execute(
                    "SELECT channel FROM streams WHERE expires_at <= ? LIMIT ?",
                    (now, min(limit, EXPIRE_BATCH)),
                )
            ]
            if channels:
                marks = ",".join("?" * len(channels))  # one placeholder per channel, never input
                conn.execute(f"DELETE FROM publications WHERE channel IN ({marks})", channels)  # noqa: S608
                conn.execute(f"DELETE FROM streams WHERE channel IN ({marks})", channels)  # noqa: S608
        return len(channels)

    def _remove_history(self, channel: str) -> None:
        conn = self._connection()
        now = self._clock()
        with transaction(conn):
            conn.execute("UPDATE streams SET floor = top WHERE channel = ?", (channel,))
            # Rows inside their idempotency window stay (hidden by the floor), as after a trim:
            # a retried publish must still find its original.
            conn.execute("DELETE FROM publications WHERE channel = ? AND hold_until <= ?", (channel, now))

    def _read(self, channel: str, query: HistoryQuery) -> HistoryPage:
        conn = self._connection()
        now = self._clock()
        with transaction(conn, "BEGIN"):
            row = conn.execute(
                "SELECT top, epoch, floor FROM streams WHERE channel = ?", (channel,)
            ).fetchone()
            if row is None:
                # Nothing was ever published (or it all expired): no stream, and no row for it.
                return HistoryPage(publications=[], position=StreamPosition(offset=0, epoch=""))
            top, epoch, floor = row
            rows: list[tuple[Any, ...]] = []
            if query.limit != 0:
                params: list[object] = [channel, now, floor]
                if query.since is not None:
                    params.append(query.since)
                # A negative LIMIT means no limit in SQLite, which is what limit < 0 means here.
                params.append(query.limit)
                sql = _READ_QUERIES[query.reverse, query.since is not None]
                rows = conn.execute(sql, params).fetchall()
        return HistoryPage(
            publications=[_decode_row(row) for row in rows],
            position=StreamPosition(offset=int(top), epoch=str(epoch)),
        )


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. The switch takes an exclusive lock that SQLite does not wait for through
    busy_timeout: processes opening a new file together (``serve --workers``) would fail with
    "database is locked", so the switch is tried again until the busy timeout has passed."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.01)  # on the store's own thread: the other process holds the lock briefly
