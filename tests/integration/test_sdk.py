"""The real centrifuge-python SDK (0.7.0) against a real ``wirehub serve`` process.

Every wait is on a queue that an SDK event handler fills, under a deadline; nothing sleeps.
Tests that need a client's transport to drop route it through ``tests.sdk.CuttableProxy``, a
TCP relay the test can cut (the SDK then reconnects) and hold (new connections wait until
released), so what happens while the client is away is deterministic. Tests that neither restart nor
reconfigure a gateway share the module's (one on the defaults, one running the chat rules app),
each on channels of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from centrifuge import (
    ClientState,
    ReplyError,
    StreamPosition,
    SubscriptionState,
)

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import unique
from tests.sdk import (
    CONNECT_CALLED,
    TRANSPORT_CLOSED,
    UNAUTHORIZED,
    ClientEvents,
    Clients,
    SubEvents,
    cuttable_proxy,
    drain,
    next_event,
    next_matching,
    subscribed,
)
from wirehub.types import JSON

# --------------------------------------------------------------------------- publish and fan-out


async def test_publication_reaches_every_subscriber_including_publisher_in_offset_order(
    module_gateway: GatewayProcess,
) -> None:
    """Three publications reach both subscribers of chat:x, the publisher too, with offsets 1..3 and info."""
    channel = unique("chat:x-")
    clients = Clients()
    try:
        alice = clients.new(module_gateway.ws_url, module_gateway.token("alice", info={"name": "Alice"}))
        bob = clients.new(module_gateway.ws_url, module_gateway.token("bob", info={"name": "Bob"}))
        alice_events, bob_events = SubEvents(), SubEvents()
        alice_sub = alice.new_subscription(channel, events=alice_events)
        bob_sub = bob.new_subscription(channel, events=bob_events)
        await alice.connect()
        await bob.connect()
        await subscribed(alice_sub, alice_events)
        await subscribed(bob_sub, bob_events)

        for n in (1, 2, 3):
            await alice_sub.publish({"text": f"message {n}"})

        for events in (alice_events, bob_events):
            pubs = [(await next_event(events.publications)).pub for _ in range(3)]
            assert [p.offset for p in pubs] == [1, 2, 3]
            assert [p.data for p in pubs] == [{"text": f"message {n}"} for n in (1, 2, 3)]
            for pub in pubs:
                assert pub.info is not None
                assert (pub.info.user, pub.info.client) == ("alice", alice.client_id)
                assert pub.info.conn_info == {"name": "Alice"}
            assert events.publications.empty()
    finally:
        await clients.close()


async def test_subscribe_fails_with_102_when_namespace_unknown(module_gateway: GatewayProcess) -> None:
    """A subscription to a channel of an undefined namespace ends unsubscribed with code 102."""
    clients = Clients()
    try:
        client = clients.new(module_gateway.ws_url, module_gateway.token("alice"))
        events = SubEvents()
        sub = client.new_subscription("nowhere:x", events=events)
        await client.connect()
        await sub.subscribe()
        unsubscribed = await next_event(events.unsubscribed)
        assert unsubscribed.code == 102
        assert sub.state == SubscriptionState.UNSUBSCRIBED
        assert client.state == ClientState.CONNECTED
    finally:
        await clients.close()


# --------------------------------------------------------------------------- presence and join/leave


async def test_presence_lists_every_connection_and_counts_users(module_gateway: GatewayProcess) -> None:
    """Presence shows three connections of two users with their conn_info; presence_stats counts 3 and 2."""
    channel = unique("chat:presence-")
    clients = Clients()
    try:
        users: list[tuple[str, JSON]] = [("alice", {"n": 1}), ("alice", {"n": 2}), ("bob", {"n": 3})]
        subs: list[Any] = []
        for user, info in users:
            client = clients.new(module_gateway.ws_url, module_gateway.token(user, info=info))
            events = SubEvents()
            sub = client.new_subscription(channel, events=events)
            await client.connect()
            await subscribed(sub, events)
            subs.append(sub)

        presence = await subs[-1].presence()
        expected = {
            client.client_id: (user, client.client_id, info)
            for client, (user, info) in zip(clients._clients, users, strict=True)
        }
        assert {
            client_id: (info.user, info.client, info.conn_info)
            for client_id, info in presence.clients.items()
        } == expected

        stats = await subs[0].presence_stats()
        assert (stats.num_clients, stats.num_users) == (3, 2)
    finally:
        await clients.close()


async def test_join_and_leave_are_pushed_to_other_subscribers(module_gateway: GatewayProcess) -> None:
    """A chat subscriber gets a join when another client subscribes and a leave when it unsubscribes."""
    channel = unique("chat:jl-")
    clients = Clients()
    try:
        alice = clients.new(module_gateway.ws_url, module_gateway.token("alice"))
        bob = clients.new(module_gateway.ws_url, module_gateway.token("bob", info={"name": "Bob"}))
        alice_events, bob_events = SubEvents(), SubEvents()
        alice_sub = alice.new_subscription(channel, events=alice_events)
        bob_sub = bob.new_subscription(channel, events=bob_events)
        await alice.connect()
        await subscribed(alice_sub, alice_events)
        await bob.connect()
        await subscribed(bob_sub, bob_events)

        join = await next_matching(alice_events.joins, lambda ctx: ctx.info.client == bob.client_id)
        assert (join.info.user, join.info.conn_info) == ("bob", {"name": "Bob"})

        await bob_sub.unsubscribe()
        leave = await next_matching(alice_events.leaves, lambda ctx: ctx.info.client == bob.client_id)
        assert (leave.info.user, leave.info.conn_info) == ("bob", {"name": "Bob"})
    finally:
        await clients.close()


# --------------------------------------------------------------------------- history


async def publish_numbered(gateway: GatewayProcess, clients: Clients, channel: str, count: int) -> Any:
    """Connect a client subscribed to ``channel`` and publish ``{"n": 1..count}``; return its sub."""
    client = clients.new(gateway.ws_url, gateway.token("alice"))
    events = SubEvents()
    sub = client.new_subscription(channel, events=events)
    await client.connect()
    await subscribed(sub, events)
    for n in range(1, count + 1):
        await sub.publish({"n": n})
    return sub


async def test_history_returns_only_stream_top_when_limit_is_default(module_gateway: GatewayProcess) -> None:
    """history() with the SDK's default limit 0 returns no publications but the top offset and epoch."""
    channel = unique("chat:history-top-")
    clients = Clients()
    try:
        sub = await publish_numbered(module_gateway, clients, channel, 3)
        top = await sub.history()
        assert top.publications == []
        assert top.offset == 3
        assert top.epoch
        assert (await sub.history(limit=-1)).epoch == top.epoch
    finally:
        await clients.close()


