"""Per-connection outgoing bytes: written where a bare server writes, queued only behind a full socket.

Everything a connection sends (replies, pushes, pings) is already encoded to UTF-8 bytes; a
publication is encoded once for all its subscribers and every outbox receives the same bytes
object. ``Outbox.offer`` only appends to the connection's queue and marks the connection
pending with the node's ``FlushScheduler``, which a couple of event-loop turns later (one
``call_soon`` for all connections, not one per connection) writes every pending queue whose
socket takes data: what queued up meanwhile goes out as one WebSocket frame (newline-batched, up
to about ``MAX_FRAME_BYTES``), synchronously, as ``websockets.broadcast()`` does. No task wakes
for a connection whose socket is writable.

The scheduler waits ``FLUSH_AFTER_TURNS`` turns, not zero: the loop first polls the sockets once
and runs the tasks that woke, so publications that arrived in the same burst as the ones queued
join their frames instead of costing a write (a system call) each. It costs no timer and no
wait on an idle loop, where a turn takes microseconds; under a closed-loop fan-out to 1,000
subscribers it cut the server's CPU per delivery by about a quarter (docs/performance.md).

Only a connection whose socket is backed up (its transport paused writing) gets a task: one
drain waiter that writes the queue once the socket takes data again.

A client is slow when its backlog (queued bytes plus what the transport still buffers) stays
above ``limit_bytes`` for ``slow_after_s``, or grows past ``hard_limit_bytes`` at any time: the
outbox then calls ``on_slow`` (the connection closes with 3008). One large reply to a client
that reads does not make it slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from wirehub.server.deadlines import Deadlines

__all__ = [
    "BACKED_UP",
    "FLUSH_AFTER_TURNS",
    "MAX_FRAME_BYTES",
    "NOT_WRITTEN",
    "WRITTEN",
    "FlushScheduler",
    "Outbox",
    "Sink",
]

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
"""Queued messages are joined into frames of about this size, so no client sees huge frames."""

FLUSH_AFTER_TURNS = 2
"""Event-loop turns between the first offer and the writes: one in which the loop polls the
sockets and runs their protocols' callbacks, one for the tasks those woke (see the docstring)."""

NOT_WRITTEN, WRITTEN, BACKED_UP = 0, 1, 2
"""What ``Sink.send_frame`` did: nothing (the socket takes no data), wrote, or wrote and the
socket now pushes back. Plain ints: it is asked once per write of every fan-out."""

SLOW = "slow"
"""The outbox's deadline among the connection's: the backlog has been over the limit since."""


class Sink(Protocol):
    """Where an outbox writes: one WebSocket connection's text frames."""

    def writable(self) -> bool:
        """Open, and its transport takes data without pausing."""
        ...

    def open(self) -> bool:
        """Still open for sending (not closing or closed)."""
        ...

    def write(self, data: bytes) -> None:
        """Send ``data`` as one text frame, synchronously (the transport buffers what it must)."""
        ...

    @property
    def framed_alike(self) -> bool:
        """Whether a text frame for this connection is the same bytes as for any other (no extension)."""
        ...

    def write_frame(self, frame: bytes) -> None:
        """Send a text frame made by the scheduler's ``frame_of``, synchronously."""
        ...

    def send_frame(self, frame: bytes) -> int:
        """``write_frame`` if ``writable``, in one call: ``NOT_WRITTEN``, ``WRITTEN`` or ``BACKED_UP``."""
        ...

    def buffered(self) -> int:
        """Bytes written but still in the transport's buffer."""
        ...

    def backed_up(self) -> bool:
        """Whether the transport pushes back (its buffer passed the high-water mark)."""
        ...

    async def drain(self) -> None:
        """Return once the transport takes data again (or the connection is gone)."""
        ...


