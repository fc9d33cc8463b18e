"""A node's publications, per channel, in the order they were submitted: store, then broker.

Each channel has a line of two stages, each with a task only while it has work (not one per
publication):

* the **store** stage takes everything queued for a channel with history and stores it as one
  batch (group commit: a burst pays one store round trip, whether it comes from many publishers
  or from one connection's pipelined publishes). A stored publication is acknowledged at once:
  the store holds it, so nothing acknowledged is lost whatever the broker does next;
* the **broker** stage hands publications to the broker one after another, in the order they
  were submitted (stored ones in offset order). A publication without history is acknowledged
  once the broker has it.

So a slow or frozen broker delays only the fan-out to other replicas, never the acknowledgement
of a stored publication. A stored publication the broker does not take reaches this node's
subscribers at once (in offset order) and other nodes fill the hole from the store, as after any
broker outage. A publication without history that the broker does not take fails with
``BrokerUnavailable`` (100, temporary): nothing holds it, the publisher may retry. Should a
channel's broker backlog pass ``MAX_BROKER_BACKLOG`` (a broker that takes nothing for long),
the oldest publications leave the line the same way.

``submit`` never awaits; ``on_done`` is told the outcome, from the stage that settles it (for a
publication without history in the same step as the fan-out, so that a publisher's reply can
leave in the same frame as its push). ``publish`` is the awaitable form.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from wirehub.broker.base import Broker
from wirehub.errors import BrokerUnavailable
from wirehub.server.metrics import Histogram
from wirehub.storage.base import MessageStore
from wirehub.types import BrokerMessage, HistoryLimits, NewPublication, Publication

__all__ = ["MAX_BATCH", "MAX_BROKER_BACKLOG", "OnDone", "PublishPipeline", "Published"]

logger = logging.getLogger(__name__)

MAX_BATCH = 256
"""Publications of one channel stored in one round trip, at most."""

MAX_BROKER_BACKLOG = 10_000
"""Publications of one channel waiting for the broker, at most (see the module docstring)."""

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
        if not self.told:
            self.told = True
            _tell(self.on_done, published, exc)


def _tell(on_done: OnDone, published: Published | None, exc: BaseException | None) -> None:
    try:
        on_done(published, exc)
    except Exception:
        logger.exception("publish outcome callback failed")


@dataclass(slots=True)
class _Outgoing:
    """A publication on its way to the broker; ``epoch`` is "" when it was not stored."""

    pending: _Pending
    pub: Publication
    epoch: str


@dataclass(slots=True)
class _Line:
    """One channel's two stages."""

    store: deque[_Pending] = field(default_factory=deque)
    broker: deque[_Outgoing] = field(default_factory=deque)
    storing: bool = False
    publishing: bool = False

    @property
    def idle(self) -> bool:
        return not (self.storing or self.publishing or self.store or self.broker)