async def test_history_pages_by_limit_direction_and_position(module_gateway: GatewayProcess) -> None:
    """history honours limit -1 and N, reverse, and since=StreamPosition in both directions."""
    channel = unique("chat:history-")
    clients = Clients()
    try:
        sub = await publish_numbered(module_gateway, clients, channel, 5)

        async def offsets(**kwargs: Any) -> list[int]:
            result = await sub.history(**kwargs)
            assert (result.offset, result.epoch) == (5, epoch)
            assert [p.data for p in result.publications] == [{"n": p.offset} for p in result.publications]
            return [p.offset for p in result.publications]

        epoch = (await sub.history()).epoch
        assert await offsets(limit=-1) == [1, 2, 3, 4, 5]
        assert await offsets(limit=2) == [1, 2]
        assert await offsets(limit=2, reverse=True) == [5, 4]
        assert await offsets(limit=-1, reverse=True) == [5, 4, 3, 2, 1]
        assert await offsets(limit=-1, since=StreamPosition(offset=2, epoch=epoch)) == [3, 4, 5]
        assert await offsets(limit=1, since=StreamPosition(offset=2, epoch=epoch)) == [3]
        assert await offsets(limit=2, since=StreamPosition(offset=4, epoch=epoch), reverse=True) == [3, 2]
        assert await offsets(limit=-1, since=StreamPosition(offset=5, epoch=epoch)) == []
        history = await sub.history(limit=-1)
        assert all(p.info is not None and p.info.user == "alice" for p in history.publications)
    finally:
        await clients.close()


