"""The MessageStore interface: per-channel streams with offsets, epochs and retention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from wirehub.types import HistoryLimits, HistoryPage, NewPublication, Publication, StreamPosition


class MessageStore(Protocol):
    """System of record for channels with history.

    Guarantees, per channel:

    * ``append`` assigns offsets consecutive from 1 (top + 1 ... top + n), atomically: no offset is
      used twice or skipped, also with several appenders at once, and they survive restarts;
    * a stream has an epoch that changes only when the stream is lost and created anew;
    * once ``append`` returns, the publications are durable.

    Retention: each publication expires ``limits.ttl_s`` after its append and ``read`` never
    returns an expired one; ``append`` also drops publications beyond the newest ``limits.size``.
    The stream's top offset and epoch outlive its publications.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def append(
        self, channel: str, pubs: Sequence[NewPublication], *, limits: HistoryLimits
    ) -> list[Publication]: ...

    async def read(
        self,
        channel: str,
        *,
        since: int | None,
        limit: int,
        reverse: bool = False,
    ) -> HistoryPage:
        """Publications after offset ``since`` (before it with ``reverse``; None = from the edge).

        At most ``limit`` publications; ``limit == 0`` returns only the position.
        ``position`` in the page is the stream top at the time of the read.
        """
        ...

    async def position(self, channel: str) -> StreamPosition:
        """The stream top: last offset (0 when empty) and epoch. Creates the stream if absent."""
        ...
