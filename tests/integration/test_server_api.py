"""The server API (``POST /api/<method>``) of real gateway processes, driven by ``cent``, Centrifugo's
own Python client for it, and by plain HTTP for what ``cent`` would never send.

Two replicas share one real Redis (under a key prefix of this module's own) and one SQLite store;
the API is called on one replica and checked against centrifuge-python clients on the other, so
every method is seen to act across replicas. Each test uses users and channels of its own, so the
replicas are shared by the module. Every wait is on an SDK event or a raw client's frame, under a
deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cent import (
    AsyncClient,
    BatchRequest,
    BroadcastRequest,
    CentApiResponseError,
    CentTransportError,
    CentUnauthorizedError,
    ChannelsRequest,
    Disconnect,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    StreamPosition,
    SubscribeRequest,
    UnsubscribeRequest,
)
from centrifuge import ClientState, SubscriptionState

from tests.gateway_process import GatewayProcess
from tests.helpers import Clients as RawClients
from tests.helpers import eventually, running_gateway, unique
from tests.sdk import CONNECT_CALLED, ClientEvents, Clients, connect_subscribed, next_event, next_matching
from tests.services import RedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

API_KEY = "test-api-key-0123456789"

CONFIG = """\
[namespaces.chat]
history_size = 20000
history_ttl_s = 3600.0
presence = true
join_leave = true
force_recovery = true
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_history_for_subscriber = true
allow_presence_for_subscriber = true

[namespaces.live]
allow_subscribe_for_client = true
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replicas(
    redis_server: RedisServer | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two replicas on the session's Redis (a key prefix of this module's) and one SQLite file."""
    redis_url = os.environ.get("WIREHUB_TEST_REDIS_URL") or (redis_server.url if redis_server else "")
    workdir = tmp_path_factory.mktemp("api")
    env = {
        "WIREHUB_BROKER_URL": redis_url,
        "WIREHUB_BROKER_KEY_PREFIX": unique("api"),
        "WIREHUB_STORE_URL": f"sqlite:///{workdir / 'shared.db'}",
        "WIREHUB_API_KEY": API_KEY,
        # A connection the API expires closes at once, not after the SDKs' grace period.
        "WIREHUB_CLIENT_EXPIRED_CLOSE_DELAY_S": "0",
    }
    (workdir / "one").mkdir()
    (workdir / "two").mkdir()
    async with (
        running_gateway(workdir / "one", config=CONFIG, env=env) as one,
        running_gateway(workdir / "two", config=CONFIG, env=env) as two,
    ):
        yield one, two


@pytest_asyncio.fixture(loop_scope="module")
async def api(replicas: tuple[GatewayProcess, GatewayProcess]) -> AsyncIterator[AsyncClient]:
    """``cent``'s client on the first replica."""
    client = AsyncClient(f"{replicas[0].http_url}/api", API_KEY)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="module")
async def sdk() -> AsyncIterator[Clients]:
    clients = Clients()
    try:
        yield clients
    finally:
        await clients.close()