async def test_history_fails_with_112_when_since_epoch_differs(module_gateway: GatewayProcess) -> None:
    """history with a since position from another epoch fails with 112 (unrecoverable position)."""
    channel = unique("chat:history-epoch-")
    clients = Clients()
    try:
        sub = await publish_numbered(module_gateway, clients, channel, 2)
        with pytest.raises(ReplyError) as caught:
            await sub.history(limit=-1, since=StreamPosition(offset=1, epoch="not-the-epoch"))
        assert caught.value.code == 112
    finally:
        await clients.close()


async def test_history_fails_with_107_when_reverse_since_offset_is_zero(
    module_gateway: GatewayProcess,
) -> None:
    """history with reverse and since.offset 0 fails with 107 (bad request)."""
    channel = unique("chat:history-reverse-")
    clients = Clients()
    try:
        sub = await publish_numbered(module_gateway, clients, channel, 2)
        epoch = (await sub.history()).epoch
        with pytest.raises(ReplyError) as caught:
            await sub.history(limit=-1, since=StreamPosition(offset=0, epoch=epoch), reverse=True)
        assert caught.value.code == 107
    finally:
        await clients.close()


# --------------------------------------------------------------------------- recovery


async def test_subscription_recovers_missed_publications_when_transport_drops(
    module_gateway: GatewayProcess,
) -> None:
    """After a dropped transport the SDK resubscribes with recover and gets exactly what it missed."""
    channel = unique("chat:recover-")
    clients = Clients()
    async with cuttable_proxy(module_gateway) as proxy:
        try:
            a_client_events = ClientEvents()
            a = clients.new(proxy.url, module_gateway.token("alice"), events=a_client_events)
            a_events = SubEvents()
            a_sub = a.new_subscription(channel, events=a_events, recoverable=True, positioned=True)
            b = clients.new(module_gateway.ws_url, module_gateway.token("bob"))
            b_events = SubEvents()
            b_sub = b.new_subscription(channel, events=b_events)
            await a.connect()
            first = await subscribed(a_sub, a_events)
            assert (first.recoverable, first.positioned, first.was_recovering) == (True, True, False)
            await b.connect()
            await subscribed(b_sub, b_events)

            await b_sub.publish({"n": 1})
            assert (await next_event(a_events.publications)).pub.offset == 1
            epoch = (await b_sub.history()).epoch  # the stream exists from its first publication

            proxy.hold()
            proxy.cut()
            dropped = await next_matching(a_client_events.connecting, lambda c: c.code != CONNECT_CALLED)
            assert dropped.code == TRANSPORT_CLOSED
            for n in (2, 3, 4):
                await b_sub.publish({"n": n})
            proxy.release()

            again = await next_event(a_events.subscribed)
            assert (again.was_recovering, again.recovered) == (True, True)
            assert again.stream_position == StreamPosition(offset=1, epoch=epoch)
            missed = [(await next_event(a_events.publications)).pub for _ in range(3)]
            assert [(p.offset, p.data) for p in missed] == [(n, {"n": n}) for n in (2, 3, 4)]

            # The next live publication follows directly: nothing was delivered twice.
            await b_sub.publish({"n": 5})
            assert (await next_event(a_events.publications)).pub.offset == 5
            assert a_events.publications.empty()
            assert a_events.subscribed.empty()
        finally:
            await clients.close()


