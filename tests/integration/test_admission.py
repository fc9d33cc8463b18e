"""The listeners under connection floods: caps per address and in total, deadlines, fair handshakes.

Real gateway processes; the flood comes from a second loopback address (127.0.0.2), so that an
ordinary client on 127.0.0.1 stands for "everybody else". Every count and wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.raw_client import RawClient

FLOOD_FROM = "127.0.0.2"
WAIT_S = 10.0

CAPPED = {
    "WIREHUB_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "40",
    "WIREHUB_HTTP_REQUEST_TIMEOUT_S": "1",
    "WIREHUB_SERVER_HANDSHAKE_TIMEOUT_S": "1",
}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@contextlib.asynccontextmanager
async def slow_clients(port: int, count: int, head: bytes) -> AsyncIterator[list[asyncio.StreamReader]]:
    """``count`` TCP connections from FLOOD_FROM that send ``head`` and then nothing."""
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    try:
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(FLOOD_FROM, 0))
            if head:
                writer.write(head)
            readers.append(reader)
            writers.append(writer)
        yield readers
    finally:
        for writer in writers:
            writer.transport.abort()


async def closed_soon(reader: asyncio.StreamReader, within_s: float) -> bytes | None:
    """What the server sent before closing, or None if it kept the connection past ``within_s``."""
    try:
        async with asyncio.timeout(within_s):
            return await reader.read()
    except TimeoutError:
        return None
    except ConnectionError:
        return b""


async def health_ok(gateway: GatewayProcess, *, local: str = "127.0.0.1") -> None:
    """/health answers 200 to a client connecting from ``local``."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    async with (
        asyncio.timeout(WAIT_S),
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{gateway.http_url}/health") as resp,
    ):
        assert resp.status == 200


async def test_http_port_drops_connections_past_the_cap_and_slow_heads_at_the_deadline(
    start_gateway: StartGateway,
) -> None:
    """100 slowloris connections from one address: 60 dropped at once, 40 answered 408 after the
    deadline; /health from another address answers all along, and the address may connect again."""
    gateway = await start_gateway(env=CAPPED)
    port = _port(gateway.http_url)
    async with slow_clients(port, 100, b"GET /health HTTP/1.1\r\nHost: x\r\n") as readers:
        outcomes = await asyncio.gather(*(closed_soon(r, 0.5) for r in readers))
        dropped = [o for o in outcomes if o is not None]
        kept = [r for r, o in zip(readers, outcomes, strict=True) if o is None]
        assert len(dropped) == 60
        assert all(o == b"" for o in dropped)
        assert len(kept) == 40
        await health_ok(gateway)
        timed_out = await asyncio.gather(*(closed_soon(r, WAIT_S) for r in kept))
        assert all(o is not None and o.startswith(b"HTTP/1.1 408") for o in timed_out)
    # The flood is over: its address is counted no more and may connect again.
    await health_ok(gateway, local=FLOOD_FROM)


async def test_websocket_port_drops_connections_past_the_cap_and_stalled_handshakes(
    start_gateway: StartGateway,
) -> None:
    """100 connections that never shake hands from one address: 60 dropped at once, 40 after the
    handshake deadline; a client from another address connects meanwhile."""
    gateway = await start_gateway(env=CAPPED)
    port = _port(gateway.ws_url)
    async with slow_clients(port, 100, b"") as readers:
        outcomes = await asyncio.gather(*(closed_soon(r, 0.5) for r in readers))
        kept = [r for r, o in zip(readers, outcomes, strict=True) if o is None]
        assert len(kept) == 40
        client = await RawClient.open(gateway.ws_url)
        try:
            assert "connect" in await client.connect(gateway.token("ordinary"))
        finally:
            await client.close()
        assert all(o is not None for o in await asyncio.gather(*(closed_soon(r, WAIT_S) for r in kept)))


async def test_one_address_cannot_take_the_handshake_budget(start_gateway: StartGateway) -> None:
    """Handshakes from a flooding address get 503 past its own bucket; another address still connects."""
    env = {
        "WIREHUB_CLIENT_CONNECTION_RATE_PER_ADDRESS_PER_S": "1",
        "WIREHUB_CLIENT_CONNECTION_BURST_PER_ADDRESS": "5",
    }
    gateway = await start_gateway(env=env)
    statuses = []
    for _ in range(20):
        try:
            async with connect(gateway.ws_url, local_addr=(FLOOD_FROM, 0)):
                statuses.append(101)
        except InvalidStatus as exc:
            statuses.append(exc.response.status_code)
            retry_after = exc.response.headers["Retry-After"]
    refused = statuses.count(503)
    assert statuses.count(101) + refused == 20
    assert retry_after == "1"
    assert refused >= 14  # 5 in the burst, at most one more a second
    for _ in range(5):
        async with connect(gateway.ws_url):  # 127.0.0.1: a bucket of its own
            pass


async def test_forwarded_address_is_the_handshake_bucket_behind_a_trusted_proxy(
    start_gateway: StartGateway,
) -> None:
    """Behind a trusted proxy each X-Forwarded-For address has a bucket; others' headers mean nothing."""
    env = {
        "WIREHUB_CLIENT_CONNECTION_RATE_PER_ADDRESS_PER_S": "1",
        "WIREHUB_CLIENT_CONNECTION_BURST_PER_ADDRESS": "3",
        "WIREHUB_SERVER_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    gateway = await start_gateway(env=env)

    async def attempts(forwarded_for: str, count: int, local: str = "127.0.0.1") -> int:
        refused = 0
        for _ in range(count):
            try:
                async with connect(
                    gateway.ws_url,
                    additional_headers={"X-Forwarded-For": forwarded_for},
                    local_addr=(local, 0),
                ):
                    pass
            except InvalidStatus:
                refused += 1
        return refused

    assert await attempts("10.0.0.1", 10) >= 6
    assert await attempts("10.0.0.2", 3) == 0  # another client behind the same proxy
    # 127.0.0.2 is no trusted proxy: its header means nothing, its own address is the bucket.
    assert await attempts("10.0.0.3", 10, local=FLOOD_FROM) >= 6
