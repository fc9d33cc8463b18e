"""A node's publications, per channel, in the order they were submitted: store, then broker.

``submit`` never awaits: it queues the publication on its channel, and its ``on_done`` callback
is called with the publication and its stream's epoch once the broker has it (or, when the broker
failed, once this node's subscribers have it: see below), in the same step as the fan-out, so a
publisher's reply can leave in the same frame as the push. ``publish`` is the awaitable form.

While one channel's publications are being stored or published, further ones queue up behind
them; when the store
is free again, everything queued for a channel with history goes to the store as one batch (group
commit), so a burst pays one store round trip, whether it comes from many publishers or from one
connection's pipelined publishes. Then each publication is handed to the broker in offset order.
One task runs per channel while that channel has work, not one per publication.

A publication the store has is acknowledged even if the broker then fails: this node's
subscribers get it at once (in offset order) and other nodes fill the hole from the store, as
they do after any broker outage. A publication without history that the broker did not take
fails with ``BrokerUnavailable`` (100, temporary): nothing holds it, the publisher may retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wirehub.broker.base import Broker
from wirehub.errors import BrokerUnavailable
from wirehub.storage.base import MessageStore
from wirehub.types import BrokerMessage, HistoryLimits, NewPublication, Publication

__all__ = ["MAX_BATCH", "PublishPipeline"]

logger = logging.getLogger(__name__)

MAX_BATCH = 256
"""Publications of one channel stored in one round trip, at most."""

Published = tuple[Publication, str]
"""A publication with its offset, and its stream's epoch ("" when it was not stored)."""

OnDone = Callable[[Published | None, BaseException | None], None]
"""Told the outcome of a submitted publication: ``(published, None)`` or ``(None, error)``."""


@dataclass(slots=True)
class _Pending:
    pub: NewPublication
    limits: HistoryLimits | None
    """Retention when the publication is stored; None when it is only fanned out."""
    on_done: OnDone
    told: bool = False

    def succeed(self, published: Published) -> None:
        self._tell(published, None)

    def fail(self, exc: BaseException) -> None:
        self._tell(None, exc)

    def _tell(self, published: Published | None, exc: BaseException | None) -> None:
        if self.told:
            return
        self.told = True
        try:
            self.on_done(published, exc)
        except Exception:
            logger.exception("publish outcome callback failed")


class PublishPipeline:
    def __init__(
        self, store: MessageStore, broker: Broker, deliver_locally: Callable[[str, BrokerMessage], None]
    ) -> None:
        self._store = store
        self._broker = broker
        self._deliver_locally = deliver_locally
        """How a stored publication reaches this node's subscribers when the broker failed."""
        self._queues: dict[str, deque[_Pending]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(
        self, channel: str, pub: NewPublication, limits: HistoryLimits | None, on_done: OnDone
    ) -> None:
        """Queue ``pub`` behind the channel's earlier publications; store it if ``limits`` is given."""
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = deque()
            self._start(channel, queue)
        queue.append(_Pending(pub, limits, on_done))

    def _start(self, channel: str, queue: deque[_Pending]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(channel, queue))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def submit_soon(
        self, channel: str, pub: NewPublication, limits: HistoryLimits | None, on_done: OnDone
    ) -> None:
        """``submit``, except that a publication without history to an idle channel is handed to the
        broker in the caller's own task: no task of its own, and the in-process broker has
        delivered it (and ``on_done`` has been called) when this returns.
        """
        if limits is not None or channel in self._queues:
            self.submit(channel, pub, limits, on_done)
            return
        pending = _Pending(pub, None, on_done)
        queue: deque[_Pending] = deque()
        self._queues[channel] = queue  # what others submit meanwhile waits behind this one
        try:
            await self._fan_out(channel, pending, _unstored(pub), "")
        except asyncio.CancelledError:
            pending.fail(asyncio.CancelledError())
            raise
        finally:
            if queue:
                self._start(channel, queue)
            else:
                del self._queues[channel]

    async def publish(self, channel: str, pub: NewPublication, limits: HistoryLimits | None) -> Published:
        """``submit`` and wait for the outcome; a caller that stops waiting leaves it in line."""
        done: asyncio.Future[Published] = asyncio.get_running_loop().create_future()

        def tell(published: Published | None, exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is not None:
                done.set_exception(exc)
            else:
                assert published is not None
                done.set_result(published)

        self.submit(channel, pub, limits, tell)
        return await done

    async def close(self) -> None:
        """Wait for what is queued to be stored and handed over."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, channel: str, queue: deque[_Pending]) -> None:
        try:
            while queue:
                batch = _next_batch(queue)
                if batch[0].limits is None:
                    for pending in batch:
                        await self._fan_out(channel, pending, _unstored(pending.pub), "")
                    continue
                try:
                    appended = await self._store.append(
                        channel, [p.pub for p in batch], limits=batch[0].limits
                    )
                except Exception as exc:
                    for pending in batch:
                        pending.fail(exc)
                    continue
                for pending, pub in zip(batch, appended.publications, strict=True):
                    await self._fan_out(channel, pending, pub, appended.epoch)
        finally:
            del self._queues[channel]
            for pending in queue:  # only when cancelled (the node closes)
                pending.fail(asyncio.CancelledError())

    async def _fan_out(self, channel: str, pending: _Pending, pub: Publication, epoch: str) -> None:
        try:
            await self._broker.publish(channel, pub)
        except BrokerUnavailable as exc:
            if not epoch:
                pending.fail(exc)  # nothing holds it: the publisher learns and may retry
                return
            logger.warning("broker publish failed; delivered locally", extra={"channel": channel})
            self._deliver_locally(channel, pub)
        except Exception as exc:
            logger.exception("broker publish failed", extra={"channel": channel})
            pending.fail(exc)
            return
        pending.succeed((pub, epoch))


def _next_batch(queue: deque[_Pending]) -> list[_Pending]:
    """The queue's head, with what follows it of the same kind (stored alike, or not stored)."""
    first = queue.popleft()
    batch = [first]
    while queue and len(batch) < MAX_BATCH and queue[0].limits == first.limits:
        batch.append(queue.popleft())
    return batch


def _unstored(pub: NewPublication) -> Publication:
    return Publication(data=pub.data, info=pub.info, tags=pub.tags, time_ms=pub.time_ms)
