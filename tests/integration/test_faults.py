"""Faults that must not hurt clients more than they have to: a frozen Redis, big recoveries.

Real gateway processes, a Redis of the test's own (which it freezes with SIGSTOP), raw clients and
the centrifuge-python SDK, all on loopback. Waits are on frames under deadlines; the bounds asserted
are the behaviour (an ack well before the Redis command timeout), not a performance figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from typing import Any

import pytest

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import Clients, assert_closed_with, assert_error, unique
from tests.sdk import (
    CONNECT_CALLED,
    ClientEvents,
    SubEvents,
    cuttable_proxy,
    next_event,
    next_matching,
    subscribed,
)
from tests.sdk import Clients as SdkClients
from tests.services import RedisServer

REDIS_COMMAND_TIMEOUT_S = 5.0
"""What a publish would wait for if it queued behind a frozen Redis (the broker's command timeout)."""
FAST_S = 2.0
"""Well under that timeout: an answer that did not wait for it."""

CHAT_AND_LIVE = """\
[namespaces.chat]
history_size = 1000
history_ttl_s = 3600.0
force_recovery = true
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_history_for_subscriber = true

[namespaces.live]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
"""


async def test_publishes_to_history_are_acknowledged_at_once_while_redis_is_frozen(
    start_gateway: StartGateway, own_redis: RedisServer
) -> None:
    """With Redis frozen, every history publish is acked fast, a publish without history fails with
    temporary 100 (fast once Redis is known down), and after the thaw nothing is lost or doubled."""
    gateway = await start_gateway(config=CHAT_AND_LIVE, env={"WIREHUB_BROKER_URL": own_redis.url})
    channel, live = unique("chat:frozen-"), unique("live:frozen-")
    clients = Clients()
    try:
        await _frozen_redis_scenario(clients, gateway, own_redis, channel, live)
    finally:
        await clients.close_all()


async def _frozen_redis_scenario(
    clients: Clients, gateway: GatewayProcess, own_redis: RedisServer, channel: str, live: str
) -> None:
    publisher = await clients.connected(gateway, "publisher")
    for ch in (channel, live):
        assert "subscribe" in await publisher.call("subscribe", {"channel": ch})
    assert own_redis.proc is not None
    pid = own_redis.proc.pid

    os.kill(pid, signal.SIGSTOP)
    try:
        ack_times = []
        for n in range(20):
            started = time.monotonic()
            reply = await publisher.call("publish", {"channel": channel, "data": {"n": n}})
            ack_times.append(time.monotonic() - started)
            assert reply.get("publish") == {}, reply
        # The first publish without history finds out that Redis does not answer (it may wait
        # for the command timeout); the next ones fail at once.
        started = time.monotonic()
        assert_error(await publisher.call("publish", {"channel": live, "data": "first"}), 100, temporary=True)
        discovery_s = time.monotonic() - started
        started = time.monotonic()
        assert_error(await publisher.call("publish", {"channel": live, "data": "next"}), 100, temporary=True)
        fail_fast_s = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)

    assert max(ack_times) < FAST_S, ack_times
    assert discovery_s < REDIS_COMMAND_TIMEOUT_S + FAST_S
    assert fail_fast_s < FAST_S
    history = (await publisher.call("history", {"channel": channel, "limit": -1}))["history"]
    assert [p["data"]["n"] for p in history["publications"]] == list(range(20))
    # This node's subscriber got every publication once, in offset order (delivered locally).
    pubs = await _pubs_of(publisher, channel, 20)
    assert [p["offset"] for p in pubs] == list(range(1, 21))


