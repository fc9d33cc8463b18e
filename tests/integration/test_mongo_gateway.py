"""Real ``wirehub serve`` processes on MongoDB (the nx-27017 stand-in), driven by the SDK.

Two replicas on one Redis broker and one MongoDB database with publishers on both; recovery
across a restart of every gateway; MongoDB absent at start-up (not ready, then ready on its
own); MongoDB stopped and started again under traffic. Waits are on SDK events under a deadline;
the only polls are for MongoDB coming back, which no event announces.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from centrifuge import ClientState, ReplyError, StreamPosition, SubscriptionState

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import eventually
from tests.mongo_helpers import WAIT_S
from tests.sdk import (
    CONNECT_CALLED,
    ClientEvents,
    Clients,
    SubEvents,
    cuttable_proxy,
    next_event,
    next_matching,
    subscribed,
)
from tests.services import MongoStandIn, free_port

# A namespace with history (recovery) and one without (pure fan-out, no store involved).
CONFIG = """\
[namespaces.chat]
history_size = 1000
history_ttl_s = 3600
force_recovery = true
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_history_for_subscriber = true

[namespaces.live]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
"""

STORE_TIMEOUT_MS = 2000
"""Store call budget in these gateways: a publish fails well before the SDK's 5 s timeout."""


def store_env(url: str) -> dict[str, str]:
    return {"WIREHUB_STORE_URL": f"{url}?timeoutMS={STORE_TIMEOUT_MS}"}


async def start_replicas(
    start_gateway: StartGateway, count: int, *, mongo_url: str, redis_url: str, prefix: str
) -> list[GatewayProcess]:
    """``count`` gateways sharing one MongoDB database and one Redis broker (under ``prefix``)."""
    env = store_env(mongo_url) | {"WIREHUB_BROKER_URL": redis_url, "WIREHUB_BROKER_KEY_PREFIX": prefix}
    return [await start_gateway(config=CONFIG, env=env) for _ in range(count)]


async def readiness(gateway: GatewayProcess) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{gateway.http_url}/ready") as response:
        return response.status, await response.json()


async def wait_ready(gateway: GatewayProcess) -> None:
    """Wait for /ready to answer 200: no event announces MongoDB coming back."""

    async def ready() -> bool:
        return (await readiness(gateway))[0] == 200

    await eventually(ready, timeout_s=WAIT_S, interval_s=0.1)


