"""Unit tests for ``wirehub.server.outbox``: the write fast path, backed-up sockets, slow clients.

The sink stands in for a WebSocket connection's transport: it records what is written, and the
test decides when it is writable (a paused transport) and how much it still buffers.
"""

from __future__ import annotations

import asyncio

import pytest
from tests.helpers import ManualClock, next_turn, writes_done
from websockets.frames import Frame, Opcode

from wirehub.server.deadlines import Deadlines
from wirehub.server.outbox import (
    BACKED_UP,
    FLUSH_AFTER_TURNS,
    MAX_FRAME_BYTES,
    NOT_WRITTEN,
    WRITTEN,
    FlushScheduler,
    Outbox,
)
from wirehub.server.sink import text_frame

LIMIT = 1000


class FakeSink:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.frames: list[bytes] = []
        """What write_frame was given (the scheduler's framing of lone messages)."""
        self.alike = False
        self.write_pauses_with = 0
        """When set, every write stays in the buffer and pauses the transport."""
        self.paused = False
        self.is_open = True
        self.in_buffer = 0
        self._resumed = asyncio.Event()

    def open(self) -> bool:
        return self.is_open

    def writable(self) -> bool:
        return self.is_open and not self.paused

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self._buffer(len(data))

    def _buffer(self, size: int) -> None:
        if self.write_pauses_with:
            self.in_buffer += size  # as a transport past its high-water mark: buffered, paused
            self.paused = True

    @property
    def framed_alike(self) -> bool:
        return self.alike

    def write_frame(self, frame: bytes) -> None:
        assert frame.startswith(b"<frame>")
        self.frames.append(frame)
        self.written.append(frame.removeprefix(b"<frame>"))
        self._buffer(len(frame) - len(b"<frame>"))

    def send_frame(self, frame: bytes) -> int:
        if not self.writable():
            return NOT_WRITTEN
        self.write_frame(frame)
        return BACKED_UP if self.paused else WRITTEN

    def buffered(self) -> int:
        return self.in_buffer

    def backed_up(self) -> bool:
        return self.paused

    async def drain(self) -> None:
        await self._resumed.wait()
        self._resumed.clear()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.write_pauses_with = 0
        self._resumed.set()


def framing(message: bytes) -> bytes:
    return b"<frame>" + message


class Slow:
    def __init__(self) -> None:
        self.backlogs: list[int] = []
        self.called = asyncio.Event()

    def __call__(self, backlog: int) -> None:
        self.backlogs.append(backlog)
        self.called.set()


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def slow() -> Slow:
    return Slow()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def outbox(
    sink: FakeSink, slow: Slow, clock: ManualClock | None = None, *, slow_after_s: float = 60.0
) -> Outbox:
    return Outbox(
        sink,
        FlushScheduler(framing),
        Deadlines(clock or ManualClock()),
        limit_bytes=LIMIT,
        slow_after_s=slow_after_s,
        hard_limit_bytes=4 * LIMIT,
        on_slow=slow,
    )


def outboxes_on(scheduler: FlushScheduler, sinks: list[FakeSink], slow: Slow) -> list[Outbox]:
    """One outbox per sink, all served by ``scheduler`` (as the connections of one node are)."""
    return [
        Outbox(
            s,
            scheduler,
            Deadlines(ManualClock()),
            limit_bytes=LIMIT,
            slow_after_s=60,
            hard_limit_bytes=4 * LIMIT,
            on_slow=slow,
        )
        for s in sinks
    ]


def alike_sinks(framed: list[bytes], count: int) -> tuple[FlushScheduler, list[FakeSink]]:
    """Sinks whose frames are alike (no extension) and a scheduler that records what it frames."""

    def counting(message: bytes) -> bytes:
        framed.append(message)
        return b"<frame>" + message

    sinks = [FakeSink() for _ in range(count)]
    for s in sinks:
        s.alike = True
    return FlushScheduler(counting), sinks


