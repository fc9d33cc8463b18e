"""Abusive clients against a real ``wirehub serve`` process: the node keeps serving everyone else.

A client that floods commands and never reads the replies, clients that open a TCP connection
and stall in the middle of the WebSocket handshake, and a burst of 1,000 connections from one
user. Each test runs a well-behaved client alongside and checks that it is served throughout,
and that the abuser gets the limit's own answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed

from tests.gateway_process import GatewayProcess
from tests.helpers import running_gateway, tiny_buffer_socket, unique
from tests.raw_client import RawClient

TIMEOUT_S = 30.0

NAMESPACES = """
[namespaces.plain]
allow_subscribe_for_client = true
allow_publish_for_client = true

[namespaces.chat]
history_size = 100
history_ttl_s = 3600.0
allow_subscribe_for_client = true
allow_publish_for_client = true
allow_history_for_client = true
"""


def gateway(
    workdir: Path, config: str = NAMESPACES, **env: str
) -> AbstractAsyncContextManager[GatewayProcess]:
    # The heartbeat publishes back to back, faster than the default command rate: that limit has
    # its own tests (test_limits.py), so it is off here.
    return running_gateway(workdir, config=config, env={"WIREHUB_CLIENT_COMMAND_RATE_PER_S": "0"} | env)


class Heartbeat:
    """A well-behaved client that publishes and receives in a loop while the abuse goes on."""

    def __init__(self, client: RawClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.rounds = 0
        self._stop = asyncio.Event()

    @classmethod
    async def start(cls, gw: GatewayProcess) -> tuple[Heartbeat, asyncio.Task[None]]:
        client = await RawClient.open(gw.ws_url)
        assert "connect" in await client.connect(gw.token(unique("healthy-")))
        channel = unique("plain:heartbeat-")
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
        beat = cls(client, channel)
        return beat, asyncio.create_task(beat._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            reply = await self.client.call("publish", {"channel": self.channel, "data": {"n": self.rounds}})
            assert reply == {"id": reply["id"], "publish": {}}, reply
            push = await self.client.push()
            assert push["pub"]["data"] == {"n": self.rounds}, push
            self.rounds += 1

    async def stop(self, task: asyncio.Task[None]) -> int:
        """Stop after the round in flight; re-raise whatever failed; return the rounds done."""
        self._stop.set()
        async with asyncio.timeout(TIMEOUT_S):
            await task
        await self.client.close()
        return self.rounds


# --------------------------------------------------------------------------- a client that never reads


async def test_client_that_floods_commands_and_never_reads_is_closed_with_3008(tmp_path: Path) -> None:
    """Replies pile up in the bounded write queue of a client that never reads; it gets 3008."""
    queue_bytes = 65536
    async with gateway(
        tmp_path,
        WIREHUB_CLIENT_MAX_MESSAGE_BYTES=str(queue_bytes),
        WIREHUB_CLIENT_WRITE_QUEUE_MAX_BYTES=str(queue_bytes),
    ) as gw:
        # A channel whose history reply is ~48 KiB: every history command adds that to the queue.
        channel = unique("chat:big-")
        writer = await RawClient.open(gw.ws_url)
        assert "connect" in await writer.connect(gw.token("writer"))
        for n in range(3):
            reply = await writer.call("publish", {"channel": channel, "data": {"n": n, "fill": "x" * 16000}})
            assert "publish" in reply, reply
        await writer.close()

        beat, beating = await Heartbeat.start(gw)
        sloth = await _non_reading_client(gw)
        history = json.dumps({"history": {"channel": channel, "limit": -1}})
        # Far more than socket buffers hold: ~48 MiB of replies the client never reads.
        for first in range(1000, 2000, 100):
            await sloth.send_raw("\n".join(f'{{"id": {i}, {history[1:]}' for i in range(first, first + 100)))
        code, _ = await sloth.closed()
        assert code == 3008
        assert await beat.stop(beating) > 0


async def _non_reading_client(gw: GatewayProcess) -> RawClient:
    """A connected client with tiny receive buffers that holds at most one frame until it reads."""
    sock = await tiny_buffer_socket(gw.ws_url)
    client = await RawClient.open(gw.ws_url, sock=sock, max_queue=1, ping_interval=None)
    assert "connect" in await client.connect(gw.token("sloth"))
    return client


# --------------------------------------------------------------------------- stalled handshakes


async def test_stalled_handshakes_are_dropped_while_others_are_served(tmp_path: Path) -> None:
    """Clients that stop halfway through the HTTP upgrade are dropped after the handshake timeout."""
    async with gateway(tmp_path, WIREHUB_SERVER_HANDSHAKE_TIMEOUT_S="1") as gw:
        url = urlsplit(gw.ws_url)
        assert url.hostname is not None
        assert url.port is not None
        stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for n in range(100):
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
            if n % 2:  # half send part of the request line and headers, half send nothing at all
                writer.write(f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}\r\nUpgrade: web".encode())
                await writer.drain()
            stalled.append((reader, writer))
        beat, beating = await Heartbeat.start(gw)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                for reader, _ in stalled:
                    # The server closes the socket: read() reaches EOF (b"") instead of waiting forever.
                    while await reader.read(4096):
                        pass
        finally:
            for _, writer in stalled:
                writer.close()
        assert await beat.stop(beating) > 0


# --------------------------------------------------------------------------- a burst from one user


async def test_burst_of_thousand_connections_from_one_user_gets_3504_beyond_limit(tmp_path: Path) -> None:
    """1,000 concurrent connects of one user: exactly the limit succeed, the rest get 3504."""
    limit = 10
    attempts = 1000
    async with gateway(
        tmp_path,
        WIREHUB_CLIENT_USER_CONNECTION_LIMIT=str(limit),
        # The handshake rate limit is not under test here: keep it out of the way.
        WIREHUB_CLIENT_CONNECTION_BURST="10000",
    ) as gw:
        beat, beating = await Heartbeat.start(gw)
        token = gw.token("swarm")
        kept: list[RawClient] = []
        gate = asyncio.Semaphore(100)  # at most this many handshakes in flight from the test

        async def attempt() -> Any:
            async with gate:
                client = await RawClient.open(gw.ws_url)
            try:
                reply = await client.connect(token)
            except ConnectionClosed:
                code, _ = await client.closed()
                return code
            kept.append(client)
            return "connected" if "connect" in reply else reply

        try:
            async with asyncio.timeout(120):
                outcomes = await asyncio.gather(*(attempt() for _ in range(attempts)))
            assert outcomes.count("connected") == limit
            assert outcomes.count(3504) == attempts - limit
            assert await beat.stop(beating) > 0
            # Another user is not affected by the swarm's limit.
            other = await RawClient.open(gw.ws_url)
            assert "connect" in await other.connect(gw.token("bystander"))
            await other.close()
        finally:
            for client in kept:
                await client.close()


@pytest.fixture(scope="module")
async def plain_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """The abuse tests' gateway with no limit changed, shared by the tests that change none."""
    async with gateway(tmp_path_factory.mktemp("abuse")) as gw:
        yield gw


@pytest.mark.parametrize(
    "frames", [["{"], ["\x00" * 100], ['{"id":1,"connect":{"token":' + '"a"' * 10 + "}}"]]
)
async def test_garbage_before_connect_is_refused_while_others_are_served(
    plain_gateway: GatewayProcess, frames: list[str]
) -> None:
    """Garbage as the first frame closes that connection with 3501; the heartbeat carries on."""
    beat, beating = await Heartbeat.start(plain_gateway)
    for _ in range(50):
        client = await RawClient.open(plain_gateway.ws_url)
        for frame in frames:
            await client.send_raw(frame)
        code, _ = await client.closed()
        assert code == 3501
    assert await beat.stop(beating) > 0