async def post(url: str, body: bytes | str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST raw bytes; the status and the decoded JSON answer (None if it is not JSON)."""
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        try:
            return resp.status, await resp.json(content_type=None)
        except ValueError:
            return resp.status, None


# --------------------------------------------------------------------------- publications


async def test_api_publish_reaches_clients_on_other_replica_in_order_and_matches_history(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """Publishes through replica one reach a subscriber on replica two in order; history says the same."""
    channel = unique("chat:pub")
    _, _, events = await connect_subscribed(sdk, replicas[1], "alice", channel)

    results = [await api.publish(PublishRequest(channel=channel, data={"n": n})) for n in range(1, 21)]

    assert [r.offset for r in results] == list(range(1, 21))
    assert len({r.epoch for r in results}) == 1
    seen = [(await next_event(events.publications)).pub for _ in range(20)]
    assert [(p.offset, p.data) for p in seen] == [(n, {"n": n}) for n in range(1, 21)]
    assert all(p.info is None for p in seen)  # the backend is no client
    history = await api.history(HistoryRequest(channel=channel, limit=100))
    assert [(p.offset, p.data) for p in history.publications] == [(p.offset, p.data) for p in seen]
    assert (history.offset, history.epoch) == (20, results[0].epoch)


async def test_api_publish_keeps_tags_and_skips_history_when_asked(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """Tags reach subscribers; skip_history delivers without an offset and leaves history alone."""
    channel = unique("chat:tags")
    _, _, events = await connect_subscribed(sdk, replicas[1], "alice", channel)

    stored = await api.publish(PublishRequest(channel=channel, data="kept", tags={"kind": "note"}))
    skipped = await api.publish(PublishRequest(channel=channel, data="passing", skip_history=True))

    first, second = (await next_event(events.publications)).pub, (await next_event(events.publications)).pub
    assert (first.data, first.offset, first.tags) == ("kept", 1, {"kind": "note"})
    assert (second.data, second.offset) == ("passing", 0)
    assert (stored.offset, skipped.offset, skipped.epoch) == (1, 0, "")
    history = await api.history(HistoryRequest(channel=channel, limit=10))
    assert [p.data for p in history.publications] == ["kept"]


async def test_api_publish_returns_original_place_when_idempotency_key_repeats(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient
) -> None:
    """A retried publish with the same idempotency key is not stored twice and gets the same offset."""
    channel = unique("chat:idem")
    first = await api.publish(PublishRequest(channel=channel, data=1, idempotency_key="order-17"))
    again = await api.publish(PublishRequest(channel=channel, data=1, idempotency_key="order-17"))
    assert (again.offset, again.epoch) == (first.offset, first.epoch)
    history = await api.history(HistoryRequest(channel=channel, limit=10))
    assert len(history.publications) == 1


async def test_api_broadcast_answers_each_channel_in_order(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """Broadcast publishes to every channel; an unknown namespace fails its own entry with 102."""
    a, b = unique("chat:a"), unique("chat:b")
    _, _, events_a = await connect_subscribed(sdk, replicas[1], "alice", a)
    _, _, events_b = await connect_subscribed(sdk, replicas[1], "alice", b)

    result = await api.broadcast(BroadcastRequest(channels=[a, "nowhere:x", b], data={"all": True}))

    ok_a, failed, ok_b = result.responses
    assert ok_a.result is not None
    assert ok_a.result.offset == 1
    assert failed.error is not None
    assert failed.error.code == 102
    assert ok_b.result is not None
    assert ok_b.result.offset == 1
    for events in (events_a, events_b):
        assert (await next_event(events.publications)).pub.data == {"all": True}


async def test_api_history_remove_empties_history_and_keeps_position(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient
) -> None:
    """After history_remove the channel has no publications; offsets go on from the old top."""
    channel = unique("chat:rm")
    for n in range(3):
        await api.publish(PublishRequest(channel=channel, data=n))
    before = await api.history(HistoryRequest(channel=channel))

    await api.history_remove(HistoryRemoveRequest(channel=channel))

    after = await api.history(HistoryRequest(channel=channel, limit=10))
    assert (after.publications, after.offset, after.epoch) == ([], 3, before.epoch)
    assert (await api.publish(PublishRequest(channel=channel, data="next"))).offset == 4


async def test_api_history_pages_by_position(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient
) -> None:
    """history with since and reverse pages through a stream; a wrong epoch is 112."""
    channel = unique("chat:page")
    for n in range(1, 6):
        await api.publish(PublishRequest(channel=channel, data=n))
    top = await api.history(HistoryRequest(channel=channel))
    assert (top.publications, top.offset) == ([], 5)

    since = await api.history(
        HistoryRequest(channel=channel, limit=2, since=StreamPosition(offset=2, epoch=top.epoch))
    )
    newest = await api.history(HistoryRequest(channel=channel, limit=2, reverse=True))
    assert [p.data for p in since.publications] == [3, 4]
    assert [p.data for p in newest.publications] == [5, 4]
    with pytest.raises(CentApiResponseError) as refused:
        await api.history(HistoryRequest(channel=channel, limit=1, since=StreamPosition(offset=1, epoch="x")))
    assert refused.value.code == 112


# --------------------------------------------------------------------------- connections


async def test_api_disconnect_closes_user_on_every_replica_with_code_and_keeps_whitelist(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """disconnect closes the user's connections on both replicas with its code; whitelisted ones stay."""
    user = unique("mallory")
    events = [ClientEvents() for _ in range(3)]
    clients = [
        sdk.new(gw.ws_url, gw.token(user), events=e)
        for gw, e in zip((replicas[0], replicas[1], replicas[1]), events, strict=True)
    ]
    for client in clients:
        await client.connect()
    kept = clients[2]

    await api.disconnect(
        DisconnectRequest(
            user=user, whitelist=[kept.client_id], disconnect=Disconnect(code=4501, reason="banned")
        )
    )

    for client, e in zip(clients[:2], events[:2], strict=True):
        disconnected = await next_event(e.disconnected)
        assert (disconnected.code, disconnected.reason) == (4501, "banned")
        assert client.state == ClientState.DISCONNECTED  # 4500-4999: the SDK does not reconnect
    assert kept.state == ClientState.CONNECTED
    assert events[2].disconnected.empty()

    # Narrowed to one client: only that connection goes, with the default code (no reconnect).
    await api.disconnect(DisconnectRequest(user=user, client=kept.client_id))
    disconnected = await next_event(events[2].disconnected)
    assert disconnected.code == 3503


async def test_api_disconnect_with_reconnect_code_lets_the_sdk_come_back(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """A code in 4000-4499 closes the connection and the SDK reconnects."""
    user = unique("erin")
    events = ClientEvents()
    client = sdk.new(replicas[1].ws_url, replicas[1].token(user), events=events)
    await client.connect()
    await next_event(events.connected)

    await api.disconnect(DisconnectRequest(user=user, disconnect=Disconnect(code=4001, reason="moved")))

    connecting = await next_matching(events.connecting, lambda ctx: ctx.code != CONNECT_CALLED)
    assert (connecting.code, connecting.reason) == (4001, "moved")
    await next_event(events.connected)
    assert client.state == ClientState.CONNECTED


async def test_api_subscribe_and_unsubscribe_push_server_side_subscription(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """subscribe makes a server-side subscription on the other replica (with data); unsubscribe ends it."""
    user, channel = unique("bob"), unique("chat:srv")
    events = ClientEvents()
    client = sdk.new(replicas[1].ws_url, replicas[1].token(user), events=events)
    await client.connect()

    await api.subscribe(SubscribeRequest(user=user, channel=channel, data={"welcome": True}))
    pushed = await next_event(events.subscribed)
    assert (pushed.channel, pushed.data) == (channel, {"welcome": True})
    assert pushed.recoverable  # chat forces recovery
    await api.publish(PublishRequest(channel=channel, data="hello"))
    publication = await next_event(events.publications)
    assert (publication.channel, publication.pub.data, publication.pub.offset) == (channel, "hello", 1)
    presence = await api.presence(PresenceRequest(channel=channel))
    assert [info.user for info in presence.presence.values()] == [user]

    await api.unsubscribe(UnsubscribeRequest(user=user, channel=channel))
    assert (await next_event(events.unsubscribed)).channel == channel
    assert client.state == ClientState.CONNECTED


async def test_api_subscribe_recovers_publications_since_a_position(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """With recover_since, the server-side subscription first delivers what came after that position."""
    user, channel = unique("bob"), unique("chat:since")
    first = await api.publish(PublishRequest(channel=channel, data=1))
    for n in (2, 3):
        await api.publish(PublishRequest(channel=channel, data=n))
    events = ClientEvents()
    client = sdk.new(replicas[1].ws_url, replicas[1].token(user), events=events)
    await client.connect()

    await api.subscribe(
        SubscribeRequest(
            user=user, channel=channel, recover_since=StreamPosition(offset=1, epoch=first.epoch)
        )
    )
    await next_event(events.subscribed)
    await api.publish(PublishRequest(channel=channel, data=4))

    seen = [(await next_event(events.publications)).pub for _ in range(3)]
    assert [(p.offset, p.data) for p in seen] == [(2, 2), (3, 3), (4, 4)]


async def test_api_unsubscribe_ends_a_client_side_subscription(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """unsubscribe on a subscription the client made itself moves it to unsubscribed (2000)."""
    user, channel = unique("carol"), unique("chat:own")
    _, sub, events = await connect_subscribed(sdk, replicas[1], user, channel)

    await api.unsubscribe(UnsubscribeRequest(user=user, channel=channel))

    unsubscribed = await next_event(events.unsubscribed)
    assert unsubscribed.code == 2000
    assert sub.state == SubscriptionState.UNSUBSCRIBED


async def test_api_refresh_expires_connection_now_when_expired(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """refresh with expired closes the user's connection with 3005; the SDK reconnects with its token."""
    user = unique("dave")
    events = ClientEvents()
    client = sdk.new(replicas[1].ws_url, replicas[1].token(user), events=events)
    await client.connect()
    await next_event(events.connected)

    await api.refresh(RefreshRequest(user=user, expired=True))

    reconnecting = await next_matching(events.connecting, lambda ctx: ctx.code != CONNECT_CALLED)
    assert reconnecting.code == 3005
    await next_event(events.connected)


async def test_api_refresh_moves_expiry_of_a_connection(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient
) -> None:
    """refresh with expire_at a second away makes a connection without expiry close with 3005."""
    user = unique("frank")
    raw = RawClients()
    try:
        client = await raw.open(replicas[1])
        await client.connect(replicas[1].token(user, ttl_s=None))
        await api.refresh(RefreshRequest(user=user, expire_at=int(time.time()) + 1))
        code, _ = await client.closed()
        assert code == 3005
    finally:
        await raw.close_all()


# --------------------------------------------------------------------------- presence, channels, info


async def test_api_presence_channels_and_info_count_both_replicas(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient, sdk: Clients
) -> None:
    """Presence lists clients of both replicas; channels and info add up both replicas' counts."""
    channel = unique("chat:count")
    alice, _, _ = await connect_subscribed(sdk, replicas[0], "alice", channel)
    bob, _, _ = await connect_subscribed(sdk, replicas[1], "bob", channel)

    presence = await api.presence(PresenceRequest(channel=channel))
    stats = await api.presence_stats(PresenceStatsRequest(channel=channel))
    channels = await api.channels(ChannelsRequest(pattern=channel.replace(":count", ":c*")))
    info = await api.info(InfoRequest())

    assert set(presence.presence) == {alice.client_id, bob.client_id}
    assert {info.user for info in presence.presence.values()} == {"alice", "bob"}
    assert (stats.num_clients, stats.num_users) == (2, 2)
    assert {name: c.num_clients for name, c in channels.channels.items()} == {channel: 2}
    assert len(info.nodes) == 2
    assert len({node.uid for node in info.nodes}) == 2
    assert all(node.num_clients >= 1 and node.num_channels >= 1 for node in info.nodes)
    assert all(node.version and node.name and node.process is not None for node in info.nodes)


async def test_api_batch_answers_every_command_in_order(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient
) -> None:
    """A batch runs its commands in order and answers each one, a failed one with its error."""
    channel = unique("chat:batch")
    requests: list[Any] = [
        PublishRequest(channel=channel, data="a"),
        PublishRequest(channel=channel, data="b"),
        HistoryRequest(channel=channel, limit=10),
        PresenceStatsRequest(channel=channel),
    ]
    result = await api.batch(BatchRequest(requests=requests))
    first, second, history, stats = result.replies
    assert (first.offset, second.offset) == (1, 2)  # type: ignore[attr-defined]
    assert [p.data for p in history.publications] == ["a", "b"]  # type: ignore[attr-defined]
    assert stats.num_clients == 0  # type: ignore[attr-defined]

    url = f"{replicas[0].http_url}/api/batch"
    status, body = await post(
        url,
        '{"commands": [{"publish": {"channel": "nowhere:x", "data": 1}}, {"info": {}}], "parallel": true}',
        {"X-API-Key": API_KEY},
    )
    assert status == 200
    assert body["replies"][0] == {"error": {"code": 102, "message": "unknown channel"}}
    assert len(body["replies"][1]["info"]["nodes"]) == 2


async def test_api_delivers_ten_thousand_publishes_without_loss_or_reordering(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient
) -> None:
    """5,000 publishes in one batch, 5,000 in concurrent batches: each arrives once, in offset order."""
    channel = unique("chat:bulk")
    raw = RawClients()
    try:
        listener = await raw.connected(replicas[1], "listener")
        assert "subscribe" in await listener.call("subscribe", {"channel": channel})
        # Read while publishing: a client that stops reading is (rightly) closed as slow.
        received = asyncio.ensure_future(_pushes(listener, 10000))
        batch = BatchRequest(requests=[PublishRequest(channel=channel, data={"b": n}) for n in range(5000)])
        concurrent = [
            api.batch(
                BatchRequest(
                    requests=[PublishRequest(channel=channel, data={"w": w, "n": n}) for n in range(50)]
                )
            )
            for w in range(100)
        ]
        results = await asyncio.gather(api.batch(batch), *concurrent)

        offsets = [reply.offset for result in results for reply in result.replies]  # type: ignore[attr-defined]
        assert sorted(offsets) == list(range(1, 10001))
        for result in results:  # a batch runs in order: its offsets increase
            own = [reply.offset for reply in result.replies]  # type: ignore[attr-defined]
            assert own == sorted(own)
        pubs = [push["pub"] for push in await received]
        assert [pub["offset"] for pub in pubs] == list(range(1, 10001))
        history = await api.history(HistoryRequest(channel=channel, limit=-1))
        assert [(p.offset, p.data) for p in history.publications] == [(p["offset"], p["data"]) for p in pubs]
    finally:
        await raw.close_all()


async def _pushes(client: Any, count: int) -> list[dict[str, Any]]:
    return [await client.push() for _ in range(count)]


# --------------------------------------------------------------------------- errors and refusals


async def test_api_answers_request_errors_with_their_codes(
    replicas: tuple[GatewayProcess, GatewayProcess], api: AsyncClient
) -> None:
    """Unknown namespace 102, no history or presence 108, bad channel name or code 107: HTTP 200 all."""
    cases: list[tuple[Any, int]] = [
        (api.publish(PublishRequest(channel="nowhere:x", data=1)), 102),
        (api.history(HistoryRequest(channel=unique("live:x"), limit=1)), 108),
        (api.history_remove(HistoryRemoveRequest(channel=unique("live:x"))), 108),
        (api.presence(PresenceRequest(channel=unique("live:x"))), 108),
        (api.presence_stats(PresenceStatsRequest(channel=unique("live:x"))), 108),
        (api.publish(PublishRequest(channel="chat:has space", data=1)), 107),
        (api.disconnect(DisconnectRequest(user="u", disconnect=Disconnect(code=1000, reason=""))), 107),
        (api.subscribe(SubscribeRequest(user="", channel="chat:x")), 107),
    ]
    for call, code in cases:
        with pytest.raises(CentApiResponseError) as refused:
            await call
        assert refused.value.code == code


async def test_api_refuses_wrong_or_missing_key_with_401(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    """A wrong key, no key and a wrong Authorization scheme are 401; ``apikey`` in Authorization works."""
    url = f"{replicas[0].http_url}/api"
    async with AsyncClient(url, "wrong-key") as wrong:
        with pytest.raises(CentUnauthorizedError):
            await wrong.info(InfoRequest())
    for headers in ({}, {"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY + "x"}):
        status, _ = await post(f"{url}/info", "{}", headers)
        assert status == 401, headers
    status, body = await post(f"{url}/info", "{}", {"Authorization": f"apikey {API_KEY}"})
    assert status == 200
    assert len(body["result"]["nodes"]) == 2


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("publish", "{not json", "not valid JSON"),
        ("publish", "[1, 2]", "publish: expected a JSON object"),
        ("publish", '{"data": 1}', "publish.channel: required"),
        ("publish", '{"channel": 5, "data": 1}', "publish.channel: expected a string"),
        ("publish", '{"channel": "chat:x"}', "publish.data: required"),
        ("publish", '{"channel": "chat:x", "data": 1, "tags": {"a": 1}}', "publish.tags: expected an object"),
        ("publish", '{"channel": "chat:x", "data": 1, "skip_history": "yes"}', "publish.skip_history"),
        ("publish", '{"channel": "chat:x", "b64data": "AAAA"}', "publish.b64data: binary data"),
        ("broadcast", '{"channels": "chat:x", "data": 1}', "broadcast.channels: expected a list"),
        ("history", '{"channel": "chat:x", "limit": -2}', "history.limit"),
        ("history", '{"channel": "chat:x", "since": {"offset": "1"}}', "history.since.offset"),
        ("disconnect", '{"user": "u", "disconnect": {"code": "x"}}', "disconnect.disconnect.code"),
        (
            "subscribe",
            '{"user": "u", "channel": "chat:x", "override": {"presence": true}}',
            "override.presence",
        ),
        ("batch", '{"commands": [{"publish": {}, "info": {}}]}', "batch.commands[0]"),
        ("batch", '{"commands": [{"batch": {"commands": []}}]}', "unknown method 'batch'"),
        ("batch", '{"commands": [{"info": {}}, {"publish": {"channel": 1}}]}', "batch.commands[1].publish"),
        ("no_such_method", "{}", "unknown method"),
    ],
)
async def test_api_answers_malformed_requests_with_400_naming_the_field(
    replicas: tuple[GatewayProcess, GatewayProcess], method: str, body: str, message: str
) -> None:
    """A body that is not the method's request is HTTP 400 with a message that says what is wrong."""
    status, answer = await post(f"{replicas[0].http_url}/api/{method}", body, {"X-API-Key": API_KEY})
    assert status == 400
    assert answer["error"]["code"] == 400
    assert message in answer["error"]["message"]


async def test_api_refuses_body_over_the_limit_with_413(tmp_path: Path) -> None:
    """A body past api.max_body_bytes is 413, and cent reports it as a transport error."""
    env = {"WIREHUB_API_KEY": API_KEY, "WIREHUB_API_MAX_BODY_BYTES": "1000"}
    async with running_gateway(tmp_path, env=env) as gateway:
        status, _ = await post(f"{gateway.http_url}/api/publish", "x" * 2000, {"X-API-Key": API_KEY})
        assert status == 413
        async with AsyncClient(f"{gateway.http_url}/api", API_KEY) as client:
            with pytest.raises(CentTransportError) as refused:
                await client.publish(PublishRequest(channel="chat:x", data="y" * 2000))
            assert refused.value.status_code == 413


async def test_api_is_off_without_a_key_and_open_when_insecure(tmp_path: Path) -> None:
    """No api.key: /api answers 404. api.insecure: it answers without a key, and says so in the log."""
    (tmp_path / "off").mkdir()
    (tmp_path / "open").mkdir()
    async with running_gateway(tmp_path / "off") as off:
        status, _ = await post(f"{off.http_url}/api/info", "{}")
        assert status == 404
    async with running_gateway(tmp_path / "open", env={"WIREHUB_API_INSECURE": "true"}) as insecure:
        async with AsyncClient(f"{insecure.http_url}/api", "") as client:
            result = await client.publish(PublishRequest(channel="chat:x", data=1))
        assert result.offset == 1
        assert "server API without a key" in insecure.log()


@contextlib.asynccontextmanager
async def two_replicas(
    workdir: Path, redis_url: str, prefix: str, *, survey_timeout_s: float = 2.0
) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two replicas of this test's own on one Redis, with the server API on."""
    env = {
        "WIREHUB_BROKER_URL": redis_url,
        "WIREHUB_BROKER_KEY_PREFIX": prefix,
        "WIREHUB_API_KEY": API_KEY,
        "WIREHUB_NODE_SURVEY_TIMEOUT_S": str(survey_timeout_s),
    }
    (workdir / "a").mkdir()
    (workdir / "b").mkdir()
    async with running_gateway(workdir / "a", env=env) as one, running_gateway(workdir / "b", env=env) as two:
        yield one, two


async def met(client: AsyncClient) -> None:
    """Wait until ``info`` lists both replicas: a replica that is listening may not have been
    heard of by the other yet (they meet by a message on Redis, which no event announces)."""

    async def both_listed() -> bool:
        return len((await client.info(InfoRequest())).nodes) == 2

    await eventually(both_listed)


async def test_api_info_leaves_out_a_replica_that_died(
    redis_url: str, tmp_path: Path, unique_name: str
) -> None:
    """After one replica is killed (no goodbye), info on the other answers within the survey timeout."""
    async with two_replicas(tmp_path, redis_url, unique_name, survey_timeout_s=0.5) as (alive, doomed):
        async with AsyncClient(f"{alive.http_url}/api", API_KEY) as client:
            await met(client)
            await doomed.stop(signal.SIGKILL)
            nodes = (await client.info(InfoRequest())).nodes
        assert alive.proc is not None
        assert [node.process.model_dump()["pid"] for node in nodes if node.process] == [alive.proc.pid]
        assert "survey incomplete" in alive.log()


async def test_api_info_forgets_a_replica_that_shut_down_at_once(
    redis_url: str, tmp_path: Path, unique_name: str
) -> None:
    """A replica that stops cleanly says goodbye: info on the other does not wait for it."""
    async with two_replicas(tmp_path, redis_url, unique_name) as (alive, leaving):
        async with AsyncClient(f"{alive.http_url}/api", API_KEY) as client:
            await met(client)
            await leaving.stop(signal.SIGTERM)
            nodes = (await client.info(InfoRequest())).nodes
        assert len(nodes) == 1
        assert "survey incomplete" not in alive.log()
