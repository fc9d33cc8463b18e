"""What an operator scrapes and probes: ``/metrics``, ``/health``, ``/ready``, the internal listener.

Every counter is read before and after a known sequence of commands over a real connection, and
must have moved by exactly what that sequence did.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from cent import AsyncClient, PublishRequest

import wirehub
from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import eventually
from tests.metrics_helpers import Samples, get, moved, scrape, value
from tests.raw_client import RawClient
from tests.services import RedisServer

API_KEY = "metrics-test-api-key"
WAIT_S = 10.0


async def test_metrics_count_what_the_connections_did(start_gateway: StartGateway) -> None:
    """Gauges follow the live connection; counters move by exactly the commands sent."""
    gateway = await start_gateway(env={"WIREHUB_API_KEY": API_KEY})
    before = await scrape(gateway)
    assert value(before, "wirehub_build_info", version=wirehub.__version__) == 1

    client = await RawClient.open(gateway.ws_url)
    reply = await client.connect(gateway.token("alice"))
    assert "connect" in reply
    assert "subscribe" in await client.call("subscribe", {"channel": "chat:metrics"})
    for n in range(2):
        assert "publish" in await client.call("publish", {"channel": "chat:metrics", "data": {"n": n}})
    refused = await client.call("subscribe", {"channel": "nowhere:x"})
    assert refused["error"]["code"] == 102
    api = AsyncClient(f"{gateway.http_url}/api", API_KEY)
    try:
        await api.publish(PublishRequest(channel="chat:metrics", data={"from": "api"}))
    finally:
        await api.close()
    publications = 0
    while publications < 3:  # the chat namespace also pushes our own join first
        publications += "pub" in await client.push()

    during = await scrape(gateway)
    assert value(during, "wirehub_connections") == 1
    assert value(during, "wirehub_subscriptions") == 1
    assert value(during, "wirehub_channels") == 1
    assert moved(before, during, "wirehub_commands_total", method="connect", result="ok") == 1
    assert moved(before, during, "wirehub_commands_total", method="subscribe", result="ok") == 1
    assert moved(before, during, "wirehub_commands_total", method="subscribe", result="102") == 1
    assert moved(before, during, "wirehub_commands_total", method="publish", result="ok") == 2
    assert moved(before, during, "wirehub_publications_total", source="client") == 2
    assert moved(before, during, "wirehub_publications_total", source="api") == 1
    # Every push fanned out to a subscriber: the three publications and alice's own join.
    assert moved(before, during, "wirehub_deliveries_total") == 4
    assert moved(before, during, "wirehub_store_append_seconds_count") == 3
    assert moved(before, during, "wirehub_broker_publish_seconds_count") == 3
    assert value(during, "wirehub_store_append_seconds_sum") > 0

    await client.close()
    bad = await RawClient.open(gateway.ws_url)
    await bad.send("connect", {"token": "not-a-token"})
    assert (await bad.closed())[0] == 3500

    async def closed_on_the_server() -> Samples | None:
        # The server sees the close a moment after the client has sent it.
        samples = await scrape(gateway)
        return samples if value(samples, "wirehub_connections") == 0 else None

    after = await eventually(closed_on_the_server, timeout_s=WAIT_S)
    assert moved(before, after, "wirehub_disconnects_total", code="1000") == 1
    assert moved(before, after, "wirehub_disconnects_total", code="3500") == 1
    assert moved(before, after, "wirehub_connects_refused_total", code="3500") == 1
    assert value(after, "wirehub_subscriptions") == 0


async def readiness(gateway: GatewayProcess) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.http_url}/ready") as response,
    ):
        return response.status, await response.json()


async def ready_becomes(gateway: GatewayProcess, status: int) -> Any:
    """/ready's body once it answers ``status``: nothing announces a lost or regained link."""

    async def answer() -> Any:
        got, body = await readiness(gateway)
        return body if got == status else None

    return await eventually(answer, timeout_s=WAIT_S, interval_s=0.1)


async def test_ready_names_the_broker_while_redis_is_down(
    start_gateway: StartGateway, own_redis: RedisServer
) -> None:
    """/ready is 503 naming the broker while Redis is down, 200 once it is back; /health stays 200."""
    gateway = await start_gateway(env={"WIREHUB_BROKER_URL": own_redis.url})
    assert (await readiness(gateway))[0] == 200
    await own_redis.stop()
    body = await ready_becomes(gateway, 503)
    assert body["status"] == "not ready"
    assert list(body["failing"]) == ["broker"]
    assert (await get(f"{gateway.http_url}/health"))[0] == 200
    await own_redis.start()
    assert (await ready_becomes(gateway, 200))["status"] == "ready"


async def test_the_internal_listener_takes_metrics_and_the_api(start_gateway: StartGateway) -> None:
    """With the internal listener on, /metrics and /api/* answer there and 404 on the public port."""
    gateway = await start_gateway(
        env={
            "WIREHUB_API_KEY": API_KEY,
            "WIREHUB_HTTP_INTERNAL_ENABLED": "true",
            "WIREHUB_HTTP_INTERNAL_PORT": "0",
        }
    )
    match = gateway.listening_line.split("(internal ")
    assert len(match) == 2, gateway.listening_line
    internal = match[1].rstrip(")")
    assert internal.startswith("http://127.0.0.1:")
    key = {"X-API-Key": API_KEY}

    assert (await get(f"{gateway.http_url}/metrics"))[0] == 404
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.http_url}/api/info", json={}, headers=key) as response:
            assert response.status == 404
        async with session.post(f"{internal}/api/info", json={}, headers=key) as response:
            assert response.status == 200
            assert len((await response.json())["result"]["nodes"]) == 1
    assert "wirehub_connections" in (await get(f"{internal}/metrics"))[1]
    for base in (gateway.http_url, internal):
        assert (await get(f"{base}/health"))[0] == 200
        assert (await get(f"{base}/ready"))[0] == 200