async def test_subscription_recovers_missed_publications_when_gateway_restarts(
    gateway: GatewayProcess,
) -> None:
    """History survives a restart in SQLite with the same epoch, so a client recovers what it missed."""
    clients = Clients()
    async with cuttable_proxy(gateway) as proxy:
        try:
            a_client_events = ClientEvents()
            a = clients.new(proxy.url, gateway.token("alice"), events=a_client_events)
            a_events = SubEvents()
            a_sub = a.new_subscription("chat:restart", events=a_events, recoverable=True, positioned=True)
            await a.connect()
            await subscribed(a_sub, a_events)
            await a_sub.publish({"n": 1})
            assert (await next_event(a_events.publications)).pub.offset == 1
            epoch = (await a_sub.history()).epoch

            proxy.hold()
            await gateway.restart()
            shutdown = await next_matching(a_client_events.connecting, lambda c: c.code != CONNECT_CALLED)
            assert (shutdown.code, shutdown.reason) == (3001, "shutdown")
            proxy.retarget(gateway.ws_url)

            b = clients.new(gateway.ws_url, gateway.token("bob"))
            b_events = SubEvents()
            b_sub = b.new_subscription("chat:restart", events=b_events, recoverable=True)
            await b.connect()
            b_first = await subscribed(b_sub, b_events)
            assert b_first.stream_position == StreamPosition(offset=1, epoch=epoch)
            for n in (2, 3, 4):
                await b_sub.publish({"n": n})
            proxy.release()

            again = await next_event(a_events.subscribed)
            assert (again.was_recovering, again.recovered) == (True, True)
            assert again.stream_position.epoch == epoch
            missed = [(await next_event(a_events.publications)).pub for _ in range(3)]
            assert [(p.offset, p.data) for p in missed] == [(n, {"n": n}) for n in (2, 3, 4)]
            assert all(p.info is not None and p.info.user == "bob" for p in missed)

            await b_sub.publish({"n": 5})
            assert (await next_event(a_events.publications)).pub.offset == 5
            assert a_events.publications.empty()
        finally:
            await clients.close()


# --------------------------------------------------------------------------- token refresh and expiry


async def test_connection_stays_connected_past_expiry_when_token_refreshed(
    start_gateway: StartGateway,
) -> None:
    """A client whose 2 s token is renewed through get_token keeps its one connection across expiries."""
    gateway = await start_gateway(
        env={
            # A short grace: the SDK sends refresh exactly when the ttl runs out.
            "WIREHUB_CLIENT_EXPIRED_CLOSE_DELAY_S": "1",
            "WIREHUB_CLIENT_PING_INTERVAL_S": "2",
            "WIREHUB_CLIENT_PONG_TIMEOUT_S": "1",
        }
    )
    issued: asyncio.Queue[str] = asyncio.Queue()

    async def get_token() -> str:
        token = gateway.token("alice", ttl_s=2)
        issued.put_nowait(token)
        return token

    clients = Clients()
    try:
        events = ClientEvents()
        client = clients.new(
            gateway.ws_url, gateway.token("alice", ttl_s=2), events=events, get_token=get_token
        )
        sub_events = SubEvents()
        sub = client.new_subscription("chat:refresh", events=sub_events)
        await client.connect()
        connected = await next_event(events.connected)
        await subscribed(sub, sub_events)

        # The third token is only asked for after the refresh with the second one succeeded:
        # by then the connection has outlived the first two tokens (and their grace).
        for _ in range(3):
            await next_event(issued)

        await sub.publish({"still": "here"})
        assert (await next_event(sub_events.publications)).pub.data == {"still": "here"}
        assert client.state == ClientState.CONNECTED
        assert client.client_id == connected.client
        assert [c.code for c in drain(events.connecting)] == [CONNECT_CALLED]
        assert events.connected.empty()
        assert events.disconnected.empty()
        assert drain(events.errors) == []
    finally:
        await clients.close()