async def publish_when_store_is_back(sub: Any, data: Any) -> None:
    """Publish, retrying temporary errors until MongoDB is back (no event tells when it is)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                await sub.publish(data)
                return
            except ReplyError as exc:
                if (exc.code, exc.temporary) != (100, True):
                    raise
            await asyncio.sleep(0.1)


async def test_subscription_recovers_from_mongodb_when_every_gateway_restarts(
    start_gateway: StartGateway, mongo_db: str, redis_url: str, unique_name: str
) -> None:
    """History lives in MongoDB: after both replicas restart, a client recovers what it missed, same epoch."""
    gateways = await start_replicas(
        start_gateway, 2, mongo_url=mongo_db, redis_url=redis_url, prefix=unique_name
    )
    first_gw, other_gw = gateways
    clients = Clients()
    async with cuttable_proxy(first_gw) as proxy:
        try:
            a_client_events = ClientEvents()
            a = clients.new(proxy.url, first_gw.token("alice"), events=a_client_events)
            a_events = SubEvents()
            a_sub = a.new_subscription("chat:restart", events=a_events, recoverable=True, positioned=True)
            await a.connect()
            first = await subscribed(a_sub, a_events)
            await a_sub.publish({"n": 1})
            assert (await next_event(a_events.publications)).pub.offset == 1
            assert first.stream_position.epoch == ""  # no stream before its first publication
            epoch = (await a_sub.history(limit=0)).epoch

            proxy.hold()
            for gateway in gateways:
                await gateway.restart()
            shutdown = await next_matching(a_client_events.connecting, lambda c: c.code != CONNECT_CALLED)
            assert (shutdown.code, shutdown.reason) == (3001, "shutdown")
            proxy.retarget(first_gw.ws_url)

            # Published through the other replica while alice is away.
            b = clients.new(other_gw.ws_url, other_gw.token("bob"))
            b_events = SubEvents()
            b_sub = b.new_subscription("chat:restart", events=b_events)
            await b.connect()
            assert (await subscribed(b_sub, b_events)).stream_position == StreamPosition(
                offset=1, epoch=epoch
            )
            for n in (2, 3, 4):
                await b_sub.publish({"n": n})
            proxy.release()

            again = await next_event(a_events.subscribed)
            assert (again.was_recovering, again.recovered) == (True, True)
            assert again.stream_position.epoch == epoch
            missed = [(await next_event(a_events.publications)).pub for _ in range(3)]
            assert [(p.offset, p.data) for p in missed] == [(n, {"n": n}) for n in (2, 3, 4)]

            # Live again across replicas: bob publishes on the other replica, alice gets 5 next.
            await b_sub.publish({"n": 5})
            assert (await next_event(a_events.publications)).pub.offset == 5
            assert a_events.publications.empty()
        finally:
            await clients.close()


async def test_subscribers_get_offsets_once_in_order_when_publishers_race_on_two_replicas(
    start_gateway: StartGateway, mongo_db: str, redis_url: str, unique_name: str
) -> None:
    """Publishers on both replicas at once: every subscriber, on either, gets 1..N once, in order."""
    gateways = await start_replicas(
        start_gateway, 2, mongo_url=mongo_db, redis_url=redis_url, prefix=unique_name
    )
    per_publisher = 40
    clients = Clients()
    try:
        subscribers: list[SubEvents] = []
        publishers = []
        for n, gateway in enumerate(gateways):
            for role in ("reader", "writer", "writer"):
                client = clients.new(gateway.ws_url, gateway.token(f"{role}{n}"))
                events = SubEvents()
                sub = client.new_subscription("chat:race", events=events)
                await client.connect()
                await subscribed(sub, events)
                if role == "reader":
                    subscribers.append(events)
                else:
                    publishers.append(sub)

        async def publish_all(n: int, sub: Any) -> None:
            # Several in flight per publisher, so that each node really has publishes to batch.
            await asyncio.gather(*(sub.publish({"w": n, "i": i}) for i in range(per_publisher)))

        await asyncio.gather(*(publish_all(n, sub) for n, sub in enumerate(publishers)))

        total = per_publisher * len(publishers)
        expected = sorted((n, i) for n in range(len(publishers)) for i in range(per_publisher))
        for events in subscribers:
            pubs = [(await next_event(events.publications)).pub for _ in range(total)]
            assert [p.offset for p in pubs] == list(range(1, total + 1))
            assert sorted((p.data["w"], p.data["i"]) for p in pubs) == expected
            assert events.publications.empty()
        history = await publishers[0].history(limit=-1)
        assert history.offset == total
    finally:
        await clients.close()


async def test_gateway_reports_not_ready_until_mongodb_appears(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    """With store.start_timeout_s = 0 and MongoDB down the gateway starts and /ready answers 503
    naming the store; once MongoDB appears it is ready and serves."""
    port = free_port()
    server = MongoStandIn(tmp_path / "late-mongo", port=port)
    env = store_env(f"mongodb://127.0.0.1:{port}/late") | {"WIREHUB_STORE_START_TIMEOUT_S": "0"}
    gateway = await start_gateway(config=CONFIG, env=env)
    clients = Clients()
    try:
        status, body = await readiness(gateway)
        assert (status, body["status"], list(body["failing"])) == (503, "not ready", ["store"])
        client = clients.new(gateway.ws_url, gateway.token("alice"))
        events = SubEvents()
        sub = client.new_subscription("chat:late", events=events)
        await client.connect()
        await sub.subscribe()
        refused = await next_event(events.errors)
        assert (refused.error.code, refused.error.temporary) == (100, True)

        await server.start()
        await wait_ready(gateway)
        # The SDK keeps retrying the subscribe with backoff; it now succeeds by itself.
        async with asyncio.timeout(WAIT_S):
            ctx = await events.subscribed.get()
        assert ctx.stream_position.offset == 0
        await sub.publish({"n": 1})
        assert (await next_event(events.publications)).pub.offset == 1
    finally:
        await clients.close()
        await server.stop()


async def test_publish_fails_temporarily_and_resumes_when_mongodb_restarts(
    start_gateway: StartGateway, private_mongo: MongoStandIn
) -> None:
    """MongoDB down: history publishes get 100 temporary, subscriptions and fan-out go on; then it resumes."""
    gateway = await start_gateway(config=CONFIG, env=store_env(private_mongo.url + "/outage"))
    clients = Clients()
    try:
        client_events = ClientEvents()
        client = clients.new(gateway.ws_url, gateway.token("alice"), events=client_events)
        chat_events, live_events = SubEvents(), SubEvents()
        chat = client.new_subscription("chat:outage", events=chat_events, recoverable=True, positioned=True)
        live = client.new_subscription("live:outage", events=live_events)
        await client.connect()
        await subscribed(chat, chat_events)
        await subscribed(live, live_events)
        for n in (1, 2, 3):
            await chat.publish({"n": n})
        epoch = (await chat.history(limit=0)).epoch

        await private_mongo.stop()
        with pytest.raises(ReplyError) as caught:
            await chat.publish({"n": "while down"})
        assert (caught.value.code, caught.value.temporary) == (100, True)
        await live.publish({"live": True})
        assert (await next_event(live_events.publications)).pub.data == {"live": True}
        assert (client.state, chat.state) == (ClientState.CONNECTED, SubscriptionState.SUBSCRIBED)

        await private_mongo.start()
        await publish_when_store_is_back(chat, {"n": 4})
        received = [(await next_event(chat_events.publications)).pub for _ in range(4)]
        history = await chat.history(limit=-1)
    finally:
        await clients.close()

    # Nothing acknowledged is lost, offsets have no gap, and nothing was delivered twice. (A retry
    # whose first attempt reached MongoDB just before a timeout could store {"n": 4} twice: the
    # assertions allow that, under consecutive offsets, since it is not a timing guarantee.)
    assert [(p.offset, p.data) for p in received[:3]] == [(n, {"n": n}) for n in (1, 2, 3)]
    assert received[3].offset == 4
    assert received[3].data == {"n": 4}
    assert [p.offset for p in history.publications] == list(range(1, history.offset + 1))
    assert [p.data for p in history.publications][:3] == [{"n": n} for n in (1, 2, 3)]
    assert {"n": "while down"} not in [p.data for p in history.publications]
    assert history.epoch == epoch != ""
    assert chat_events.unsubscribed.empty()