class PublishPipeline:
    def __init__(
        self,
        store: MessageStore,
        broker: Broker,
        deliver_locally: Callable[[str, BrokerMessage], None],
        *,
        store_timing: Histogram | None = None,
        broker_timing: Histogram | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._store_timing = store_timing or Histogram()
        self._broker_timing = broker_timing or Histogram()
        """How long each store append (one batch) and each broker publish took."""
        self._deliver_locally = deliver_locally
        """How a stored publication reaches this node's subscribers when the broker failed."""
        self._lines: dict[str, _Line] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(
        self, channel: str, pub: NewPublication, limits: HistoryLimits | None, on_done: OnDone
    ) -> None:
        """Queue ``pub`` behind the channel's earlier publications; store it if ``limits`` is given."""
        line = self._lines.get(channel)
        if line is None:
            line = self._lines[channel] = _Line()
        line.store.append(_Pending(pub, limits, on_done))
        if not line.storing:
            line.storing = True
            self._start(self._store_stage(channel, line))

    def submit_soon(
        self, channel: str, pub: NewPublication, limits: HistoryLimits | None, on_done: OnDone
    ) -> None:
        """``submit``, except that a publication without history to an idle channel goes to a broker
        that takes it without waiting (the in-process one) at once: it has been delivered, and
        ``on_done`` told, when this returns. A broker that must be waited for gets it from the
        channel's broker stage, as after ``submit``.
        """
        if limits is not None or channel in self._lines:
            self.submit(channel, pub, limits, on_done)
            return
        publication = _unstored(pub)
        started = time.perf_counter()
        try:
            taken = self._broker.publish_now(channel, publication)
        except Exception as exc:
            self._broker_timing.observe(time.perf_counter() - started)
            _tell(on_done, None, exc)  # nothing holds it: the publisher learns and may retry
            return
        if not taken:
            # Queued on a line made now, in this step: whatever comes next for the channel
            # queues behind it.
            line = self._lines[channel] = _Line()
            self._to_broker(channel, line, [_Outgoing(_Pending(pub, None, on_done), publication, "")])
            return
        self._broker_timing.observe(time.perf_counter() - started)
        _tell(on_done, (publication, ""), None)

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
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the stages

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store_stage(self, channel: str, line: _Line) -> None:
        try:
            while line.store:
                batch = _next_batch(line.store)
                limits = batch[0].limits
                if limits is None:
                    self._to_broker(channel, line, [_Outgoing(p, _unstored(p.pub), "") for p in batch])
                    continue
                started = time.perf_counter()
                try:
                    appended = await self._store.append(channel, [p.pub for p in batch], limits=limits)
                except Exception as exc:
                    self._store_timing.observe(time.perf_counter() - started)
                    for pending in batch:
                        pending.fail(exc)
                    continue
                self._store_timing.observe(time.perf_counter() - started)
                outgoing = []
                for pending, stored in zip(batch, appended.publications, strict=True):
                    pending.succeed((stored, appended.epoch))  # stored: acknowledged, whatever follows
                    # With its stream's epoch: a node learns from it that a stream was (re)created.
                    pub = dataclasses.replace(stored, epoch=appended.epoch)
                    outgoing.append(_Outgoing(pending, pub, appended.epoch))
                self._to_broker(channel, line, outgoing)
        except asyncio.CancelledError:
            for pending in line.store:  # the node closes
                pending.fail(asyncio.CancelledError())
            raise
        finally:
            line.storing = False
            self._forget_if_idle(channel, line)

    def _to_broker(self, channel: str, line: _Line, outgoing: list[_Outgoing]) -> None:
        line.broker.extend(outgoing)
        excess = len(line.broker) - MAX_BROKER_BACKLOG
        if excess > 0:
            logger.warning("broker backlog full; oldest publications left out", extra={"channel": channel})
            for _ in range(excess):
                self._broker_failed(channel, line.broker.popleft(), BrokerUnavailable())
        if not line.publishing:
            line.publishing = True
            self._start(self._broker_stage(channel, line))

    async def _broker_stage(self, channel: str, line: _Line) -> None:
        try:
            while line.broker:
                await self._hand_over(channel, line.broker.popleft())
        except asyncio.CancelledError:
            for outgoing in line.broker:  # the node closes
                outgoing.pending.fail(asyncio.CancelledError())
            raise
        finally:
            line.publishing = False
            self._after_broker(channel, line)

    async def _hand_over(self, channel: str, outgoing: _Outgoing) -> None:
        started = time.perf_counter()
        try:
            await self._broker.publish(channel, outgoing.pub)
        except asyncio.CancelledError:
            outgoing.pending.fail(asyncio.CancelledError())
            raise
        except Exception as exc:
            self._broker_timing.observe(time.perf_counter() - started)
            self._broker_failed(channel, outgoing, exc)
            return
        self._broker_timing.observe(time.perf_counter() - started)
        if not outgoing.epoch:
            outgoing.pending.succeed((outgoing.pub, ""))

    def _broker_failed(self, channel: str, outgoing: _Outgoing, exc: Exception) -> None:
        if not outgoing.epoch:
            outgoing.pending.fail(exc)  # nothing holds it: the publisher learns and may retry
            return
        if not isinstance(exc, BrokerUnavailable):
            logger.error("broker publish failed", extra={"channel": channel}, exc_info=exc)
        self._deliver_locally(channel, outgoing.pub)

    def _after_broker(self, channel: str, line: _Line) -> None:
        if line.broker and not line.publishing:
            line.publishing = True  # what a stopped stage left (it was cancelled)
            self._start(self._broker_stage(channel, line))
        else:
            self._forget_if_idle(channel, line)

    def _forget_if_idle(self, channel: str, line: _Line) -> None:
        if line.idle and self._lines.get(channel) is line:
            del self._lines[channel]


def _next_batch(queue: deque[_Pending]) -> list[_Pending]:
    """The queue's head, with what follows it of the same kind (stored alike, or not stored)."""
    first = queue.popleft()
    batch = [first]
    while queue and len(batch) < MAX_BATCH and queue[0].limits == first.limits:
        batch.append(queue.popleft())
    return batch


def _unstored(pub: NewPublication) -> Publication:
    return Publication(data=pub.data, info=pub.info, tags=pub.tags, time_ms=pub.time_ms)