async def test_connection_closes_with_3005_when_token_not_refreshed(start_gateway: StartGateway) -> None:
    """A static 2 s token without get_token is closed with 3005; reconnecting gets 109 and the SDK stops."""
    gateway = await start_gateway(env={"WIREHUB_CLIENT_EXPIRED_CLOSE_DELAY_S": "0"})
    clients = Clients()
    try:
        events = ClientEvents()
        client = clients.new(gateway.ws_url, gateway.token("alice", ttl_s=2), events=events)
        await client.connect()
        await next_event(events.connected)

        expired = await next_matching(events.connecting, lambda c: c.code != CONNECT_CALLED)
        assert (expired.code, expired.reason) == (3005, "connection expired")
        # The SDK reconnects with the same token, which the server now refuses as expired...
        refused = await next_matching(events.errors, lambda e: isinstance(e.error, ReplyError))
        assert refused.error.code == 109
        # ...and, with no get_token to ask for another one, it gives up.
        disconnected = await next_event(events.disconnected)
        assert (disconnected.code, disconnected.reason) == (UNAUTHORIZED, "unauthorized")
        assert client.state == ClientState.DISCONNECTED
        assert events.connected.empty()
    finally:
        await clients.close()


# --------------------------------------------------------------------------- server-side subscriptions


async def test_server_side_subscription_delivers_publications_to_client_handler(
    module_gateway: GatewayProcess,
) -> None:
    """A channel of the token's channels claim is subscribed at connect; its publications reach the client."""
    channel = unique("chat:feed-")
    clients = Clients()
    try:
        events = ClientEvents()
        alice = clients.new(
            module_gateway.ws_url, module_gateway.token("alice", channels=[channel]), events=events
        )
        await alice.connect()
        server_sub = await next_event(events.subscribed)
        assert server_sub.channel == channel
        assert (server_sub.recoverable, server_sub.positioned, server_sub.was_recovering) == (
            True,
            True,
            False,
        )
        assert alice.subscriptions() == {}

        bob = clients.new(module_gateway.ws_url, module_gateway.token("bob", info={"name": "Bob"}))
        bob_events = SubEvents()
        bob_sub = bob.new_subscription(channel, events=bob_events)
        await bob.connect()
        await subscribed(bob_sub, bob_events)
        await bob_sub.publish({"text": "to the feed"})

        publication = await next_event(events.publications)
        assert publication.channel == channel
        assert (publication.pub.offset, publication.pub.data) == (1, {"text": "to the feed"})
        assert publication.pub.info is not None
        assert (publication.pub.info.user, publication.pub.info.conn_info) == ("bob", {"name": "Bob"})
    finally:
        await clients.close()


async def test_server_side_subscription_recovers_missed_publications_when_transport_drops(
    module_gateway: GatewayProcess,
) -> None:
    """On reconnect the SDK sends its server-side position in connect.subs and gets what it missed."""
    channel = unique("chat:feed-")
    clients = Clients()
    async with cuttable_proxy(module_gateway) as proxy:
        try:
            events = ClientEvents()
            alice = clients.new(proxy.url, module_gateway.token("alice", channels=[channel]), events=events)
            await alice.connect()
            await next_event(events.subscribed)
            bob = clients.new(module_gateway.ws_url, module_gateway.token("bob"))
            bob_events = SubEvents()
            bob_sub = bob.new_subscription(channel, events=bob_events)
            await bob.connect()
            await subscribed(bob_sub, bob_events)
            await bob_sub.publish({"n": 1})
            assert (await next_event(events.publications)).pub.offset == 1
            epoch = (await bob_sub.history()).epoch

            proxy.hold()
            proxy.cut()
            await next_matching(events.connecting, lambda c: c.code != CONNECT_CALLED)
            for n in (2, 3):
                await bob_sub.publish({"n": n})
            proxy.release()

            again = await next_event(events.subscribed)
            assert again.channel == channel
            assert (again.was_recovering, again.recovered) == (True, True)
            assert again.stream_position.epoch == epoch
            missed = [(await next_event(events.publications)).pub for _ in range(2)]
            assert [(p.offset, p.data) for p in missed] == [(2, {"n": 2}), (3, {"n": 3})]
            await bob_sub.publish({"n": 4})
            assert (await next_event(events.publications)).pub.offset == 4
            assert events.publications.empty()
        finally:
            await clients.close()


