"""Unit tests for ``wirehub.server.connection``: timers on a manual clock, pipelined publishes.

A real node (in-process broker, SQLite in memory, real JWT verifier) serves one ``Client`` whose
WebSocket is a stand-in: frames are handed to it through a queue, what it writes to its
transport is decoded back into messages, and the test moves the clock. No wall-clock wait: the
stale, ping, pong and expiry deadlines fire when the test says the time has come.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.helpers import ManualClock, next_turn
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close
from websockets.protocol import State

from wirehub.auth.jwt import JwtVerifier, issue_token
from wirehub.broker.memory import MemoryBroker, MemoryPresence
from wirehub.channels.router import Router
from wirehub.config import load_settings
from wirehub.server.connection import Client
from wirehub.server.node import Node
from wirehub.storage.sqlite import SqliteStore

SECRET = "unit-test-secret-0123456789abcdef0123"
WAIT_S = 5.0


class FakeTransport:
    def __init__(self) -> None:
        self.data = bytearray()
        self.aborted = False
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.data += data
        self.wrote.set()

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.aborted = True


class FakeProtocol:
    def __init__(self) -> None:
        self.state = State.OPEN
        self.extensions: list[object] = []


class FakeWebSocket:
    """What a Client uses of a websockets ServerConnection, with frames fed by the test."""

    def __init__(self) -> None:
        self.protocol = FakeProtocol()
        self.transport = FakeTransport()
        self.paused = False
        self.request = None
        self.response = None
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.closed = asyncio.Event()

    async def recv(self, decode: bool = False) -> bytes:
        frame = await self.incoming.get()
        if frame is None:
            raise ConnectionClosedOK(Close(1000, ""), None)
        return frame

    async def drain(self) -> None:
        return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code
        self.protocol.state = State.CLOSED
        self.incoming.put_nowait(None)
        self.closed.set()

    def messages(self) -> list[dict[str, Any]]:
        """Every message written so far, frames unwrapped and newline batches split."""
        out: list[dict[str, Any]] = []
        data, i = bytes(self.transport.data), 0
        while i < len(data):
            length, i = data[i + 1] & 0x7F, i + 2
            if length == 126:
                (length,), i = struct.unpack("!H", data[i : i + 2]), i + 2
            elif length == 127:
                (length,), i = struct.unpack("!Q", data[i : i + 8]), i + 8
            out.extend(json.loads(line) for line in data[i : i + length].split(b"\n"))
            i += length
        return out


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    env = {
        "WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET,
        "WIREHUB_CLIENT_PING_INTERVAL_S": "25",
        "WIREHUB_CLIENT_PONG_TIMEOUT_S": "8",
        "WIREHUB_CLIENT_EXPIRED_CLOSE_DELAY_S": "0",
    }
    settings = load_settings(env=env)
    store = SqliteStore(":memory:")
    node = Node(
        settings,
        broker=MemoryBroker(),
        presence=MemoryPresence(),
        store=store,
        verifier=JwtVerifier(settings.auth),
        router=Router(),
    )
    await node.start()
    yield node
    await node.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def serving(node: Node, clock: ManualClock) -> tuple[FakeWebSocket, asyncio.Task[None]]:
    ws = FakeWebSocket()
    client = Client(node, ws, clock=clock)  # type: ignore[arg-type]
    return ws, asyncio.create_task(client.serve())


async def send(ws: FakeWebSocket, *commands: dict[str, Any]) -> None:
    ws.incoming.put_nowait(b"\n".join(json.dumps(c).encode() for c in commands))


async def until(ws: FakeWebSocket, predicate: Any) -> list[dict[str, Any]]:
    """The messages written once ``predicate(messages)`` holds (the client runs meanwhile)."""
    async with asyncio.timeout(WAIT_S):
        while not predicate(ws.messages()):
            ws.transport.wrote.clear()
            await ws.transport.wrote.wait()
    return ws.messages()


def token(user: str = "alice", ttl_s: int | None = 3600) -> str:
    return issue_token(SECRET, user=user, ttl_s=ttl_s)


async def connected(ws: FakeWebSocket) -> None:
    await send(ws, {"id": 1, "connect": {"token": token()}})
    await until(ws, lambda m: any(x.get("id") == 1 for x in m))


async def test_connection_without_connect_closes_stale_when_its_deadline_passes(
    node: Node, clock: ManualClock
) -> None:
    """No connect: nothing happens before stale_timeout_s, then the connection closes with 3502."""
    ws, task = await serving(node, clock)
    await next_turn()
    clock.advance(14)
    await next_turn()
    assert ws.close_code is None
    clock.advance(2)
    async with asyncio.timeout(WAIT_S):
        await ws.closed.wait()
        await task
    assert ws.close_code == 3502


async def test_ping_every_interval_and_3012_when_the_pong_is_late(node: Node, clock: ManualClock) -> None:
    """A ping goes out each ping interval; an answered one keeps the connection, a missed one is 3012."""
    ws, task = await serving(node, clock)
    await connected(ws)
    clock.advance(25)
    await until(ws, lambda m: m.count({}) == 1)
    await send(ws, {})  # the pong
    await next_turn()
    clock.advance(25)
    await until(ws, lambda m: m.count({}) == 2)
    clock.advance(8.5)  # no pong this time
    async with asyncio.timeout(WAIT_S):
        await ws.closed.wait()
        await task
    assert ws.close_code == 3012


async def test_expired_token_closes_3005_at_expiry(node: Node, clock: ManualClock) -> None:
    """A connection whose token expires in 60 s stays open while it answers pings, then closes with 3005."""
    ws, task = await serving(node, clock)
    await send(ws, {"id": 1, "connect": {"token": token(ttl_s=60)}})
    reply = (await until(ws, lambda m: any(x.get("id") == 1 for x in m)))[0]
    assert reply["connect"]["expires"] is True
    for pings in (1, 2):
        clock.advance(25)
        await until(ws, lambda m, pings=pings: m.count({}) == pings)
        await send(ws, {})
        await next_turn()
    assert ws.close_code is None
    clock.advance(11)  # 61 s after connect; expired_close_delay_s is 0 here
    async with asyncio.timeout(WAIT_S):
        await ws.closed.wait()
        await task
    assert ws.close_code == 3005


async def test_pipelined_publishes_are_answered_in_order_before_a_later_command(
    node: Node, clock: ManualClock
) -> None:
    """Twenty publishes to a history channel in one frame, then history: every publish is answered,
    and history (which waits for them) has all twenty in order."""
    ws, task = await serving(node, clock)
    await connected(ws)
    await send(ws, {"id": 2, "subscribe": {"channel": "chat:pipe"}})
    await until(ws, lambda m: any(x.get("id") == 2 for x in m))
    publishes = [{"id": 10 + n, "publish": {"channel": "chat:pipe", "data": n}} for n in range(20)]
    await send(ws, *publishes, {"id": 99, "history": {"channel": "chat:pipe", "limit": -1}})
    messages = await until(ws, lambda m: any(x.get("id") == 99 for x in m))

    replies = {m["id"]: m for m in messages if "id" in m}
    assert all(replies[10 + n] == {"id": 10 + n, "publish": {}} for n in range(20))
    history = replies[99]["history"]["publications"]
    assert [p["data"] for p in history] == list(range(20))
    assert [p["offset"] for p in history] == list(range(1, 21))
    pushes = [m["push"]["pub"]["offset"] for m in messages if "pub" in m.get("push", {})]
    assert pushes == list(range(1, 21))
    ws.incoming.put_nowait(None)
    await task
