"""Several real gateway replicas on one real Redis, driven by the centrifuge-python SDK.

Replicas are ``wirehub serve`` processes sharing a Redis under a key prefix and one SQLite store
file (SQLite serialises writers across processes, so offsets stay consecutive); each client
connects to one replica. Tests that neither kill replicas nor need other settings share the
module's three replicas, each on channels of its own. The node-level control messages, which no client command
triggers, are driven through two in-process gateways (``wirehub.app.start``) whose nodes the test
calls, with SDK clients on real sockets. Every wait is on an SDK event under a deadline, except
presence expiry and Redis coming back, which are polled under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from centrifuge import ClientState, ReplyError, SubscriptionState

from tests.conftest import StartGateway
from tests.gateway_process import SECRET, GatewayProcess
from tests.helpers import eventually, unique
from tests.redis_helpers import owner_of, slot_owners
from tests.sdk import (
    CONNECT_CALLED,
    TIMEOUT_S,
    ClientEvents,
    Clients,
    SubEvents,
    connect_subscribed,
    cuttable_proxy,
    next_event,
    next_matching,
    subscribed,
)
from tests.services import RedisClusterServers, RedisServer, redis_cli
from wirehub.app import Running, start
from wirehub.broker.redis import KeySpace
from wirehub.channels.router import Router
from wirehub.config import load_settings
from wirehub.errors import DisconnectForce

StartReplicas = Callable[..., Awaitable[list[GatewayProcess]]]

# The built-in chat namespace, plus ``live``: pure fan-out, no history (nothing holds its messages).
CHAT_AND_LIVE = """\
[namespaces.chat]
history_size = 100
history_ttl_s = 86400.0
presence = true
join_leave = true
force_push_join_leave = true
force_recovery = true
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_history_for_subscriber = true
allow_presence_for_subscriber = true