# --------------------------------------------------------------------------- subscription tokens


async def test_private_channel_refuses_subscribe_with_103_when_token_missing(
    module_gateway: GatewayProcess,
) -> None:
    """Subscribing to $chat:secret without a subscription token ends unsubscribed with code 103."""
    channel = unique("$chat:secret-")
    clients = Clients()
    try:
        client = clients.new(module_gateway.ws_url, module_gateway.token("alice"))
        events = SubEvents()
        sub = client.new_subscription(channel, events=events)
        await client.connect()
        await sub.subscribe()
        unsubscribed = await next_event(events.unsubscribed)
        assert unsubscribed.code == 103
        assert sub.state == SubscriptionState.UNSUBSCRIBED
        assert events.subscribed.empty()
        assert client.state == ClientState.CONNECTED
    finally:
        await clients.close()


async def test_private_channel_subscribes_when_subscription_token_given(
    module_gateway: GatewayProcess,
) -> None:
    """A subscription token opens $chat:secret; its data comes back and its info becomes chan_info."""
    channel = unique("$chat:secret-")
    clients = Clients()
    try:
        client = clients.new(module_gateway.ws_url, module_gateway.token("alice", info={"name": "Alice"}))
        events = SubEvents()
        token = module_gateway.sub_token("alice", channel, info={"badge": "gold"}, data={"welcome": True})
        sub = client.new_subscription(channel, events=events, token=token)
        await client.connect()
        ctx = await subscribed(sub, events)
        assert ctx.data == {"welcome": True}

        await sub.publish({"text": "psst"})
        pub = (await next_event(events.publications)).pub
        assert pub.data == {"text": "psst"}
        assert pub.info is not None
        assert (pub.info.user, pub.info.conn_info, pub.info.chan_info) == (
            "alice",
            {"name": "Alice"},
            {"badge": "gold"},
        )
        presence = await sub.presence()
        assert presence.clients[client.client_id].chan_info == {"badge": "gold"}
    finally:
        await clients.close()


async def test_subscription_token_closes_connection_with_3500_when_user_differs(
    module_gateway: GatewayProcess,
) -> None:
    """A subscription token issued for another user closes the connection with 3500; the SDK stops."""
    channel = unique("$chat:secret-")
    clients = Clients()
    try:
        client_events = ClientEvents()
        client = clients.new(module_gateway.ws_url, module_gateway.token("alice"), events=client_events)
        sub = client.new_subscription(channel, token=module_gateway.sub_token("mallory", channel))
        await client.connect()
        await sub.subscribe()
        disconnected = await next_event(client_events.disconnected)
        assert disconnected.code == 3500
        assert client.state == ClientState.DISCONNECTED
    finally:
        await clients.close()


# --------------------------------------------------------------------------- rpc


async def test_rpc_fails_with_108_when_no_handler(module_gateway: GatewayProcess) -> None:
    """client.rpc raises ReplyError 108 when the gateway has no RPC handler, and the connection lives on."""
    clients = Clients()
    try:
        client = clients.new(module_gateway.ws_url, module_gateway.token("alice"))
        await client.connect()
        for method in ("anything", "chat:anything"):
            with pytest.raises(ReplyError) as caught:
                await client.rpc(method, {"x": 1})
            assert caught.value.code == 108
        assert client.state == ClientState.CONNECTED
    finally:
        await clients.close()


# --------------------------------------------------------------------------- a custom handler app

CHAT_RULES_APP = "tests.apps.chat_rules:app"


@pytest.fixture(scope="module")
async def rules_gateway(start_module_gateway: StartGateway) -> GatewayProcess:
    """The module's gateway running the handlers of ``CHAT_RULES_APP``."""
    return await start_module_gateway(app=CHAT_RULES_APP)