async def test_offer_is_written_turns_later_as_the_very_bytes_offered(sink: FakeSink, slow: Slow) -> None:
    """One offered message is written a couple of turns later, as the same bytes object, no task."""
    box = outbox(sink, slow)
    frame = b'{"push":{"channel":"c","pub":{"data":1}}}'
    tasks_before = len(asyncio.all_tasks())
    box.offer(frame)
    assert sink.written == []  # not during the offer: once the loop polled the sockets
    await writes_done()
    assert sink.written == [frame]
    assert sink.written[0] is frame
    assert len(asyncio.all_tasks()) == tasks_before


async def test_what_arrives_while_the_scheduler_waits_joins_the_same_frame(
    sink: FakeSink, slow: Slow
) -> None:
    """Offers in the turns before the write (the rest of a burst) cost no write of their own."""
    box = outbox(sink, slow)
    box.offer(b"a")
    for _ in range(FLUSH_AFTER_TURNS):
        await next_turn()
        assert sink.written == []
    box.offer(b"b")
    await next_turn()
    assert sink.written == [b"a\nb"]


async def test_a_message_offered_to_many_outboxes_is_framed_once_per_turn(slow: Slow) -> None:
    """Where frames are alike (no extension), one message to many sockets is framed once."""
    framed: list[bytes] = []
    scheduler, sinks = alike_sinks(framed, 3)
    boxes = outboxes_on(scheduler, sinks, slow)
    publication = b'{"push":{"channel":"c","pub":{"data":1}}}'
    for box in boxes:
        box.offer(publication)
    await writes_done()
    assert framed == [publication]
    assert [s.frames for s in sinks] == [[b"<frame>" + publication]] * 3
    assert sinks[0].frames[0] is sinks[1].frames[0] is sinks[2].frames[0]


async def test_one_scheduler_callback_serves_every_outbox_and_joins_each_queue(slow: Slow) -> None:
    """Many outboxes, several offers each in one turn: each writes one newline-joined frame."""
    scheduler = FlushScheduler(framing)
    sinks = [FakeSink() for _ in range(3)]
    boxes = outboxes_on(scheduler, sinks, slow)
    for box in boxes:
        box.offer(b"a")
        box.offer(b"b")
    await writes_done()
    assert [s.written for s in sinks] == [[b"a\nb"]] * 3


async def test_outboxes_that_queued_the_same_messages_share_one_joined_frame(slow: Slow) -> None:
    """Subscribers of the same channels queue the same publications in a turn: joined and framed once."""
    framed: list[bytes] = []
    scheduler, sinks = alike_sinks(framed, 4)
    boxes = outboxes_on(scheduler, sinks, slow)
    first, second, other = b'{"pub":1}', b'{"pub":2}', b'{"reply":3}'
    for box in boxes[:3]:
        box.offer(first)
        box.offer(second)
    boxes[3].offer(first)
    boxes[3].offer(other)
    await writes_done()
    assert framed == [first + b"\n" + second, first + b"\n" + other]
    assert sinks[0].frames[0] is sinks[1].frames[0] is sinks[2].frames[0]
    assert [s.written for s in sinks] == [[first + b"\n" + second]] * 3 + [[first + b"\n" + other]]


async def test_long_queues_are_cut_into_frames_of_about_max_frame_bytes(sink: FakeSink, slow: Slow) -> None:
    """A queue longer than MAX_FRAME_BYTES goes out as several frames, none much larger."""
    box = Outbox(
        sink,
        FlushScheduler(framing),
        Deadlines(ManualClock()),
        limit_bytes=10**9,
        slow_after_s=60,
        hard_limit_bytes=10**9,
        on_slow=slow,
    )
    part = b"x" * 1000
    for _ in range(200):
        box.offer(part)
    await writes_done()
    assert b"".join(sink.written).replace(b"\n", b"") == part * 200
    assert len(sink.written) > 1
    assert all(len(frame) <= MAX_FRAME_BYTES + len(part) + 100 for frame in sink.written)


