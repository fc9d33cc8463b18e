"""The gateway starts on its defaults and a real SDK client can talk to it."""

from __future__ import annotations

import asyncio
import signal

from centrifuge import Client

from tests.gateway_process import GatewayProcess
from tests.raw_client import RawClient


async def test_gateway_serves_sdk_publish_and_history(gateway: GatewayProcess) -> None:
    """A centrifuge-python client publishes to chat and reads it back from history."""
    client = Client(gateway.ws_url, token=gateway.token("alice"))
    sub = client.new_subscription("chat:smoke", recoverable=True, positioned=True)
    await client.connect()
    await sub.subscribe()
    await sub.publish({"text": "hello"})
    history = await sub.history(limit=-1)
    await client.disconnect()
    assert [p.data for p in history.publications] == [{"text": "hello"}]
    assert history.offset == 1


async def test_gateway_closes_clients_with_3001_on_sigterm(gateway: GatewayProcess) -> None:
    """SIGTERM closes every client with 3001 (shutdown) and the process exits cleanly."""
    raw = await RawClient.open(gateway.ws_url)
    reply = await raw.connect(gateway.token("bob"))
    assert "connect" in reply
    exit_code = asyncio.create_task(gateway.stop(signal.SIGTERM))
    code, reason = await raw.closed()
    assert (code, reason) == (3001, "shutdown")
    assert await exit_code == 0
