"""Presence entries outlive their ttl while the subscriber stays; they go when it leaves."""

from __future__ import annotations

from tests.conftest import StartGateway
from tests.raw_client import RawClient


async def wait_for_pings(client: RawClient, count: int) -> None:
    """Answer ``count`` server pings; each one proves a ping interval of server time has passed."""
    seen = 0
    while seen < count:
        message = await client.receive()
        if message == {}:
            seen += 1
            await client.send_raw("{}")
        else:
            client.seen.append(message)


async def test_presence_keeps_subscriber_past_ttl_when_refreshed(start_gateway: StartGateway) -> None:
    """A subscriber stays in presence long after presence_ttl_s, because the node refreshes it."""
    gw = await start_gateway(
        env={
            "WIREHUB_CLIENT_PING_INTERVAL_S": "1",
            "WIREHUB_CLIENT_PONG_TIMEOUT_S": "0.5",
            "WIREHUB_CLIENT_PRESENCE_TTL_S": "0.5",
            "WIREHUB_CLIENT_PRESENCE_UPDATE_INTERVAL_S": "0.2",
        }
    )
    client = await RawClient.open(gw.ws_url)
    try:
        await client.connect(gw.token("alice"))
        assert "subscribe" in await client.call("subscribe", {"channel": "chat:lobby"})
        await wait_for_pings(client, 3)
        reply = await client.call("presence", {"channel": "chat:lobby"})
        assert [info["user"] for info in reply["presence"]["presence"].values()] == ["alice"]
        stats = await client.call("presence_stats", {"channel": "chat:lobby"})
        assert stats["presence_stats"] == {"num_clients": 1, "num_users": 1}
    finally:
        await client.close()


async def test_presence_drops_subscriber_when_it_unsubscribes(start_gateway: StartGateway) -> None:
    """Unsubscribing removes the entry at once."""
    gw = await start_gateway()
    alice, bob = await RawClient.open(gw.ws_url), await RawClient.open(gw.ws_url)
    try:
        await alice.connect(gw.token("alice"))
        await bob.connect(gw.token("bob"))
        for client in (alice, bob):
            assert "subscribe" in await client.call("subscribe", {"channel": "chat:room"})
        await bob.call("unsubscribe", {"channel": "chat:room"})
        reply = await alice.call("presence", {"channel": "chat:room"})
        assert [info["user"] for info in reply["presence"]["presence"].values()] == ["alice"]
    finally:
        await alice.close()
        await bob.close()