async def _pubs_of(client: Any, channel: str, count: int) -> list[dict[str, Any]]:
    """The next ``count`` publications of ``channel`` among what the client has received."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        push = await client.push()
        if push.get("channel") == channel and "pub" in push:
            found.append(push["pub"])
    return found


# --------------------------------------------------------------------------- big replies

SMALL_QUEUE = {"WIREHUB_CLIENT_WRITE_QUEUE_MAX_BYTES": "65536"}


@pytest.fixture(scope="module")
async def big_queue_gateway(start_module_gateway: StartGateway) -> GatewayProcess:
    """``CHAT_AND_LIVE`` with the default 1 MiB write queue, shared by the big-reply tests."""
    return await start_module_gateway(config=CHAT_AND_LIVE)


@pytest.fixture(scope="module")
async def small_queue_gateway(start_module_gateway: StartGateway) -> GatewayProcess:
    """``CHAT_AND_LIVE`` with a 64 KiB write queue, shared by the tests of replies that do not fit."""
    return await start_module_gateway(config=CHAT_AND_LIVE, env=SMALL_QUEUE)


async def _publish_many(client: Any, channel: str, count: int, size: int, window: int = 20) -> None:
    """``count`` publications of about ``size`` bytes each, ``window`` in flight, each acknowledged.

    The publisher reads as it goes (its own publications come back to it): a client that sent
    everything before reading anything would rightly be closed as slow.
    """
    for start in range(0, count, window):
        ids = [
            await client.send("publish", {"channel": channel, "data": {"n": n, "pad": "x" * size}})
            for n in range(start, min(start + window, count))
        ]
        for cmd_id in ids:
            reply = await client.reply(cmd_id)
            assert reply.get("publish") == {}, reply


async def test_large_history_reply_reaches_a_reading_client(big_queue_gateway: GatewayProcess) -> None:
    """A history of 100 publications of 11 KB (1.1 MB, past the 1 MiB write queue) is answered whole."""
    channel = unique("chat:big-")
    clients = Clients()
    try:
        client = await clients.connected(big_queue_gateway, "reader")
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
        await _publish_many(client, channel, 100, 11_000)
        history = (await client.call("history", {"channel": channel, "limit": 100}))["history"]
        assert [p["data"]["n"] for p in history["publications"]] == list(range(100))
        assert "subscribe" in await client.call("subscribe", {"channel": unique("chat:still-open-")})
    finally:
        await clients.close_all()


async def test_history_larger_than_a_reply_is_answered_in_part(small_queue_gateway: GatewayProcess) -> None:
    """With a small write queue, a history beyond two queues' worth gets what fits; paging gets the rest."""
    channel = unique("chat:paged-")
    clients = Clients()
    try:
        client = await clients.connected(small_queue_gateway, "reader")
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
        await _publish_many(client, channel, 60, 4_000)
        first = (await client.call("history", {"channel": channel, "limit": 60}))["history"]["publications"]
        assert 0 < len(first) < 60
        rest = (
            await client.call(
                "history", {"channel": channel, "limit": 60, "since": {"offset": first[-1]["offset"]}}
            )
        )["history"]["publications"]
        got = [p["data"]["n"] for p in first + rest]
        assert got == list(range(len(got)))
        assert len(first) + len(rest) <= 60
    finally:
        await clients.close_all()


async def test_sdk_recovers_three_hundred_missed_publications_without_being_closed_as_slow(
    big_queue_gateway: GatewayProcess,
) -> None:
    """A centrifuge-python subscriber that missed 300 x 4 KB reconnects once and recovers all of them."""
    await _recover_after_missing(big_queue_gateway, count=300, size=4_000, expect_recovered=True)


async def test_sdk_told_unrecovered_when_what_it_missed_cannot_fit_a_reply(
    small_queue_gateway: GatewayProcess,
) -> None:
    """Past the reply budget the subscribe answers recovered: false, once; no 3008 reconnect loop."""
    await _recover_after_missing(small_queue_gateway, count=300, size=4_000, expect_recovered=False)


