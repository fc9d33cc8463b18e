"""The ``streams`` collection as this process sees it: stream documents found or created, and a
bounded cache of what the last append of each channel left (the package docstring's step 1)."""

from __future__ import annotations

import secrets
from collections import OrderedDict

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from wirehub.errors import StoreUnavailable
from wirehub.storage.base import UNAVAILABLE
from wirehub.storage.mongo.documents import Doc, StreamState

__all__ = ["CACHED_STREAMS", "StreamCache", "stream_doc"]

CACHED_STREAMS = 4096
"""Stream documents remembered per process (least recently used are forgotten)."""


class StreamCache:
    """The stream states this process's appends left, by channel; the least recently used go first."""

    __slots__ = ("_size", "_streams")

    def __init__(self, size: int = CACHED_STREAMS) -> None:
        self._size = size
        self._streams: OrderedDict[str, StreamState] = OrderedDict()

    def get(self, channel: str) -> StreamState | None:
        return self._streams.get(channel)

    def take(self, channel: str) -> StreamState | None:
        """The cached state, which the caller now owns (it is forgotten here), or None."""
        return self._streams.pop(channel, None)

    def remember(self, channel: str, stream: StreamState) -> None:
        self._streams[channel] = stream
        self._streams.move_to_end(channel)
        while len(self._streams) > self._size:
            self._streams.popitem(last=False)

    def clear(self) -> None:
        self._streams.clear()


async def stream_doc(db: AsyncDatabase[Doc], channel: str, *, pending: bool, create: bool) -> Doc:
    """The channel's stream document; without one, a new one (``create``) or offset 0, no epoch.

    ``pending``: with the stream's pending publications (only appends and reads need them).
    """
    projection = None if pending else {"pending": 0}
    doc = await db["streams"].find_one({"_id": channel}, projection)
    if doc is not None:
        return doc
    if not create:
        return {"_id": channel, "top": 0, "epoch": "", "floor": 0}
    new: Doc = {"_id": channel, "top": 0, "epoch": secrets.token_hex(4), "floor": 0, "expires_at": 0.0}
    try:
        await db["streams"].insert_one(new)
    except DuplicateKeyError:
        # Created concurrently by another call or replica: theirs is the epoch.
        doc = await db["streams"].find_one({"_id": channel}, projection)
        if doc is None:
            raise StoreUnavailable(UNAVAILABLE) from None
        return doc
    return new