class FlushScheduler:
    """Writes every pending outbox once per event-loop turn: one callback for all of them.

    It also frames each message once per turn for all the outboxes that write it alone: a
    publication fanned out to a thousand subscribers is framed once, not a thousand times.
    """

    __slots__ = (
        "_frame",
        "_framed",
        "_framing",
        "_joined",
        "_joined_frame",
        "_loop",
        "_pending",
        "_scheduled",
        "_waited",
    )

    def __init__(
        self, framing: Callable[[bytes], bytes], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._framing = framing
        self._loop = loop
        self._pending: list[Outbox] = []
        self._scheduled = False
        self._waited = 0
        """Turns waited since the pending outboxes were scheduled."""
        self._framed: bytes | None = None
        """The message framed last in this turn (kept, so its id cannot be reused meanwhile)."""
        self._frame = b""
        self._joined: list[bytes] = []
        """The messages joined last in this turn (a copy), and their frame: subscribers of the same
        channels queue the same messages in a turn, and share one joined frame."""
        self._joined_frame = b""

    def mark(self, outbox: Outbox) -> None:
        self._pending.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._flush)

    def joined_frame(self, messages: list[bytes]) -> bytes:
        """``messages`` joined into one frame; the same messages queued by many outboxes are joined once.

        Comparing the lists is cheap: equal lists hold the very same bytes objects, which compare
        by identity first.
        """
        if messages != self._joined:
            self._joined = messages.copy()
            self._joined_frame = self._framing(b"\n".join(messages))
        return self._joined_frame

    def frame_of(self, message: bytes) -> bytes:
        """``message`` as a whole frame; the same message offered to many outboxes is framed once."""
        if message is not self._framed:
            self._framed, self._frame = message, self._framing(message)
        return self._frame

    def _flush(self) -> None:
        if self._waited < FLUSH_AFTER_TURNS:
            self._waited += 1
            assert self._loop is not None
            self._loop.call_soon(self._flush)
            return
        self._waited = 0
        pending, self._pending = self._pending, []
        self._scheduled = False
        for outbox in pending:
            try:
                outbox.flush()
            except Exception:
                logger.exception("outbox flush failed")
        self._framed, self._frame = None, b""
        self._joined, self._joined_frame = [], b""