async def _recover_after_missing(
    gateway: GatewayProcess, *, count: int, size: int, expect_recovered: bool
) -> None:
    channel = unique("chat:missed-")
    sdk = SdkClients()
    raw = Clients()
    async with cuttable_proxy(gateway) as proxy:
        try:
            events = ClientEvents()
            client = sdk.new(proxy.url, gateway.token("alice"), events=events)
            sub_events = SubEvents()
            sub = client.new_subscription(channel, events=sub_events, recoverable=True, positioned=True)
            await client.connect()
            await subscribed(sub, sub_events)
            publisher = await raw.connected(gateway, "bob")
            assert "subscribe" in await publisher.call("subscribe", {"channel": channel})

            proxy.hold()
            proxy.cut()
            await next_matching(events.connecting, lambda c: c.code != CONNECT_CALLED)
            await _publish_many(publisher, channel, count, size)
            proxy.release()

            again = await next_event(sub_events.subscribed)
            assert (again.was_recovering, again.recovered) == (True, expect_recovered)
            if expect_recovered:
                missed = [(await next_event(sub_events.publications)).pub.offset for _ in range(count)]
                assert missed == list(range(1, count + 1))
            else:
                assert again.stream_position.offset == count  # positioned at the top: load history from here
            # One reconnect, then the client stays: no close as slow, no loop.
            assert "subscribe" in await publisher.call("subscribe", {"channel": unique("chat:barrier-")})
            await publisher.call("publish", {"channel": channel, "data": {"n": "after"}})
            assert (await next_event(sub_events.publications)).pub.data == {"n": "after"}
            assert events.connecting.empty()
            assert events.disconnected.empty()
        finally:
            await raw.close_all()
            await sdk.close()


# --------------------------------------------------------------------------- bounded storage


STREAMS_EXPIRE = """\
[namespaces.chat]
history_size = 10
history_ttl_s = 1.0
allow_subscribe_for_client = true
allow_publish_for_client = true
allow_history_for_client = true
"""


def _stream_rows(gateway: GatewayProcess) -> int:
    with contextlib.closing(sqlite3.connect(gateway.workdir / "wirehub.db")) as db:
        return int(db.execute("SELECT count(*) FROM streams").fetchone()[0])


async def test_store_keeps_no_record_of_channels_only_read_and_forgets_expired_ones(
    start_gateway: StartGateway,
) -> None:
    """Subscribing to and reading 200 new channels stores nothing; a published stream is removed
    once its history expired, and publishing again starts a new one."""
    env = {"WIREHUB_STORE_SWEEP_INTERVAL_S": "0.2"}
    gateway = await start_gateway(config=STREAMS_EXPIRE, env=env)
    clients = Clients()
    try:
        client = await clients.connected(gateway, "prober")
        for n in range(200):
            channel = f"chat:probe-{n}"
            assert "subscribe" in await client.call("subscribe", {"channel": channel})
            assert "history" in await client.call("history", {"channel": channel, "limit": 10})
            assert "unsubscribe" in await client.call("unsubscribe", {"channel": channel})
        assert _stream_rows(gateway) == 0

        channel = unique("chat:short-lived-")
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
        first = await client.call("history", {"channel": channel, "limit": 0})
        assert first["history"].get("epoch", "") == ""  # no stream yet
        publisher = await clients.connected(gateway, "publisher")
        assert (await publisher.call("publish", {"channel": channel, "data": 1})).get("publish") == {}
        assert (await client.push())["pub"]["offset"] == 1
        old_epoch = (await publisher.call("history", {"channel": channel, "limit": 0}))["history"]["epoch"]
        assert _stream_rows(gateway) == 1
        async with asyncio.timeout(10):
            while _stream_rows(gateway):  # noqa: ASYNC110 - the sweep has no event to wait on
                await asyncio.sleep(0.1)

        assert (await publisher.call("publish", {"channel": channel, "data": 2})).get("publish") == {}
        history = (await publisher.call("history", {"channel": channel, "limit": 10}))["history"]
        assert [p["offset"] for p in history["publications"]] == [1]  # a new stream, from 1
        assert history["epoch"] not in ("", old_epoch)
        # The subscriber's offsets were the old stream's: it is told to recover (and learns the new one).
        await assert_closed_with(client, 3010)
    finally:
        await clients.close_all()
