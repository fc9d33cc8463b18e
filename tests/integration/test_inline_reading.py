"""Frames the listener hands straight to their client (``Client.take_frame``) keep their order.

An in-process gateway (in-process broker, SQLite in memory) listens on a loopback port; a raw
WebSocket client writes several frames in one write, so that the gateway reads them in one go;
the ``held`` namespace's ``on_publish`` waits until the test lets it go. What arrives while a
frame's command waits queues behind it: replies keep the commands' order, and so do pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from tests.helpers import eventually
from tests.raw_client import RawClient
from wirehub.auth.jwt import JwtVerifier, issue_token
from wirehub.broker.memory import MemoryBroker, MemoryPresence
from wirehub.channels.context import Context
from wirehub.channels.handler import ChannelHandler
from wirehub.channels.router import Router
from wirehub.config import load_settings
from wirehub.server.gateway import Gateway
from wirehub.server.node import Node
from wirehub.storage.sqlite import SqliteStore
from wirehub.types import JSON

SECRET = "inline-test-secret-0123456789abcdef0123"
WAIT_S = 10.0


class Held(ChannelHandler):
    """``on_publish`` waits for ``gate``; ``entered`` is set once a publish waits there."""

    entered = asyncio.Event()
    gate = asyncio.Event()

    async def on_publish(self, ctx: Context, data: JSON) -> JSON:
        type(self).entered.set()
        await type(self).gate.wait()
        return data


CONFIG = f"""
[server]
host = "127.0.0.1"
port = 0
[auth]
token_hmac_secret = "{SECRET}"
[channel_defaults]
allow_subscribe_for_client = true
allow_publish_for_client = true
[namespaces.held]
allow_publish_for_client = true
"""


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Node, str]]:
    Held.entered, Held.gate = asyncio.Event(), asyncio.Event()
    router = Router()
    router.namespace("held")(Held)
    config = tmp_path / "wirehub.toml"
    config.write_text(CONFIG)
    settings = load_settings(config, env={})
    node = Node(
        settings,
        broker=MemoryBroker(),
        presence=MemoryPresence(),
        store=SqliteStore(":memory:"),
        verifier=JwtVerifier(settings.auth),
        router=router,
    )
    await node.start()
    gateway = Gateway(node)
    await gateway.start()
    try:
        yield node, f"ws://127.0.0.1:{gateway.port}{settings.server.ws_path}"
    finally:
        Held.gate.set()
        await gateway.shutdown(WAIT_S)
        await node.close()


def frames(*commands: dict[str, Any]) -> bytes:
    """One client text frame per command, masked as a client must, concatenated for one write."""
    return b"".join(
        Frame(Opcode.TEXT, json.dumps(command).encode()).serialize(mask=True, extensions=[])
        for command in commands
    )


async def connected(url: str, channel: str) -> RawClient:
    """A client subscribed to ``channel`` whose next frame the gateway takes at once.

    The subscribe waits (in a continuation), so the frame after it is the reader's; once that
    one, a publish, is answered, the reader waits for frames again with nothing queued.
    """
    client = await RawClient.open(url)
    assert "connect" in await client.connect(issue_token(SECRET, user="alice", ttl_s=3600))
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    assert "publish" in await client.call("publish", {"channel": "elsewhere", "data": None})
    return client


def publish(cmd_id: int, channel: str, n: int) -> dict[str, Any]:
    return {"id": cmd_id, "publish": {"channel": channel, "data": {"n": n}}}


async def collect(client: RawClient, replies: list[int], pushes: list[int], *, until: int) -> None:
    """Read until ``replies`` and ``pushes`` hold ``until`` entries between them (no error reply)."""
    async with asyncio.timeout(WAIT_S):
        while len(replies) + len(pushes) < until:
            message = await client.receive()
            assert "error" not in message, message
            if "id" in message:
                replies.append(message["id"])
            elif "push" in message:
                pushes.append(message["push"]["pub"]["data"]["n"])


async def test_frames_read_while_a_command_waits_run_after_it_in_order(gateway: tuple[Node, str]) -> None:
    """A waiting publish, then two more frames read with it: replies 100, 101, 102 in that order."""
    _, url = gateway
    client = await connected(url, "room")
    client.ws.transport.write(
        frames(publish(100, "held:x", 0), publish(101, "room", 1), publish(102, "room", 2))
    )
    async with asyncio.timeout(WAIT_S):
        await Held.entered.wait()
    Held.gate.set()
    replies: list[int] = []
    pushes: list[int] = []
    await collect(client, replies, pushes, until=5)
    assert replies == [100, 101, 102]
    assert pushes == [1, 2]
    await client.close()


async def test_a_frame_taken_at_once_runs_its_lines_in_order_around_a_waiting_one(
    gateway: tuple[Node, str],
) -> None:
    """One frame of three lines, the middle one waiting: the first is answered while it waits; the
    last one, and the frame after, run once it is done."""
    _, url = gateway
    client = await connected(url, "room")
    lines = b"\n".join(
        json.dumps(command).encode()
        for command in (publish(200, "room", 1), publish(201, "held:x", 0), publish(202, "room", 2))
    )
    client.ws.transport.write(
        Frame(Opcode.TEXT, lines).serialize(mask=True, extensions=[]) + frames(publish(203, "room", 3))
    )
    async with asyncio.timeout(WAIT_S):
        await Held.entered.wait()
    replies: list[int] = []
    pushes: list[int] = []
    await collect(client, replies, pushes, until=2)  # the first line, answered while the second waits
    assert (replies, pushes) == ([200], [1])
    Held.gate.set()
    await collect(client, replies, pushes, until=7)
    assert replies == [200, 201, 202, 203]
    assert pushes == [1, 2, 3]
    await client.close()


async def test_a_client_that_leaves_while_its_command_waits_is_cleaned_up_after_it(
    gateway: tuple[Node, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The peer goes away mid-command: the command finishes, the client leaves, nothing fails."""
    node, url = gateway
    client = await connected(url, "room")
    client.ws.transport.write(frames(publish(300, "held:x", 0)))
    async with asyncio.timeout(WAIT_S):
        await Held.entered.wait()
    client.ws.transport.abort()

    async def gone() -> bool:
        return node.client_count == 0

    with caplog.at_level(logging.ERROR):
        Held.gate.set()
        await eventually(gone, timeout_s=WAIT_S)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_whole_frame_after_a_fragmented_message_waits_for_it(gateway: tuple[Node, str]) -> None:
    """A message in two fragments, then a whole frame, in one write: they are answered in that order."""
    _, url = gateway
    client = await connected(url, "room")
    fragmented = json.dumps(publish(400, "room", 1)).encode()
    head, tail = fragmented[:10], fragmented[10:]
    client.ws.transport.write(
        Frame(Opcode.TEXT, head, fin=False).serialize(mask=True, extensions=[])
        + Frame(Opcode.CONT, tail).serialize(mask=True, extensions=[])
        + frames(publish(401, "room", 2))
    )
    replies: list[int] = []
    pushes: list[int] = []
    await collect(client, replies, pushes, until=4)
    assert replies == [400, 401]
    assert pushes == [1, 2]
    await client.close()


async def test_a_frame_read_behind_one_that_closes_the_connection_is_not_run(
    gateway: tuple[Node, str],
) -> None:
    """A refresh with a bad token (3500), then a publish, in one write: the publish is never run."""
    _, url = gateway
    client = await connected(url, "room")
    client.ws.transport.write(
        frames({"id": 500, "refresh": {"token": "not-a-token"}}, publish(501, "room", 1))
    )
    seen: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(WAIT_S):
            while True:
                seen.append(await client.receive())
    assert [message for message in seen if message.get("id") == 501 or "push" in message] == []
    assert client.ws.close_code == 3500
