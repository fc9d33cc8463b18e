"""The documents of the ``streams`` and ``publications`` collections, as the store encodes and reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wirehub.storage.encoding import decode_publication, dumps, encode_info
from wirehub.types import (
    NewPublication,
    Publication,
)

__all__ = ["PUB_FIELDS", "Doc", "Encoded", "StreamState", "decode_doc", "encode", "next_chunk", "visible"]

Doc = dict[str, Any]

PUB_FIELDS = {"_id": 0, "offset": 1, "data": 1, "info": 1, "tags": 1, "time_ms": 1}


def decode_doc(doc: Mapping[str, Any]) -> Publication:
    return decode_publication(
        offset=int(doc["offset"]),
        data=doc["data"],
        info=doc.get("info"),
        tags=doc.get("tags"),
        time_ms=int(doc["time_ms"]),
    )


@dataclass(slots=True)
class Encoded:
    """One publication to append, encoded before any I/O (a non-JSON payload fails here)."""

    pub: NewPublication
    data: str
    info: str | None
    tags: str | None
    time_ms: int
    size: int

    def doc(self, offset: int, *, expires_at: float, hold_until: float) -> Doc:
        doc: Doc = {"offset": offset, "data": self.data, "time_ms": self.time_ms, "expires_at": expires_at}
        if self.info is not None:
            doc["info"] = self.info
        if self.tags is not None:
            doc["tags"] = self.tags
        key = self.pub.idempotency_key
        if key:
            doc["idem"] = key
        doc["hold_until"] = hold_until if key else 0.0
        return doc

    def publication(self, offset: int) -> Publication:
        p = self.pub
        return Publication(data=p.data, offset=offset, info=p.info, tags=dict(p.tags), time_ms=self.time_ms)


def encode(pub: NewPublication, now_ms: int) -> Encoded:
    data = dumps(pub.data)
    info = None if pub.info is None else encode_info(pub.info)
    tags = dumps(dict(pub.tags)) if pub.tags else None
    size = len(data) + len(info or "") + len(tags or "") + len(pub.idempotency_key) + 128
    return Encoded(pub, data, info, tags, pub.time_ms or now_ms, size)


@dataclass(slots=True)
class StreamState:
    """What this process knows of a stream document."""

    top: int
    epoch: str
    floor: int
    pending: list[Doc] = field(default_factory=list)
    pending_stored: bool = True
    trimmed_at: float = float("-inf")

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> StreamState:
        pending = list(doc.get("pending") or [])
        return cls(
            top=int(doc["top"]),
            epoch=str(doc["epoch"]),
            floor=int(doc.get("floor", 0)),
            pending=pending,
            pending_stored=not pending,
        )


def next_chunk(encoded: list[Encoded], remaining: list[int], max_bytes: int) -> list[int]:
    """The next of ``remaining`` to write in one update: at least one, at most ``max_bytes`` in all."""
    size = 0
    for n, i in enumerate(remaining):
        size += encoded[i].size
        if size > max_bytes and n > 0:
            return remaining[:n]
    return remaining


def visible(doc: Mapping[str, Any], *, floor: int, now: float) -> bool:
    return int(doc["offset"]) > floor and float(doc["expires_at"]) > now