async def test_backed_up_socket_queues_and_one_drain_waiter_writes_when_it_resumes(
    sink: FakeSink, slow: Slow
) -> None:
    """While the transport is paused nothing is written; once it resumes the queue goes out in order."""
    box = outbox(sink, slow)
    sink.pause()
    box.offer(b"1")
    await writes_done()
    box.offer(b"2")
    await writes_done()
    assert sink.written == []
    assert box.backlog == 2
    sink.resume()
    await box.flushed()
    assert b"\n".join(sink.written) == b"1\n2"
    assert box.backlog == 0


async def test_backlog_past_the_hard_limit_is_slow_at_once(sink: FakeSink, slow: Slow) -> None:
    """A backed-up client whose queue passes four times the limit is reported slow immediately."""
    box = outbox(sink, slow)
    sink.pause()
    for _ in range(5):
        box.offer(b"x" * LIMIT)
    assert slow.backlogs
    assert slow.backlogs[0] > 4 * LIMIT


async def test_backlog_over_the_limit_for_the_timeout_is_slow(
    sink: FakeSink, slow: Slow, clock: ManualClock
) -> None:
    """A backlog that stays above the limit is reported once slow_after_s has passed, not before."""
    box = outbox(sink, slow, clock, slow_after_s=2.0)
    sink.pause()
    box.offer(b"x" * (2 * LIMIT))
    clock.advance(1.9)
    assert slow.backlogs == []
    clock.advance(0.2)
    assert slow.backlogs == [2 * LIMIT]


async def test_large_reply_to_a_reading_client_is_not_slow(
    sink: FakeSink, slow: Slow, clock: ManualClock
) -> None:
    """A reply over the limit that the socket takes, and the client reads, never reports it slow."""
    box = outbox(sink, slow, clock, slow_after_s=2.0)
    sink.write_pauses_with = 3 * LIMIT  # the transport buffers the reply and pushes back
    box.offer(b"y" * (3 * LIMIT))
    await writes_done()
    assert box.backlog == 3 * LIMIT  # over the limit: the slow deadline is armed
    box.offer(b"z")  # queued behind the backed-up socket
    clock.advance(1.0)
    sink.in_buffer = 0  # the client read it all
    sink.resume()
    await box.flushed()
    clock.advance(5.0)
    assert slow.backlogs == []
    assert sink.written[-1] == b"z"


async def test_close_with_discard_while_backed_up_drops_the_queue(sink: FakeSink, slow: Slow) -> None:
    """A slow client's queue is dropped: nothing more is written, flushed() returns, offers are ignored."""
    box = outbox(sink, slow)
    sink.pause()
    box.offer(b"queued")
    await writes_done()
    box.close(discard=True)
    box.offer(b"after")
    sink.resume()
    await box.flushed()
    await writes_done()
    assert sink.written == []
    assert box.backlog == 0


async def test_close_without_discard_still_writes_what_was_queued(sink: FakeSink, slow: Slow) -> None:
    """A normal close writes the queue first (flushed() waits for it) and takes nothing new."""
    box = outbox(sink, slow)
    sink.pause()
    box.offer(b"last words")
    box.close(discard=False)
    box.offer(b"ignored")
    sink.resume()
    await box.flushed()
    assert sink.written == [b"last words"]


async def test_held_messages_follow_what_was_queued_before(sink: FakeSink, slow: Slow) -> None:
    """hold() keeps offers aside; release() queues them after the earlier ones, in order."""
    box = outbox(sink, slow)
    box.hold()
    box.offer(b"push")
    box.release()
    box.offer(b"later")
    await writes_done()
    assert sink.written == [b"push\nlater"]
    box.hold()
    box.offer(b"dropped")
    box.drop_held()
    box.release()
    await writes_done()
    assert sink.written == [b"push\nlater"]


async def test_closed_socket_discards_the_queue(sink: FakeSink, slow: Slow) -> None:
    """When the connection is gone, queued messages are dropped without a write."""
    box = outbox(sink, slow)
    box.offer(b"x")
    sink.is_open = False
    await writes_done()
    assert sink.written == []
    assert box.backlog == 0


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 100_000])
def test_text_frame_is_what_websockets_frames(length: int) -> None:
    """The sink's own framing writes exactly the bytes websockets writes for a server text frame."""
    payload = b"x" * length
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)
