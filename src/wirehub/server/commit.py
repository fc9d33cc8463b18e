"""Group commit: concurrent appends to one channel share one store round trip.

While an append to a channel is in flight, further publications to that channel queue up;
when it returns, everything queued goes to the store as one batch. A lone publisher pays one
round trip as before; many concurrent publishers pay one round trip per batch instead of each.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from wirehub.storage.base import MessageStore
from wirehub.types import HistoryLimits, NewPublication, Publication

MAX_BATCH = 256


@dataclass(slots=True)
class _Pending:
    pub: NewPublication
    done: asyncio.Future[tuple[Publication, str]]


class GroupCommitter:
    def __init__(self, store: MessageStore) -> None:
        self._store = store
        self._queues: dict[str, list[_Pending]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def append(
        self, channel: str, pub: NewPublication, limits: HistoryLimits
    ) -> tuple[Publication, str]:
        """Append one publication; returns it with its offset, and the stream's epoch, once stored."""
        pending = _Pending(pub, asyncio.get_running_loop().create_future())
        queue = self._queues.get(channel)
        if queue is None:
            self._queues[channel] = [pending]
            task = asyncio.get_running_loop().create_task(self._flush(channel, limits))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            queue.append(pending)
        return await asyncio.shield(pending.done)

    async def _flush(self, channel: str, limits: HistoryLimits) -> None:
        queue = self._queues[channel]
        try:
            while queue:
                batch, queue[:] = queue[:MAX_BATCH], queue[MAX_BATCH:]
                try:
                    appended = await self._store.append(channel, [p.pub for p in batch], limits=limits)
                except Exception as exc:
                    for p in batch:
                        if not p.done.done():
                            p.done.set_exception(exc)
                    continue
                for p, pub in zip(batch, appended.publications, strict=True):
                    if not p.done.done():
                        p.done.set_result((pub, appended.epoch))
        finally:
            # Nothing is left queued: appends that arrive from now on start a new flush.
            del self._queues[channel]

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
