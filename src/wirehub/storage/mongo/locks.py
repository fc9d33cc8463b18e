"""ChannelLocks: one asyncio lock per channel, kept only while a call holds or awaits it.

They serialise this process's appends (and stream removals) per channel, so that contention on a
stream document is only ever between replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["ChannelLocks"]


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class ChannelLocks:
    """The lock table: a channel's entry exists while someone holds or waits for its lock."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def hold(self, channel: str) -> AsyncIterator[None]:
        entry = self._entries.get(channel)
        if entry is None:
            entry = self._entries[channel] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[channel]