async def test_custom_publish_handler_transforms_valid_publication(rules_gateway: GatewayProcess) -> None:
    """The app's on_publish rewrites {"text"} into {"from", "text"}, which is what subscribers get."""
    channel = unique("chat:rules-")
    clients = Clients()
    try:
        alice = clients.new(rules_gateway.ws_url, rules_gateway.token("alice"))
        bob = clients.new(rules_gateway.ws_url, rules_gateway.token("bob"))
        alice_events, bob_events = SubEvents(), SubEvents()
        alice_sub = alice.new_subscription(channel, events=alice_events)
        bob_sub = bob.new_subscription(channel, events=bob_events)
        await alice.connect()
        await bob.connect()
        await subscribed(alice_sub, alice_events)
        await subscribed(bob_sub, bob_events)

        await alice_sub.publish({"text": "hello"})
        for events in (alice_events, bob_events):
            pub = (await next_event(events.publications)).pub
            assert (pub.offset, pub.data) == (1, {"from": "alice", "text": "hello"})
        history = await bob_sub.history(limit=-1)
        assert [p.data for p in history.publications] == [{"from": "alice", "text": "hello"}]
    finally:
        await clients.close()


async def test_custom_publish_handler_rejects_invalid_publication_with_107(
    rules_gateway: GatewayProcess,
) -> None:
    """Invalid publications fail with 107 for the publisher and nothing of them reaches subscribers."""
    channel = unique("chat:rules-")
    clients = Clients()
    try:
        alice = clients.new(rules_gateway.ws_url, rules_gateway.token("alice"))
        bob = clients.new(rules_gateway.ws_url, rules_gateway.token("bob"))
        alice_events, bob_events = SubEvents(), SubEvents()
        alice_sub = alice.new_subscription(channel, events=alice_events)
        bob_sub = bob.new_subscription(channel, events=bob_events)
        await alice.connect()
        await bob.connect()
        await subscribed(alice_sub, alice_events)
        await subscribed(bob_sub, bob_events)

        invalid: list[Any] = [
            {"text": ""},
            {"text": "x" * 201},
            {"text": 42},
            {"text": "hi", "extra": 1},
            {"body": "hi"},
            "hi",
            None,
        ]
        for data in invalid:
            with pytest.raises(ReplyError) as caught:
                await alice_sub.publish(data)
            assert caught.value.code == 107, data

        # The first valid publication gets offset 1 and is the first thing delivered.
        await alice_sub.publish({"text": "x" * 200})
        for events in (alice_events, bob_events):
            pub = (await next_event(events.publications)).pub
            assert (pub.offset, pub.data) == (1, {"from": "alice", "text": "x" * 200})
            assert events.publications.empty()
        assert alice.state == ClientState.CONNECTED
    finally:
        await clients.close()


async def test_custom_rpc_handler_answers_and_survives_a_crash(rules_gateway: GatewayProcess) -> None:
    """echo answers; a crashing handler gives 100 (temporary) and the next rpc on the connection works."""
    clients = Clients()
    try:
        events = ClientEvents()
        client = clients.new(rules_gateway.ws_url, rules_gateway.token("alice"), events=events)
        await client.connect()

        assert (await client.rpc("echo", {"x": 1})).data == {"user": "alice", "echo": {"x": 1}}
        assert (await client.rpc("chat:echo", [1, 2])).data == {"namespace": "chat", "echo": [1, 2]}

        with pytest.raises(ReplyError) as crashed:
            await client.rpc("boom", {})
        assert (crashed.value.code, crashed.value.temporary) == (100, True)

        with pytest.raises(ReplyError) as unknown:
            await client.rpc("nope", {})
        assert unknown.value.code == 104

        assert (await client.rpc("echo", "again")).data == {"user": "alice", "echo": "again"}
        assert client.state == ClientState.CONNECTED
        assert [c.code for c in drain(events.connecting)] == [CONNECT_CALLED]
        assert events.disconnected.empty()
    finally:
        await clients.close()
