"""Each limit against a real ``wirehub serve`` process, answering with Centrifugo's codes.

Connections per user (3504), channels per connection (106, and 3505 for a token with too many
server-side channels), commands per connection (111, then 3013), errors per connection (3509),
allowed origins (403 before the upgrade) and new connections per replica (503 before the
upgrade). Limits are set so low, and refill so slowly, that every count is exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.gateway_process import GatewayProcess
from tests.helpers import Clients, assert_closed_with, assert_error, running_gateway, unique
from tests.raw_client import RawClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER_CONNECTION_LIMIT = 3
CHANNEL_LIMIT = 4
MAX_ERRORS = 5
ALLOWED_ORIGINS = ["https://app.example.com", "https://*.example.org"]

NAMESPACES = """
[namespaces.open]
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
"""

LIMITS_CONFIG = f"""
[server]
allowed_origins = {json.dumps(ALLOWED_ORIGINS)}

[client]
user_connection_limit = {USER_CONNECTION_LIMIT}
channel_limit = {CHANNEL_LIMIT}
max_errors = {MAX_ERRORS}
max_errors_interval_s = 3600.0
allow_anonymous_connect_without_token = true
{NAMESPACES}"""

COMMAND_BURST = 10
# One token per 100 s: within a test the buckets refill by less than one command.
RATE_CONFIG = f"""
[client]
command_rate_per_s = 0.01
command_burst = {COMMAND_BURST}
max_errors = 3
{NAMESPACES}"""

TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- fixtures and helpers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """Connection, channel, error and origin limits; ``on_connect`` refuses ``{"refuse": true}``."""
    async with running_gateway(
        tmp_path_factory.mktemp("limits"), config=LIMITS_CONFIG, app="tests.apps.permission_rules:app"
    ) as gateway:
        yield gateway


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rate_gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """Ten commands per connection, then almost no refill."""
    async with running_gateway(tmp_path_factory.mktemp("rates"), config=RATE_CONFIG) as gateway:
        yield gateway


# --------------------------------------------------------------------------- connections per user


async def test_connect_closes_with_3504_when_user_has_too_many_connections(
    gw: GatewayProcess, clients: Clients
) -> None:
    """The user's connection beyond ``user_connection_limit`` is closed with 3504; others are not."""
    user = unique("busy-")
    for _ in range(USER_CONNECTION_LIMIT):
        await clients.connected(gw, user)
    extra = await clients.open(gw)
    with pytest.raises(ConnectionClosed):
        await extra.connect(gw.token(user))
    await assert_closed_with(extra, 3504)
    await clients.connected(gw, unique("someone-else-"))