[namespaces.live]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
"""


@pytest.fixture
def start_replicas(start_gateway: StartGateway, tmp_path: Path, unique_name: str) -> StartReplicas:
    """Start ``count`` replicas on one Redis (key prefix of this test) and one SQLite store."""

    async def start_(
        count: int,
        redis_url: str,
        *,
        cluster: bool = False,
        env: dict[str, str] | None = None,
        config: str | None = None,
    ) -> list[GatewayProcess]:
        shared = {
            "WIREHUB_BROKER_URL": redis_url,
            "WIREHUB_BROKER_KEY_PREFIX": unique_name,
            "WIREHUB_BROKER_CLUSTER": "true" if cluster else "false",
            "WIREHUB_STORE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
            **(env or {}),
        }
        return [await start_gateway(config=config, env=shared) for _ in range(count)]

    return start_


SHARED_PREFIX = unique("replicas")
"""The Redis key prefix of ``shared_replicas``."""


@pytest.fixture(scope="module")
async def shared_replicas(
    start_module_gateway: StartGateway, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> list[GatewayProcess]:
    """Three replicas on the defaults that the module's tests share, on channels of their own:
    one Redis (a key prefix of this module's) and one SQLite store."""
    store = tmp_path_factory.mktemp("replicas") / "shared.db"
    env = {
        "WIREHUB_BROKER_URL": redis_url,
        "WIREHUB_BROKER_KEY_PREFIX": SHARED_PREFIX,
        "WIREHUB_STORE_URL": f"sqlite:///{store}",
    }
    return [await start_module_gateway(env=env) for _ in range(3)]


async def publish_numbered(sub: Any, author: str, numbers: range) -> None:
    for n in numbers:
        await sub.publish({"author": author, "n": n})


async def received(events: SubEvents, count: int) -> list[tuple[int, Any]]:
    """The next ``count`` publications as (offset, data)."""
    contexts = [await next_event(events.publications) for _ in range(count)]
    return [(ctx.pub.offset, ctx.pub.data) for ctx in contexts]


async def poll(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for ``condition``: for what has no event (expiry, restarts)."""
    await eventually(condition, timeout_s=TIMEOUT_S * 2, interval_s=0.1)


# --------------------------------------------------------------------------- publications


async def test_replicas_deliver_same_publications_in_same_offset_order_when_clients_on_different_replicas(
    shared_replicas: list[GatewayProcess],
) -> None:
    """Concurrent publishers on two replicas: subscribers on both see offsets 1..30 in the same order."""
    channel = unique("chat:order-")
    gw1, gw2 = shared_replicas[:2]
    clients = Clients()
    try:
        _, alice_sub, alice_events = await connect_subscribed(clients, gw1, "alice", channel)
        _, bob_sub, bob_events = await connect_subscribed(clients, gw2, "bob", channel)
        await asyncio.gather(
            publish_numbered(alice_sub, "alice", range(1, 16)), publish_numbered(bob_sub, "bob", range(1, 16))
        )
        seen_by_alice = await received(alice_events, 30)
        seen_by_bob = await received(bob_events, 30)
        assert seen_by_alice == seen_by_bob
        assert [offset for offset, _ in seen_by_alice] == list(range(1, 31))
        for author in ("alice", "bob"):
            assert [d["n"] for _, d in seen_by_alice if d["author"] == author] == list(range(1, 16))
        assert alice_events.publications.empty()
        assert bob_events.publications.empty()
    finally:
        await clients.close()


async def test_replicas_hold_one_redis_subscription_per_channel_when_many_local_subscribers(
    shared_replicas: list[GatewayProcess], redis_url: str
) -> None:
    """Three subscribers on one replica and two on another make two Redis subscriptions, not five."""
    channel = unique("chat:count-")
    gw1, gw2 = shared_replicas[:2]
    address = urlsplit(redis_url)
    assert address.port is not None
    name = KeySpace(SHARED_PREFIX).channel(channel)

    async def redis_subscriptions() -> int:
        reply = await redis_cli(
            address.port or 0, "pubsub", "numsub", name, host=address.hostname or "127.0.0.1"
        )
        return int(reply.split()[1])

    clients = Clients()
    try:
        on_gw1 = [await connect_subscribed(clients, gw1, f"u{i}", channel) for i in range(3)]
        for i in range(2):
            await connect_subscribed(clients, gw2, f"v{i}", channel)
        assert await redis_subscriptions() == 2
        for _, sub, events in on_gw1:
            await sub.unsubscribe()
            await next_event(events.unsubscribed)
        # The last local subscriber gone, the replica unsubscribes; the unsubscribe reply came after.
        assert await redis_subscriptions() == 1
    finally:
        await clients.close()


async def test_replicas_fan_out_on_every_shard_when_redis_cluster(
    start_replicas: StartReplicas, redis_cluster: RedisClusterServers | None, redis_cluster_url: str
) -> None:
    """On a 3-master cluster, channels of every shard carry publications between replicas, with presence."""
    if redis_cluster is None:
        pytest.fail("this test inspects the masters: run it on the cluster the tests start")
    gw1, gw2 = await start_replicas(2, redis_cluster_url, cluster=True)
    owners = await slot_owners(redis_cluster.nodes[0].port)
    channels: dict[int, str] = {}  # master port -> a channel it owns
    for i in range(10_000):
        channels.setdefault(owner_of(f"chat:spread-{i}", owners), f"chat:spread-{i}")
        if len(channels) == len(owners) == 3:
            break
    assert len(channels) == 3
    clients = Clients()
    try:
        for channel in channels.values():
            _, sub, _ = await connect_subscribed(clients, gw1, "alice", channel)
            _, _, bob_events = await connect_subscribed(clients, gw2, "bob", channel)
            await publish_numbered(sub, "alice", range(1, 4))
            assert [offset for offset, _ in await received(bob_events, 3)] == [1, 2, 3]
            stats = await sub.presence_stats()
            assert (stats.num_clients, stats.num_users) == (2, 2)
    finally:
        await clients.close()


# --------------------------------------------------------------------------- presence and join/leave


async def test_replicas_share_presence_when_clients_on_three_replicas(
    shared_replicas: list[GatewayProcess],
) -> None:
    """Presence and presence_stats list every connection of every replica, from any replica."""
    channel = unique("chat:presence-")
    replicas = shared_replicas
    clients = Clients()
    try:
        subs = []
        members = {}
        for gateway, user in zip(replicas, ["alice", "alice", "bob"], strict=True):
            client, sub, _ = await connect_subscribed(clients, gateway, user, channel)
            subs.append(sub)
            members[client.client_id] = user
        for sub in subs:
            presence = await sub.presence()
            assert {client_id: info.user for client_id, info in presence.clients.items()} == members
            stats = await sub.presence_stats()
            assert (stats.num_clients, stats.num_users) == (3, 2)
    finally:
        await clients.close()


async def test_replicas_push_join_and_leave_when_clients_on_different_replicas(
    shared_replicas: list[GatewayProcess],
) -> None:
    """A subscriber on one replica gets the join and the leave of a client on another."""
    channel = unique("chat:jl-")
    gw1, gw2 = shared_replicas[1:]
    clients = Clients()
    try:
        _, _, alice_events = await connect_subscribed(clients, gw1, "alice", channel)
        bob, bob_sub, _ = await connect_subscribed(clients, gw2, "bob", channel)
        join = await next_matching(alice_events.joins, lambda ctx: ctx.info.client == bob.client_id)
        assert join.info.user == "bob"
        await bob_sub.unsubscribe()
        leave = await next_matching(alice_events.leaves, lambda ctx: ctx.info.client == bob.client_id)
        assert leave.info.user == "bob"
    finally:
        await clients.close()


# --------------------------------------------------------------------------- failures


async def test_replicas_recover_and_forget_ghosts_when_a_replica_is_killed(
    start_replicas: StartReplicas, redis_url: str
) -> None:
    """SIGKILL of one of three replicas: its client recovers on another; its presence expires by the ttl."""
    gw1, gw2, gw3 = await start_replicas(
        3,
        redis_url,
        # Long enough for the ghost to be seen right after the crash, short enough to wait out.
        env={"WIREHUB_CLIENT_PRESENCE_TTL_S": "3", "WIREHUB_CLIENT_PRESENCE_UPDATE_INTERVAL_S": "0.5"},
    )
    clients = Clients()
    async with cuttable_proxy(gw3) as proxy:
        try:
            _, alice_sub, _ = await connect_subscribed(clients, gw1, "alice", "chat:crash")
            _, _, bob_events = await connect_subscribed(clients, gw2, "bob", "chat:crash")
            carol_client_events = ClientEvents()
            carol = clients.new(proxy.url, gw3.token("carol"), events=carol_client_events)
            carol_events = SubEvents()
            carol_sub = carol.new_subscription("chat:crash", events=carol_events)
            await carol.connect()
            await subscribed(carol_sub, carol_events)
            await publish_numbered(alice_sub, "alice", range(1, 3))
            assert [o for o, _ in await received(carol_events, 2)] == [1, 2]
            epoch = (await alice_sub.history()).epoch

            ghost = carol.client_id
            proxy.hold()
            await gw3.stop(signal.SIGKILL)
            await next_matching(carol_client_events.connecting, lambda c: c.code != CONNECT_CALLED)
            # Right after the crash, the dead replica's client is still listed: a ghost, for now.
            assert ghost in (await alice_sub.presence()).clients
            await publish_numbered(alice_sub, "alice", range(3, 5))
            assert [o for o, _ in await received(bob_events, 4)] == [1, 2, 3, 4]

            proxy.retarget(gw2.ws_url)
            proxy.release()
            again = await next_event(carol_events.subscribed)
            assert (again.was_recovering, again.recovered) == (True, True)
            assert again.stream_position.epoch == epoch
            assert [o for o, _ in await received(carol_events, 2)] == [3, 4]

            assert carol.client_id != ghost

            async def ghost_gone() -> bool:
                return ghost not in (await alice_sub.presence()).clients

            await poll(ghost_gone)
            presence = await alice_sub.presence()
            assert sorted(info.user for info in presence.clients.values()) == ["alice", "bob", "carol"]
            assert carol.client_id in presence.clients
            stats = await alice_sub.presence_stats()
            assert (stats.num_clients, stats.num_users) == (3, 3)
        finally:
            await clients.close()


async def test_replicas_repair_stream_when_redis_restarts_mid_stream(
    start_replicas: StartReplicas, own_redis: RedisServer
) -> None:
    """Redis down mid-stream: history publishes are acknowledged, fan-out only ones fail with 100;
    after the restart every subscriber has every offset once, in order, and presence is back."""
    gw1, gw2 = await start_replicas(2, own_redis.url, config=CHAT_AND_LIVE)
    clients = Clients()
    try:
        _, pub_sub, _ = await connect_subscribed(clients, gw1, "publisher", "chat:stream")
        _, _, near_events = await connect_subscribed(clients, gw1, "near", "chat:stream")
        _, _, far_events = await connect_subscribed(clients, gw2, "far", "chat:stream")
        _, live_sub, _ = await connect_subscribed(clients, gw1, "publisher", "live:x")
        await publish_numbered(pub_sub, "p", range(1, 4))
        assert [o for o, _ in await received(far_events, 3)] == [1, 2, 3]

        await own_redis.stop()
        await publish_numbered(pub_sub, "p", range(4, 7))  # acknowledged: the store has them
        with pytest.raises(ReplyError) as caught:
            await live_sub.publish({"lost": True})
        assert (caught.value.code, caught.value.temporary) == (100, True)

        await own_redis.start()
        await publish_numbered(pub_sub, "p", range(7, 10))
        expected = [(n, {"author": "p", "n": n}) for n in range(1, 10)]
        assert await received(near_events, 9) == expected
        assert await received(far_events, 6) == expected[3:]
        await pub_sub.publish({"author": "p", "n": 10})
        for events in (near_events, far_events):
            assert (await next_event(events.publications)).pub.offset == 10
            assert events.publications.empty()

        async def presence_restored() -> bool:
            # Redis restarted empty; the replicas re-add their entries as soon as they reconnect.
            return len((await pub_sub.presence()).clients) == 3

        await poll(presence_restored)
        await live_sub.publish({"after": True})
    finally:
        await clients.close()


# --------------------------------------------------------------------------- node-level control


@contextlib.asynccontextmanager
async def in_process_replicas(
    count: int, redis_url: str, prefix: str, tmp_path: Path
) -> AsyncIterator[list[tuple[Running, str]]]:
    """In-process gateways (node, ws url) on one Redis, so that the test can call their nodes."""
    env = {
        "WIREHUB_SERVER_PORT": "0",
        "WIREHUB_HTTP_PORT": "0",
        "WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET,
        "WIREHUB_BROKER_URL": redis_url,
        "WIREHUB_BROKER_KEY_PREFIX": prefix,
        "WIREHUB_STORE_URL": f"sqlite:///{tmp_path / 'inproc.db'}",
    }
    running: list[tuple[Running, str]] = []
    try:
        for _ in range(count):
            gateway = await start(load_settings(env=env), Router())
            running.append((gateway, f"ws://127.0.0.1:{gateway.gateway.port}/connection/websocket"))
        yield running
    finally:
        for gateway, _ in running:
            await gateway.stop()


async def test_node_disconnects_and_unsubscribes_user_on_every_replica(
    redis_url: str, unique_name: str, tmp_path: Path
) -> None:
    """disconnect_user closes the user's connections on both replicas (3503); unsubscribe_user pushes 2000."""
    async with in_process_replicas(2, redis_url, unique_name, tmp_path) as [(one, url1), (_, url2)]:
        clients = Clients()
        try:
            alice_events = [ClientEvents(), ClientEvents()]
            alices = [
                clients.new(url, GatewayProcess.token("alice"), events=events)
                for url, events in zip((url1, url2), alice_events, strict=True)
            ]
            bob_client_events = ClientEvents()
            bob = clients.new(url2, GatewayProcess.token("bob"), events=bob_client_events)
            bob_events = SubEvents()
            bob_sub = bob.new_subscription("chat:control", events=bob_events)
            for client in (*alices, bob):
                await client.connect()
            await subscribed(bob_sub, bob_events)

            await one.node.disconnect_user("alice", DisconnectForce("banned"))
            for client, events in zip(alices, alice_events, strict=True):
                disconnected = await next_event(events.disconnected)
                assert (disconnected.code, disconnected.reason) == (3503, "banned")
                assert client.state == ClientState.DISCONNECTED

            await one.node.unsubscribe_user("bob", "chat:control")
            unsubscribed = await next_event(bob_events.unsubscribed)
            assert (unsubscribed.code, unsubscribed.reason) == (2000, "server unsubscribe")
            assert bob_sub.state == SubscriptionState.UNSUBSCRIBED
            # Bob, not named by the disconnect sent before, is still connected.
            assert bob.state == ClientState.CONNECTED
            assert bob_client_events.disconnected.empty()
        finally:
            await clients.close()
