"""The ``publications`` collection: a stream's pending batch stored, the originals of idempotency
keys found, and what retention dropped deleted (the package docstring's steps 2, 3 and 6)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from wirehub.storage.mongo.documents import PUB_FIELDS, Doc, Encoded, StreamState, decode_doc, visible
from wirehub.types import Publication

__all__ = ["delete_dropped", "insert_pending", "originals"]

DUPLICATE_KEY = 11000


async def insert_pending(db: AsyncDatabase[Doc], channel: str, stream: StreamState, *, now: float) -> None:
    """Insert the stream's pending publications into ``publications`` (idempotent)."""
    if stream.pending_stored:
        return
    # What retention already hides needs no document (unless its idempotency window is open).
    docs = [
        {**doc, "channel": channel}
        for doc in stream.pending
        if visible(doc, floor=stream.floor, now=now) or float(doc.get("hold_until", 0.0)) > now
    ]
    if docs:
        try:
            await db["publications"].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if exc.details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            # Only duplicates: those offsets were stored already (same content).
    stream.pending_stored = True


async def originals(
    db: AsyncDatabase[Doc], channel: str, stream: StreamState, items: list[Encoded], *, now: float
) -> dict[str, Publication]:
    """The original publication of each key whose window is open, among ``items``."""
    keys = sorted({item.pub.idempotency_key for item in items if item.pub.idempotency_key})
    if not keys:
        return {}
    found: dict[str, Doc] = {}
    cursor = db["publications"].find(
        {"channel": channel, "idem": {"$in": keys}, "hold_until": {"$gt": now}},
        {**PUB_FIELDS, "idem": 1, "hold_until": 1},
    )
    candidates = [*await cursor.to_list(), *stream.pending]
    for doc in candidates:
        key = doc.get("idem")
        if not (key in keys and float(doc.get("hold_until", 0.0)) > now):
            continue
        if key not in found or int(doc["offset"]) > int(found[key]["offset"]):
            found[key] = doc
    return {key: decode_doc(doc) for key, doc in found.items()}


async def delete_dropped(db: AsyncDatabase[Doc], channel: str, *, floor: int, now: float) -> None:
    """Delete what retention dropped (reads hide it already), keeping open idempotency windows."""
    # Two plain conjunctions rather than one $or: the stand-in's delete_many ignores the other
    # conditions next to a top-level $or (docs/mongodb.md, "stand-in gaps").
    released = {"$lte": now}
    await db["publications"].delete_many(
        {"channel": channel, "offset": {"$lte": floor}, "hold_until": released}
    )
    await db["publications"].delete_many(
        {"channel": channel, "expires_at": {"$lte": now}, "hold_until": released}
    )