class Outbox:
    """One connection's queue of encoded messages; see the module docstring."""

    __slots__ = (
        "_closed",
        "_deadlines",
        "_drainer",
        "_frames",
        "_held",
        "_pending",
        "_queued",
        "_scheduler",
        "_sink",
        "_slow_armed",
        "hard_limit_bytes",
        "limit_bytes",
        "on_slow",
        "slow_after_s",
    )

    def __init__(
        self,
        sink: Sink,
        scheduler: FlushScheduler,
        deadlines: Deadlines,
        *,
        limit_bytes: int,
        slow_after_s: float,
        hard_limit_bytes: int,
        on_slow: Callable[[int], None],
    ) -> None:
        self._sink = sink
        self._scheduler = scheduler
        self._deadlines = deadlines
        """The connection's deadlines: the slow-client one is among them."""
        self._frames: list[bytes] = []
        """A list, not a deque: an idle connection's empty list costs a tenth of an empty deque."""
        self._queued = 0
        """Bytes in ``_frames``."""
        self._pending = False
        self._held: list[bytes] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self._slow_armed = False
        """Whether the slow-client deadline is set among the connection's deadlines."""
        self.limit_bytes = limit_bytes
        self.slow_after_s = slow_after_s
        self.hard_limit_bytes = hard_limit_bytes
        self.on_slow = on_slow
        """Called with the backlog in bytes when the client turned out too slow."""

    # ------------------------------------------------------------------ in

    def offer(self, frame: bytes) -> None:
        """Queue ``frame`` to be written this event-loop turn; never blocks, never awaits."""
        if self._closed:
            return
        if self._held is not None:
            self._held.append(frame)
            return
        self._frames.append(frame)
        self._queued += len(frame)
        if not self._pending:
            self._pending = True
            self._scheduler.mark(self)
        if self._queued > self.limit_bytes:
            self._check_backlog()

    def hold(self) -> None:
        """Keep what is offered from now on aside until ``release`` (or ``drop_held``)."""
        self._held = []

    def release(self) -> None:
        """Queue what was held, after whatever was offered before ``hold``."""
        held, self._held = self._held, None
        for frame in held or ():
            self.offer(frame)

    def drop_held(self) -> None:
        if self._held is not None:
            self._held = []

    @property
    def backlog(self) -> int:
        """Bytes not yet handed to the kernel: queued here plus buffered in the transport."""
        return self._queued + self._sink.buffered()

    @property
    def empty(self) -> bool:
        return not self._frames and self._sink.buffered() == 0

    # ------------------------------------------------------------------ out

    def flush(self) -> None:
        """Write the queue now if the socket takes data; otherwise leave it to the drain waiter."""
        self._pending = False
        frames = self._frames
        if not frames or self._drainer is not None:
            return
        sink = self._sink
        if sink.framed_alike and self._queued < MAX_FRAME_BYTES:
            # The common cases, in one write: a message alone (a fan-out: framed once for every
            # subscriber that writes it alone), or what queued up this turn, joined (once for
            # every subscriber that queued the same messages).
            if len(frames) == 1:
                sent = sink.send_frame(self._scheduler.frame_of(frames[0]))
            else:
                sent = sink.send_frame(self._scheduler.joined_frame(frames))
            if sent:
                frames.clear()
                self._queued = 0
                # A socket that still takes data buffers less than its high-water mark, far below
                # the limit: the backlog needs a look only once it pushed back, or a slow deadline
                # is armed.
                if sent == BACKED_UP or self._slow_armed:
                    self._check_backlog()
                return
        elif sink.writable():
            if not self._write_while_writable():
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
            return
        if sink.open():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._discard()

    def _write_while_writable(self) -> bool:
        """Write queued frames while the socket takes them; True once the queue is empty."""
        frames, sink = self._frames, self._sink
        count, start = len(frames), 0
        while start < count and sink.writable():
            if start == count - 1 or len(frames[start]) >= MAX_FRAME_BYTES:
                frame = frames[start]  # the very bytes object offered, joined with nothing
                start += 1
                self._queued -= len(frame)
                if sink.framed_alike:
                    sink.write_frame(self._scheduler.frame_of(frame))
                else:
                    sink.write(frame)
                continue
            end, size = start, 0
            while end < count and size < MAX_FRAME_BYTES:
                size += len(frames[end])
                end += 1
            self._queued -= size
            sink.write(b"\n".join(frames[start:end]))
            start = end
        del frames[:start]
        self._after_write()
        return not frames

    def _after_write(self) -> None:
        # As in ``flush``: the backlog needs a look only once the socket pushed back.
        if self._slow_armed or self._sink.backed_up():
            self._check_backlog()

    async def _drain(self) -> None:
        """The one task of a backed-up connection: write the queue whenever the socket takes data."""
        try:
            while self._frames:
                await self._sink.drain()
                if not self._sink.open():
                    self._discard()
                    return
                self._write_while_writable()
        finally:
            self._drainer = None

    # ------------------------------------------------------------------ slow clients

    def _check_backlog(self) -> None:
        backlog = self.backlog
        if backlog <= self.limit_bytes:
            if self._slow_armed:
                self._slow_armed = False
                self._deadlines.cancel(SLOW)
        elif backlog > self.hard_limit_bytes:
            self._slow(backlog)
        elif not self._slow_armed:
            self._slow_armed = True
            self._deadlines.set(SLOW, self.slow_after_s, self._slow_deadline)

    def _slow_deadline(self) -> None:
        self._slow_armed = False
        backlog = self.backlog
        if backlog > self.limit_bytes:
            self._slow(backlog)

    def _slow(self, backlog: int) -> None:
        if not self._closed:
            self.on_slow(backlog)

    # ------------------------------------------------------------------ closing

    def close(self, *, discard: bool) -> None:
        """Take nothing more; with ``discard``, also drop what is queued (a slow client's).

        Without ``discard`` what is queued is still written; ``flushed`` says when.
        """
        if discard:
            self._discard()
        self._closed = True
        self._held = None
        if self._slow_armed:
            self._slow_armed = False
            self._deadlines.cancel(SLOW)

    def _discard(self) -> None:
        self._frames.clear()
        self._queued = 0
        if self._drainer is not None and self._drainer is not asyncio.current_task():
            self._drainer.cancel()

    async def flushed(self) -> None:
        """Return once every queued frame was handed to the transport, or the socket is gone."""
        while self._frames and self._sink.open():
            if self._drainer is not None:
                await asyncio.wait([self._drainer])
            elif not self._write_while_writable():
                await self._sink.drain()
