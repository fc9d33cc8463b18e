"""The node's local index of subscriptions and its fan-out: ordered, encode-once delivery.

One broker subscription per channel per node, refcounted by local subscribers. Each
publication is encoded once, to bytes, and the same bytes object is offered to every
subscriber, with no ``await`` and no allocation per subscriber.

For channels with history, the hub delivers publications in offset order without gaps or
duplicates. Per channel (not per subscriber) it keeps ``top``, the last offset delivered here;
a small reorder buffer for publications that arrive early; and a ring of recently delivered
publications that lets a recovering subscribe join the live stream seamlessly. A hole that stays
open past ``reorder_timeout_s`` is filled from the store; a hole the store cannot fill (trimmed)
closes the channel's subscribers with 3010 so that their SDKs reconnect and recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from wirehub.broker.base import Broker
from wirehub.protocol.codec import encode_push
from wirehub.storage.base import HistoryQuery, MessageStore
from wirehub.tasks import cancel_all
from wirehub.types import BrokerMessage, Join, Leave, Publication, StreamPosition

__all__ = [
    "RECOVERY_READ_ATTEMPTS",
    "RING_SIZE",
    "Hub",
    "Joined",
    "Recovery",
    "Subscriber",
]

logger = logging.getLogger(__name__)

RING_SIZE = 512
"""Recently delivered publications kept per channel with history, to bridge recoveries."""
RECOVERY_READ_ATTEMPTS = 3


class Subscriber(Protocol):
    """A local connection as the hub sees it."""

    def deliver(self, frame: bytes) -> None:
        """Queue encoded bytes for writing. Must not block, await, or change the hub's sets."""
        ...

    def lost_continuity(self, channel: str) -> None:
        """The node cannot give this subscriber a gapless stream of ``channel`` any more."""
        ...


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a recovering subscribe asks for: everything after ``offset`` in ``epoch``."""

    offset: int
    epoch: str
    max_publications: int


@dataclass(frozen=True, slots=True)
class Joined:
    """The outcome of a subscribe, handed over in the same step the subscriber goes live."""

    position: StreamPosition | None
    """The stream top (or the client's own offset after a successful recovery)."""
    recovered: bool = False
    publications: tuple[Publication, ...] = ()


@dataclass(slots=True)
class _Channel:
    history: bool
    subscribers: set[Subscriber] = field(default_factory=set)
    join_leave: set[Subscriber] | None = None
    """Subscribers that get join and leave pushes; made for the first of them."""
    joining: int = 0
    ready: asyncio.Future[None] | None = None
    top: int | None = None
    epoch: str = ""
    early: list[Publication] = field(default_factory=list)
    pending: dict[int, Publication] = field(default_factory=dict)
    ring: deque[Publication] | None = None
    """Made at the first delivered publication: channels without history never need one."""
    repair: asyncio.TimerHandle | None = None
    repairing: bool = False
    recheck: bool = False
    """A gap was reported that a repair must still look at (reported while one was running)."""


class Hub:
    """The node's fan-out; the node passes it the broker's ``on_message`` and ``on_gap``.

    See the module docstring for the guarantees.
    """

    def __init__(self, broker: Broker, store: MessageStore, *, reorder_timeout_s: float = 0.05) -> None:
        self._broker = broker
        self._store = store
        self._reorder_timeout_s = reorder_timeout_s
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.deliveries = 0
        """Frames fanned out to subscribers, ever (publications and join/leave events)."""

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(
        self,
        channel: str,
        subscriber: Subscriber,
        *,
        history: bool,
        join_leave: bool = False,
        recovery: Recovery | None = None,
        on_joined: Callable[[Joined], bool],
    ) -> bool:
        """Add a subscriber. ``on_joined`` runs right before it goes live, in the same step.

        Whatever ``on_joined`` queues on the subscriber (the subscribe reply) therefore precedes
        every live publication, and the publications it carries end exactly where the live
        stream begins. If ``on_joined`` returns False the subscriber does not go live and
        ``subscribe`` returns False.
        """
        state = self._channels.get(channel)
        if state is None:
            state = _Channel(history=history)
            self._channels[channel] = state
            state.ready = asyncio.get_running_loop().create_future()
            state.joining += 1
            try:
                await self._open(channel, state)
            except BaseException as exc:
                state.joining -= 1
                state.ready.set_exception(exc)
                state.ready.exception()  # marked retrieved: each waiter re-raises it itself
                self._release_if_idle(channel, state)
                raise
            state.ready.set_result(None)
            state.ready = None  # the waiters hold it; an idle channel need not
        else:
            state.joining += 1
        try:
            if state.ready is not None and not state.ready.done():
                await asyncio.shield(state.ready)  # another subscriber is opening the channel
            joined = await self._position_for(channel, state, recovery) if state.history else Joined(None)
        except BaseException:
            state.joining -= 1
            self._release_if_idle(channel, state)
            raise
        state.joining -= 1
        if not on_joined(joined):
            if self._discard_if_idle(channel, state):
                await self._broker.unsubscribe(channel)
            return False
        state.subscribers.add(subscriber)
        if join_leave:
            if state.join_leave is None:
                state.join_leave = set()
            state.join_leave.add(subscriber)
        return True

    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        state = self._channels.get(channel)
        if state is None:
            return
        state.subscribers.discard(subscriber)
        if state.join_leave is not None:
            state.join_leave.discard(subscriber)
        if self._discard_if_idle(channel, state):
            await self._broker.unsubscribe(channel)

    def subscriber_count(self, channel: str) -> int:
        state = self._channels.get(channel)
        return len(state.subscribers) if state else 0

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    @property
    def subscription_total(self) -> int:
        """Subscribers over every channel (one connection in two channels counts twice)."""
        return sum(len(state.subscribers) for state in self._channels.values())

    async def close(self) -> None:
        for state in self._channels.values():
            if state.repair is not None:
                state.repair.cancel()
        await cancel_all(self._tasks)
        self._channels.clear()

    async def _open(self, channel: str, state: _Channel) -> None:
        # Subscribe on the broker first and buffer what arrives, then read the position:
        # reading the position first would lose whatever is published in between.
        await self._broker.subscribe(channel)
        if not state.history:
            return
        self._position_known(channel, state, await self._store.position(channel))

    def _position_known(self, channel: str, state: _Channel, position: StreamPosition) -> None:
        """Start ordered delivery from ``position``: deliver what arrived early, repair gaps."""
        state.top, state.epoch = position.offset, position.epoch
        early, state.early = state.early, []
        for pub in early:
            self._on_publication(channel, state, pub)
        if state.recheck:
            self._schedule_repair(channel, state, delay=0.0)

    @staticmethod
    async def _ready_top(state: _Channel) -> int:
        """The channel's top once known (it is unknown while the channel opens or reopens)."""
        while state.top is None:
            assert state.ready is not None
            await asyncio.shield(state.ready)
        return state.top

    async def _position_for(self, channel: str, state: _Channel, recovery: Recovery | None) -> Joined:
        top = await self._ready_top(state)
        if recovery is None:
            return Joined(StreamPosition(top, state.epoch))
        query = HistoryQuery(since=recovery.offset, limit=recovery.max_publications + 1)
        for _ in range(RECOVERY_READ_ATTEMPTS):
            page = await self._store.read(channel, query)
            if state.top is None:
                await self._ready_top(state)
                continue
            # From here to the return there is no await: ``state.top`` is what went live.
            if not _same_stream(state, page.position.epoch):
                # The stream was lost and created anew under this node: catch up with the new
                # stream (its current subscribers must recover), then read again.
                self._lost_continuity(channel, state, page.position)
                continue
            top, epoch = state.top, state.epoch
            if (recovery.epoch and recovery.epoch != epoch) or recovery.offset > top:
                return Joined(StreamPosition(top, epoch))
            pubs = [p for p in page.publications if p.offset <= top]
            last = pubs[-1].offset if pubs else recovery.offset
            if last < top:
                bridge = [p for p in state.ring or () if p.offset > last]
                if not bridge or bridge[0].offset != last + 1:
                    continue  # the ring cannot bridge the read and the live stream: read again
                pubs.extend(bridge)
            if len(pubs) > recovery.max_publications or (pubs and pubs[0].offset != recovery.offset + 1):
                return Joined(StreamPosition(top, epoch))
            return Joined(StreamPosition(recovery.offset, epoch), recovered=True, publications=tuple(pubs))
        top = await self._ready_top(state)
        return Joined(StreamPosition(top, state.epoch))

    def _release_if_idle(self, channel: str, state: _Channel) -> None:
        """On a failed subscribe: drop an idle channel and its broker subscription, in the background."""
        if not self._discard_if_idle(channel, state):
            return

        async def unsubscribe() -> None:
            if channel in self._channels:
                return  # subscribed again meanwhile: the broker subscription is in use
            try:
                await self._broker.unsubscribe(channel)
            except Exception:
                logger.warning("broker unsubscribe failed", extra={"channel": channel})

        task = asyncio.get_running_loop().create_task(unsubscribe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _discard_if_idle(self, channel: str, state: _Channel) -> bool:
        if state.subscribers or state.joining or self._channels.get(channel) is not state:
            return False
        del self._channels[channel]
        if state.repair is not None:
            state.repair.cancel()
        return True

    # ------------------------------------------------------------------ from the broker (via the node)

    def on_message(self, channel: str, message: BrokerMessage) -> None:
        state = self._channels.get(channel)
        if state is None:
            return
        match message:
            case Publication():
                if state.history and message.offset:
                    self._on_publication(channel, state, message)
                else:
                    self._fan_out(state.subscribers, encode_push(channel, "pub", message.to_wire()))
            case Join(info=info):
                if state.join_leave:
                    self._fan_out(state.join_leave, encode_push(channel, "join", {"info": info.to_wire()}))
            case Leave(info=info):
                if state.join_leave:
                    self._fan_out(state.join_leave, encode_push(channel, "leave", {"info": info.to_wire()}))

    def on_gap(self, channels: frozenset[str]) -> None:
        """The broker may have lost messages: check every affected channel against the store."""
        for channel in channels:
            state = self._channels.get(channel)
            if state is not None and state.history:
                state.recheck = True
                if state.top is not None:
                    self._schedule_repair(channel, state, delay=0.0)
                # else the channel is opening: its position may predate the gap, so the repair
                # starts once the position is known (see _open and _reopen).

    # ------------------------------------------------------------------ ordered delivery

    def _on_publication(self, channel: str, state: _Channel, pub: Publication) -> None:
        if state.top is None:
            state.early.append(pub)
            return
        if not _same_stream(state, pub.epoch):
            # The stream was removed (it expired) or lost, and made anew: offsets start over.
            self._lost_continuity(channel, state)
            return
        if pub.offset <= state.top:
            return  # delivered already
        if pub.offset > state.top + 1:
            state.pending[pub.offset] = pub
            if state.repair is None and not state.repairing:
                self._schedule_repair(channel, state, delay=self._reorder_timeout_s)
            return
        self._deliver(channel, state, pub)
        while state.top + 1 in state.pending:
            self._deliver(channel, state, state.pending.pop(state.top + 1))
        if not state.pending and not state.recheck and state.repair is not None:
            state.repair.cancel()
            state.repair = None

    def _deliver(self, channel: str, state: _Channel, pub: Publication) -> None:
        state.top = pub.offset
        if state.ring is None:
            state.ring = deque(maxlen=RING_SIZE)
        state.ring.append(pub)
        self._fan_out(state.subscribers, encode_push(channel, "pub", pub.to_wire()))

    def _fan_out(self, subscribers: set[Subscriber], frame: bytes) -> None:
        # Counted per fan-out, not per subscriber. No copy of the set: deliver() never changes it
        # (a subscriber that disconnects leaves the hub later, from its own task).
        self.deliveries += len(subscribers)
        for subscriber in subscribers:
            subscriber.deliver(frame)

    def _schedule_repair(self, channel: str, state: _Channel, *, delay: float) -> None:
        if state.repair is not None:
            state.repair.cancel()

        def start() -> None:
            state.repair = None
            if self._channels.get(channel) is not state:
                return
            if state.repairing:
                state.recheck = True  # the running repair schedules another when it ends
                return
            task = asyncio.get_running_loop().create_task(self._repair(channel, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        state.repair = asyncio.get_running_loop().call_later(delay, start)

    async def _repair(self, channel: str, state: _Channel) -> None:
        """Fill holes from the store; close subscribers if the store cannot fill them."""
        state.repairing = True
        state.recheck = False
        try:
            assert state.top is not None
            page = await self._store.read(channel, HistoryQuery(since=state.top, limit=RING_SIZE))
            if not _same_stream(state, page.position.epoch):
                self._lost_continuity(channel, state, page.position)
                return
            before = state.top
            for pub in page.publications:
                self._on_publication(channel, state, pub)
            if state.top >= page.position.offset:
                # Everything the store had is delivered; anything still pending is newer than
                # the read and gets its own reorder deadline.
                if state.pending:
                    self._schedule_repair(channel, state, delay=self._reorder_timeout_s)
            elif state.top > before:
                self._schedule_repair(channel, state, delay=0.0)  # the read hit its limit: go on
            else:
                # The store's next publication is not top + 1: the hole was trimmed away.
                self._lost_continuity(channel, state, page.position)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("hub repair failed", extra={"channel": channel})
            self._lost_continuity(channel, state)
        finally:
            state.repairing = False
            if state.recheck and self._channels.get(channel) is state and state.top is not None:
                self._schedule_repair(channel, state, delay=0.0)

    def _lost_continuity(self, channel: str, state: _Channel, position: StreamPosition | None = None) -> None:
        """Drop every positioned subscriber of the channel; they reconnect and recover."""
        logger.warning("channel continuity lost", extra={"channel": channel})
        for subscriber in tuple(state.subscribers):
            subscriber.lost_continuity(channel)
        state.pending.clear()
        state.ring = None
        if position is not None:
            state.top, state.epoch = position.offset, position.epoch
        else:
            # Unknown top: re-read it before anyone else joins this channel.
            state.top = None
            task = asyncio.get_running_loop().create_task(self._reopen(channel, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reopen(self, channel: str, state: _Channel) -> None:
        loop = asyncio.get_running_loop()
        state.ready = loop.create_future()
        try:
            position = await self._store.position(channel)
        except asyncio.CancelledError:
            state.ready.cancel()
            raise
        except Exception as exc:
            logger.exception("hub reopen failed", extra={"channel": channel})
            state.ready.set_exception(exc)
            state.ready.exception()
            with contextlib.suppress(KeyError):
                if self._channels[channel] is state:
                    del self._channels[channel]
            return
        self._position_known(channel, state, position)
        state.ready.set_result(None)
        state.ready = None


def _same_stream(state: _Channel, epoch: str) -> bool:
    """Whether ``epoch`` is that of the stream this node follows for the channel.

    An empty epoch says nothing (a channel without a stream, a publication from an older node).
    A channel that had no stream when this node opened it (no epoch) takes the first epoch it
    sees: the first publication made the stream, and offsets went on from 0 without a break.
    """
    if not epoch or epoch == state.epoch:
        return True
    if not state.epoch:
        state.epoch = epoch
        return True
    return False