async def test_connect_succeeds_again_when_a_connection_of_the_user_closes(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Closing one of the user's connections frees its place for a new one."""
    user = unique("returning-")
    held = [await clients.connected(gw, user) for _ in range(USER_CONNECTION_LIMIT)]
    await held[0].close()
    # The server lets go of the closed connection shortly after the close handshake: retry until
    # it has (each refusal is a 3504 reply, not a wait on time).
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            client = await clients.open(gw)
            try:
                reply = await client.connect(gw.token(user))
            except ConnectionClosed:
                await assert_closed_with(client, 3504)
                continue
            assert "connect" in reply, reply
            break


async def test_connect_does_not_count_anonymous_connections(gw: GatewayProcess, clients: Clients) -> None:
    """Anonymous connections have no user to count: more than the limit may connect."""
    for _ in range(USER_CONNECTION_LIMIT + 2):
        client = await clients.open(gw)
        reply = await client.call("connect", {})
        assert "connect" in reply, reply


async def test_connect_does_not_count_connection_whose_connect_failed(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A connect refused after its token was accepted (by ``on_connect``, 103) takes no place."""
    user = unique("refused-")
    for _ in range(USER_CONNECTION_LIMIT + 1):
        client = await clients.open(gw)
        assert_error(await client.connect(gw.token(user), data={"refuse": True}), 103)
    for _ in range(USER_CONNECTION_LIMIT):
        await clients.connected(gw, user)


# --------------------------------------------------------------------------- channels per connection


async def test_subscribe_fails_with_106_when_channel_limit_reached(
    gw: GatewayProcess, clients: Clients
) -> None:
    """The subscription beyond ``channel_limit`` fails with 106; after an unsubscribe it succeeds."""
    client = await clients.connected(gw, unique("collector-"))
    channels = [unique("open:c-") for _ in range(CHANNEL_LIMIT + 1)]
    for channel in channels[:CHANNEL_LIMIT]:
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
    assert_error(await client.call("subscribe", {"channel": channels[-1]}), 106)
    assert "unsubscribe" in await client.call("unsubscribe", {"channel": channels[0]})
    assert "subscribe" in await client.call("subscribe", {"channel": channels[-1]})


async def test_connect_closes_with_3505_when_token_has_too_many_server_side_channels(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A token with more server-side channels than ``channel_limit`` is refused with 3505."""
    client = await clients.open(gw)
    channels = [unique("open:s-") for _ in range(CHANNEL_LIMIT + 1)]
    with pytest.raises(ConnectionClosed):
        await client.connect(gw.token(unique("hoarder-"), channels=channels))
    await assert_closed_with(client, 3505)


async def test_subscribe_fails_with_106_when_server_side_channels_fill_the_limit(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Server-side subscriptions count: a token with ``channel_limit`` of them leaves no room."""
    channels = [unique("open:s-") for _ in range(CHANNEL_LIMIT)]
    client = await clients.connected(gw, unique("full-"), channels=channels)
    assert_error(await client.call("subscribe", {"channel": unique("open:one-more-")}), 106)


# --------------------------------------------------------------------------- errors per connection


async def test_connection_closes_with_3509_when_client_keeps_provoking_errors(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Every error is answered; the one beyond ``max_errors`` is answered and then closes with 3509."""
    client = await clients.connected(gw, unique("clumsy-"))
    for _ in range(MAX_ERRORS):
        assert_error(await client.call("subscribe", {"channel": unique("nowhere:")}), 102)
    assert_error(await client.call("subscribe", {"channel": unique("nowhere:")}), 102)
    await assert_closed_with(client, 3509)


async def test_connection_stays_open_when_errors_stay_within_max_errors(
    gw: GatewayProcess, clients: Clients
) -> None:
    """``max_errors`` errors, mixed with successful commands, keep the connection."""
    client = await clients.connected(gw, unique("careful-"))
    for _ in range(MAX_ERRORS):
        assert_error(await client.call("subscribe", {"channel": unique("nowhere:")}), 102)
        channel = unique("open:ok-")
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
        assert "unsubscribe" in await client.call("unsubscribe", {"channel": channel})


# --------------------------------------------------------------------------- commands per connection


async def test_commands_fail_with_111_then_close_with_3013_when_flood_goes_on(
    rate_gw: GatewayProcess, clients: Clients
) -> None:
    """Past the burst each command gets temporary 111; owing a further burst closes with 3013."""
    client = await clients.connected(rate_gw, unique("flood-"))  # the connect took one token
    flood = COMMAND_BURST - 1 + COMMAND_BURST + 1
    first = client.next_id()
    lines = [json.dumps({"id": first + n, "unsubscribe": {"channel": "open:x"}}) for n in range(flood)]
    for _ in range(flood - 1):
        client.next_id()
    await client.send_raw("\n".join(lines))
    served = [await client.reply(first + n) for n in range(COMMAND_BURST - 1)]
    assert all("unsubscribe" in reply for reply in served), served
    # Fewer 111s than max_errors (3) would allow: temporary errors are not counted as errors.
    for n in range(COMMAND_BURST - 1, flood - 1):
        assert_error(await client.reply(first + n), 111, temporary=True)
    await assert_closed_with(client, 3013)


async def test_commands_of_other_connections_are_served_when_one_is_rate_limited(
    rate_gw: GatewayProcess, clients: Clients
) -> None:
    """Each connection has its own bucket: another client is served while one is refused."""
    greedy = await clients.connected(rate_gw, unique("greedy-"))
    for _ in range(COMMAND_BURST - 1):
        assert "unsubscribe" in await greedy.call("unsubscribe", {"channel": "open:x"})
    assert_error(await greedy.call("unsubscribe", {"channel": "open:x"}), 111, temporary=True)
    polite = await clients.connected(rate_gw, unique("polite-"))
    channel = unique("open:polite-")
    assert "subscribe" in await polite.call("subscribe", {"channel": channel})
    assert "publish" in await polite.call("publish", {"channel": channel, "data": {"ok": True}})
    push = await polite.push()
    assert push["pub"]["data"] == {"ok": True}


# --------------------------------------------------------------------------- allowed origins


@pytest.mark.parametrize(
    "origin", [None, "https://app.example.com", "https://eu.example.org", "HTTPS://APP.EXAMPLE.COM"]
)
async def test_handshake_succeeds_when_origin_allowed(
    gw: GatewayProcess, clients: Clients, origin: str | None
) -> None:
    """No Origin (non-browser clients), a listed origin or a glob match is let through."""
    client = await clients.open(gw, origin=origin)
    assert "connect" in await client.connect(gw.token(unique("browser-")))


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example.com", "https://app.example.com.evil.net", "http://app.example.com", "null"],
)
async def test_handshake_fails_with_403_when_origin_not_allowed(gw: GatewayProcess, origin: str) -> None:
    """A browser origin outside ``server.allowed_origins`` is refused with 403 before the upgrade."""
    with pytest.raises(InvalidStatus) as excinfo:
        await RawClient.open(gw.ws_url, origin=origin)
    assert excinfo.value.response.status_code == 403


async def test_default_origin_policy_on_loopback_admits_loopback_pages_and_refuses_others(
    tmp_path: Path,
) -> None:
    """Out of the box (listening on 127.0.0.1): native clients, loopback pages on any port and the
    page's own origin connect; a page on any other site is refused with 403."""
    async with running_gateway(tmp_path) as gateway:
        for origin in ("http://localhost:3000", "http://127.0.0.1:9000", "http://[::1]:5173", None):
            client = await RawClient.open(gateway.ws_url, origin=origin)
            try:
                assert "connect" in await client.connect(gateway.token("cli"))
            finally:
                await client.close()
        for origin in ("https://evil.example", "http://localhost.evil.example", "null"):
            with pytest.raises(InvalidStatus) as excinfo:
                await RawClient.open(gateway.ws_url, origin=origin)
            assert excinfo.value.response.status_code == 403, origin


async def test_handshake_succeeds_with_any_origin_when_star_configured(tmp_path: Path) -> None:
    """``allowed_origins = ["*"]`` lets every origin through."""
    async with running_gateway(tmp_path, env={"WIREHUB_SERVER_ALLOWED_ORIGINS": "*"}) as gateway:
        client = await RawClient.open(gateway.ws_url, origin="https://anywhere.example")
        try:
            assert "connect" in await client.connect(gateway.token("anyone"))
        finally:
            await client.close()


# --------------------------------------------------------------------------- new connections per replica


async def test_handshake_fails_with_503_when_connection_rate_exceeded(tmp_path: Path) -> None:
    """Beyond ``connection_burst`` new handshakes get 503 with Retry-After; open ones carry on."""
    burst = 5
    env = {"WIREHUB_CLIENT_CONNECTION_RATE_PER_S": "0.01", "WIREHUB_CLIENT_CONNECTION_BURST": str(burst)}
    async with running_gateway(tmp_path, env=env) as gateway:
        await _assert_connection_rate_limited(gateway, burst)


async def _assert_connection_rate_limited(gateway: GatewayProcess, burst: int) -> None:
    opened = [await RawClient.open(gateway.ws_url) for _ in range(burst)]
    try:
        for _ in range(3):
            with pytest.raises(InvalidStatus) as excinfo:
                await RawClient.open(gateway.ws_url)
            assert excinfo.value.response.status_code == 503
            assert excinfo.value.response.headers["Retry-After"] == "1"
        client = opened[0]
        assert "connect" in await client.connect(gateway.token("early"))
        channel = unique("chat:early-")
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
        assert "publish" in await client.call("publish", {"channel": channel, "data": {"n": 1}})
    finally:
        for client in opened:
            await client.close()
