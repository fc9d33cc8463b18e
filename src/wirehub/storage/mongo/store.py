"""MongoStore: the MessageStore on MongoDB; the package docstring (``wirehub.storage.mongo``)
tells the collections and the append algorithm."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, PyMongoError

from wirehub.config import StoreSettings
from wirehub.errors import ConfigError, StoreUnavailable
from wirehub.storage.base import CHECK_TIMEOUT_S, UNAVAILABLE, HistoryQuery
from wirehub.storage.batch import AppendBatch
from wirehub.storage.mongo.documents import (
    PUB_FIELDS,
    Doc,
    Encoded,
    StreamState,
    decode_doc,
    encode,
    next_chunk,
)
from wirehub.storage.mongo.locks import ChannelLocks
from wirehub.storage.mongo.options import read_preference_for, url_options, write_concern_for
from wirehub.storage.mongo.publications import delete_dropped, insert_pending, originals
from wirehub.storage.mongo.streams import StreamCache, stream_doc
from wirehub.storage.mongo.users import MongoUserStore
from wirehub.tasks import cancel_and_wait
from wirehub.types import (
    Appended,
    HistoryLimits,
    HistoryPage,
    NewPublication,
    StreamPosition,
)

__all__ = ["MongoStore"]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "wirehub"
DEFAULT_TIMEOUT_S = 5.0
"""Budget of one store call (all its round trips) unless the URL sets ``timeoutMS``."""
MAX_PENDING_BYTES = 4 * 1024 * 1024
"""Largest chunk of one append written in one update (documents are limited to 16 MiB)."""
MAX_CAS_ATTEMPTS = 100
"""Lost compare-and-set races tolerated in one append before giving up (temporary error)."""
BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 5.0

# --------------------------------------------------------------------------- the store


class MongoStore:
    """MessageStore (and, as ``users``, UserStore) on MongoDB; see the module docstring.

    ``start`` never waits for MongoDB: indexes are created by a background task that retries
    with capped, jittered backoff, and ``ready`` turns True once they exist. Until then every
    call waits for readiness within its time budget and then fails with ``StoreUnavailable``.
    """

    def __init__(
        self,
        url: str,
        *,
        write_concern: str = "majority",
        read_preference: str = "primary",
        idempotency_window_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        trim_interval_s: float = 1.0,
        timeout_s: float | None = None,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._url = url
        self._write_concern = write_concern_for(write_concern)
        self._read_preference = read_preference_for(read_preference)
        self._idempotency_window_s = idempotency_window_s
        self._clock = clock
        self._trim_interval_s = trim_interval_s
        self._max_pending_bytes = max_pending_bytes
        options = url_options(url)
        if timeout_s is None:
            timeout_ms = options.get("timeoutms")
            timeout_s = (
                float(timeout_ms) / 1000 if timeout_ms and float(timeout_ms) > 0 else DEFAULT_TIMEOUT_S
            )
        self._timeout_s = timeout_s
        self._client_options: dict[str, Any] = {}
        if "serverselectiontimeoutms" not in options:
            # Fail a call while MongoDB is away within the call's budget, not pymongo's 30 s.
            self._client_options["serverSelectionTimeoutMS"] = int(timeout_s * 1000)
        if "appname" not in options:
            self._client_options["appname"] = "wirehub"
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None
        self._ready = asyncio.Event()
        self._prepare_task: asyncio.Task[None] | None = None
        self._streams = StreamCache()
        self._locks = ChannelLocks()
        self._failing = False
        self.users = MongoUserStore(self, clock=clock)

    @classmethod
    def from_settings(cls, settings: StoreSettings, *, clock: Callable[[], float] = time.time) -> MongoStore:
        return cls(
            settings.url,
            write_concern=settings.write_concern,
            read_preference=settings.read_preference,
            idempotency_window_s=settings.idempotency_window_s,
            clock=clock,
        )

    @property
    def ready(self) -> bool:
        """True once started and the indexes exist; it stays True while MongoDB is away later."""
        return self._client is not None and self._ready.is_set()

    async def wait_ready(self) -> None:
        """Wait until ``ready``: for callers that would rather wait than fail while MongoDB is away."""
        await self._ready.wait()

    async def check(self) -> None:
        """Ready while the indexes exist and MongoDB answers a ping within CHECK_TIMEOUT_S."""
        db = self._db
        if db is None or not self._ready.is_set():
            raise StoreUnavailable("mongodb not reached yet")
        try:
            with pymongo.timeout(CHECK_TIMEOUT_S):
                await db.command("ping")
        except PyMongoError as exc:
            raise StoreUnavailable(f"mongodb does not answer: {type(exc).__name__}") from None

    @property
    def database_name(self) -> str:
        assert self._db is not None, "not started"
        return self._db.name

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._client is not None:
            return
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(self._url, **self._client_options)
            db = client.get_default_database(DEFAULT_DATABASE, write_concern=self._write_concern)
        except (ConfigurationError, ValueError) as exc:
            # PyMongo's URL errors name the problem without quoting the URL (or its password).
            raise ConfigError([f"store.url: not a usable MongoDB URL: {exc}"]) from None
        self._client, self._db = client, db
        self._ready.clear()
        self._prepare_task = asyncio.get_running_loop().create_task(self._prepare(db))

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        task, self._prepare_task = self._prepare_task, None
        await cancel_and_wait(task)
        self._streams.clear()
        if client is not None:
            await client.close()

    async def _prepare(self, db: AsyncDatabase[Doc]) -> None:
        """Create the indexes (idempotent), retrying until MongoDB answers; then be ready."""
        delay = BACKOFF_START_S
        while True:
            try:
                with pymongo.timeout(self._timeout_s):
                    await self._create_indexes(db)
            except PyMongoError as exc:
                logger.warning(
                    "mongodb not ready, retrying", extra={"error": type(exc).__name__, "retry_in_s": delay}
                )
                # Jitter: replicas that lost MongoDB together do not come back in lockstep.
                await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))  # noqa: S311 - not crypto
                delay = min(delay * 2, BACKOFF_CAP_S)
                continue
            logger.info("mongodb store ready", extra={"database": db.name})
            self._ready.set()
            return

    @staticmethod
    async def _create_indexes(db: AsyncDatabase[Doc]) -> None:
        # Named, but nothing depends on the names: the stand-in renames indexes.
        await db["publications"].create_index(
            [("channel", pymongo.ASCENDING), ("offset", pymongo.ASCENDING)],
            unique=True,
            name="channel_offset",
        )
        await db["publications"].create_index(
            [("channel", pymongo.ASCENDING), ("idem", pymongo.ASCENDING)], name="channel_idem"
        )
        await db["accounts"].create_index("username_key", unique=True, name="username_key")

    # ------------------------------------------------------------------ plumbing

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[AsyncDatabase[Doc]]:
        """The database for one store call (this store's and its companions', the user and
        refresh token stores): wait for readiness, bound every round trip by one deadline, and
        turn driver errors into ``StoreUnavailable``. Not a MongoDB session: no transaction."""
        db = self._db
        if db is None:
            raise StoreUnavailable(UNAVAILABLE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        if not self._ready.is_set():
            try:
                async with asyncio.timeout_at(deadline):
                    await self._ready.wait()
            except TimeoutError:
                raise StoreUnavailable(UNAVAILABLE) from None
        try:
            with pymongo.timeout(max(deadline - loop.time(), 0.001)):
                yield db
        except PyMongoError as exc:
            if not self._failing:
                self._failing = True
                logger.warning("mongodb unavailable", extra={"error": type(exc).__name__})
            raise StoreUnavailable(UNAVAILABLE) from exc
        if self._failing:
            self._failing = False
            logger.info("mongodb available again")

    async def _store_pending(self, db: AsyncDatabase[Doc], channel: str, stream: StreamState) -> None:
        """Step 2 (and 5) of the append: the stream's pending publications into ``publications``."""
        await insert_pending(db, channel, stream, now=self._clock())

    # ------------------------------------------------------------------ MessageStore

    async def append(
        self, channel: str, pubs: Sequence[NewPublication], *, limits: HistoryLimits
    ) -> Appended:
        if not pubs:
            return Appended([], (await self.position(channel)).epoch)
        now_ms = int(self._clock() * 1000)
        encoded = [encode(p, now_ms) for p in pubs]
        # The lock first: the call's time budget starts once it is this call's turn.
        async with self._locks.hold(channel), self.database() as db:
            results = await self._append_locked(db, channel, encoded, limits)
            stream = self._streams.get(channel)
        if stream is not None and self._clock() - stream.trimmed_at >= self._trim_interval_s:
            await self._trim(channel, stream)
        return results

    async def _append_locked(
        self, db: AsyncDatabase[Doc], channel: str, encoded: list[Encoded], limits: HistoryLimits
    ) -> Appended:
        now = self._clock()
        expires_at = now + limits.ttl_s
        hold_until = now + self._idempotency_window_s
        batch = AppendBatch([item.pub for item in encoded])
        results = batch.results
        remaining = list(batch.todo)
        streams = db["streams"]
        stream = self._streams.take(channel)
        keys_checked = False
        attempts = 0
        while remaining:
            if stream is None:
                stream = StreamState.from_doc(await stream_doc(db, channel, pending=True, create=True))
                keys_checked = False
            # The update below replaces ``pending``: it must be stored first, or it is lost.
            await self._store_pending(db, channel, stream)
            if batch.first_with_key and not keys_checked:
                # Checked against the state the update is guarded by: if anyone appends in
                # between, the update fails and the check runs again.
                hits = await originals(db, channel, stream, [encoded[i] for i in remaining], now=now)
                for i in remaining:
                    hit = hits.get(encoded[i].pub.idempotency_key)
                    if hit is not None:
                        results[i] = hit
                remaining = [i for i in remaining if results[i] is None]
                keys_checked = True
                if not remaining:
                    break
            chunk = next_chunk(encoded, remaining, self._max_pending_bytes)
            docs = [
                encoded[i].doc(stream.top + n, expires_at=expires_at, hold_until=hold_until)
                for n, i in enumerate(chunk, start=1)
            ]
            top = stream.top + len(chunk)
            floor = max(stream.floor, top - limits.size)
            result = await streams.update_one(
                {"_id": channel, "top": stream.top, "epoch": stream.epoch},
                # $max: a history_remove may have raised the floor meanwhile; it never goes down.
                # The stream expires with its last publication (or idempotency key).
                {
                    "$set": {"top": top, "pending": docs, "batch": secrets.token_hex(8)},
                    "$max": {"floor": floor, "expires_at": max(expires_at, hold_until)},
                },
            )
            if result.matched_count != 1:
                # Another replica appended first (or the stream was lost): read it again.
                stream = None
                attempts += 1
                if attempts >= MAX_CAS_ATTEMPTS:
                    raise StoreUnavailable(UNAVAILABLE)
                if attempts > 2:
                    await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempts, 0.05)))  # noqa: S311
                continue
            # Durable: from here on these publications are acknowledged, whatever happens next.
            for n, i in enumerate(chunk, start=1):
                results[i] = encoded[i].publication(stream.top + n)
            remaining = remaining[len(chunk) :]
            stream = StreamState(
                top=top,
                epoch=stream.epoch,
                floor=floor,
                pending=docs,
                pending_stored=False,
                trimmed_at=stream.trimmed_at,
            )
            try:
                await self._store_pending(db, channel, stream)
            except PyMongoError as exc:
                # The batch is safe in ``pending``; the next append stores it (step 2).
                logger.warning("mongodb append: storing pending failed", extra={"error": type(exc).__name__})
                if remaining:
                    raise
        assert stream is not None
        self._streams.remember(channel, stream)
        return batch.appended(stream.epoch)

    async def _trim(self, channel: str, stream: StreamState) -> None:
        """Delete what retention dropped (reads hide it already); failures only delay it."""
        now = self._clock()
        stream.trimmed_at = now
        try:
            async with self.database() as db:
                await delete_dropped(db, channel, floor=stream.floor, now=now)
        except StoreUnavailable:
            logger.debug("mongodb trim failed", extra={"channel": channel})

    async def read(self, channel: str, query: HistoryQuery) -> HistoryPage:
        since, limit, reverse = query.since, query.limit, query.reverse
        async with self.database() as db:
            doc = await stream_doc(db, channel, pending=limit != 0, create=False)
            stream = StreamState.from_doc(doc)
            position = StreamPosition(offset=stream.top, epoch=stream.epoch)
            if limit == 0:
                return HistoryPage(publications=[], position=position)
            now = self._clock()
            low, high = stream.floor, stream.top  # offsets in (low, high]
            if reverse:
                if since is not None:
                    high = min(high, since - 1)
            elif since is not None:
                low = max(low, since)
            if low >= high:
                return HistoryPage(publications=[], position=position)
            publications = db["publications"].with_options(read_preference=self._read_preference)
            cursor = publications.find(
                {"channel": channel, "offset": {"$gt": low, "$lte": high}, "expires_at": {"$gt": now}},
                PUB_FIELDS,
            ).sort("offset", pymongo.DESCENDING if reverse else pymongo.ASCENDING)
            if limit > 0:
                cursor = cursor.limit(limit)
            found: dict[int, Mapping[str, Any]] = {int(d["offset"]): d for d in await cursor.to_list()}
        # The latest batch may not be in ``publications`` yet: it is always in ``pending``.
        for pending in stream.pending:
            offset = int(pending["offset"])
            if low < offset <= high and float(pending["expires_at"]) > now:
                found.setdefault(offset, pending)
        offsets = sorted(found, reverse=reverse)
        if limit > 0:
            offsets = offsets[:limit]
        return HistoryPage(publications=[decode_doc(found[o]) for o in offsets], position=position)

    async def expire_streams(self, *, limit: int = 500) -> int:
        now = self._clock()
        removed = 0
        async with self.database() as db:
            expired = (
                await db["streams"].find({"expires_at": {"$lte": now}}, {"_id": 1}).limit(limit).to_list()
            )
            for doc in expired:
                channel = doc["_id"]
                async with self._locks.hold(channel):
                    # Guarded again: an append (from any replica) may have just extended it.
                    result = await db["streams"].delete_one({"_id": channel, "expires_at": {"$lte": now}})
                    if result.deleted_count:
                        self._streams.take(channel)
                        await db["publications"].delete_many({"channel": channel})
                        removed += 1
            # Made by reads before reads stopped making streams: never published, nothing to keep.
            legacy = await db["streams"].delete_many({"expires_at": {"$exists": False}, "top": 0})
        return removed + legacy.deleted_count

    async def remove_history(self, channel: str) -> None:
        now = self._clock()
        async with self._locks.hold(channel), self.database() as db:
            self._streams.take(channel)
            doc = await db["streams"].find_one({"_id": channel}, {"pending": 0})
            if doc is None:
                return
            top = int(doc["top"])
            # Appends raise the floor with $max too, so a concurrent one cannot lower it again.
            await db["streams"].update_one({"_id": channel}, {"$max": {"floor": top}})
            await db["publications"].delete_many(
                {"channel": channel, "offset": {"$lte": top}, "hold_until": {"$lte": now}}
            )

    async def position(self, channel: str) -> StreamPosition:
        async with self.database() as db:
            doc = await stream_doc(db, channel, pending=False, create=False)
        return StreamPosition(offset=int(doc["top"]), epoch=str(doc["epoch"]))

    # ------------------------------------------------------------------ for the UserStore

    @contextlib.asynccontextmanager
    async def accounts(self) -> AsyncIterator[AsyncCollection[Doc]]:
        async with self.database() as db:
            yield db["accounts"]
