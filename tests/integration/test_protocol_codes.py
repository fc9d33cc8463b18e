"""Every error code and close code (docs/protocol.md) a client can provoke, asserted exactly.

Each test drives a real ``wirehub serve`` process with raw frames. Gateways are shared per
module (one per configuration); tests stay independent by using channels no other test uses.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from tests import helpers
from tests.gateway_process import GatewayProcess
from tests.helpers import Clients, assert_closed_with, running_gateway, unique
from tests.raw_client import RawClient
from wirehub.auth.jwt import issue_subscription_token, issue_token

pytestmark = pytest.mark.asyncio(loop_scope="module")

# chat: the out-of-the-box namespace (history, presence, recovery, open to subscribers);
# plain: open to every client, but no history and no presence;
# locked: nothing is allowed without a subscription token;
# users: user-limited ``#`` channels are allowed, nothing else.
CONFIG = """
[client]
channel_max_length = 64
expired_close_delay_s = 0.0

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

[namespaces.plain]
allow_subscribe_for_client = true
allow_publish_for_client = true
allow_history_for_client = true
allow_presence_for_client = true

[namespaces.locked]

[namespaces.users]
allow_user_limited_channels = true
"""
CHANNEL_MAX_LENGTH = 64

# Ping intervals are whole seconds (the connect reply announces them so) and the pong timeout
# must be shorter than the interval: the shortest timers are a 1 s interval, a 0.5 s pong timeout.
PING_INTERVAL_S = 1
TIMERS_ENV = {
    "WIREHUB_CLIENT_STALE_TIMEOUT_S": "0.5",
    "WIREHUB_CLIENT_PING_INTERVAL_S": str(PING_INTERVAL_S),
    "WIREHUB_CLIENT_PONG_TIMEOUT_S": "0.5",
}

WRONG_SECRET = "not-the-gateway-secret-0123456789abcdef"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """The module's main gateway: the namespaces of ``CONFIG``, default timers (ping 25 s)."""
    async with running_gateway(tmp_path_factory.mktemp("codes"), config=CONFIG) as gateway:
        yield gateway


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def timers_gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """A gateway with a 0.5 s stale timeout, 1 s pings and a 0.5 s pong timeout."""
    async with running_gateway(tmp_path_factory.mktemp("timers"), env=TIMERS_ENV) as gateway:
        yield gateway


def assert_error(reply: dict[str, Any], code: int) -> None:
    """The reply is an error with ``code``, a message, and not marked temporary."""
    helpers.assert_error(reply, code)
    error = reply["error"]
    assert isinstance(error["message"], str), reply
    assert error["message"], reply
    assert set(reply) == {"id", "error"}, reply


async def publish_numbers(client: RawClient, channel: str, count: int) -> None:
    for n in range(1, count + 1):
        reply = await client.call("publish", {"channel": channel, "data": {"n": n}})
        assert reply == {"id": reply["id"], "publish": {}}, reply


async def next_push(client: RawClient, channel: str, kind: str) -> dict[str, Any]:
    """The next push of ``kind`` on ``channel``; other pushes and pings are skipped."""
    while True:
        push = await client.push()
        if push.get("channel") == channel and kind in push:
            body: dict[str, Any] = push[kind]
            return body


# --------------------------------------------------------------------------- 3501 bad request


@pytest.mark.parametrize(
    "command",
    [
        {"subscribe": {"channel": "chat:early"}},
        {"publish": {"channel": "chat:early", "data": {}}},
        {"history": {"channel": "chat:early"}},
        {"rpc": {"method": "m"}},
        {"refresh": {"token": "x"}},
        {"no_such_method": {}},
    ],
    ids=["subscribe", "publish", "history", "rpc", "refresh", "unknown"],
)
async def test_command_before_connect_closes_with_3501(
    gw: GatewayProcess, clients: Clients, command: dict[str, Any]
) -> None:
    """Any command other than connect as the first command closes the connection with 3501."""
    client = await clients.open(gw)
    await client.send_raw(json.dumps({"id": 1, **command}))
    await assert_closed_with(client, 3501)


async def test_connect_twice_closes_with_3501(gw: GatewayProcess, clients: Clients) -> None:
    """A second connect on an authenticated connection closes it with 3501."""
    client = await clients.connected(gw)
    await client.send("connect", {"token": gw.token("alice")})
    await assert_closed_with(client, 3501)


@pytest.mark.parametrize("channel", ["", None], ids=["empty", "missing"])
async def test_subscribe_closes_with_3501_when_channel_is_empty(
    gw: GatewayProcess, clients: Clients, channel: str | None
) -> None:
    """A subscribe with an empty or missing channel closes the connection with 3501."""
    client = await clients.connected(gw)
    params: dict[str, Any] = {} if channel is None else {"channel": channel}
    await client.send("subscribe", params)
    await assert_closed_with(client, 3501)


async def test_pong_closes_with_3501_when_no_ping_is_outstanding(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A bare ``{}`` sent when the server has no ping outstanding closes with 3501."""
    client = await clients.connected(gw)
    await client.send_raw("{}")
    await assert_closed_with(client, 3501)


async def test_pong_closes_with_3501_when_sent_before_connect(gw: GatewayProcess, clients: Clients) -> None:
    """A bare ``{}`` as the very first frame is a stray pong too and closes with 3501."""
    client = await clients.open(gw)
    await client.send_raw("{}")
    await assert_closed_with(client, 3501)


@pytest.mark.parametrize(
    "command",
    [
        {"subscribe": {"channel": "chat:no-id"}},
        {"publish": {"channel": "chat:no-id", "data": {}}},
        {"presence": {"channel": "chat:no-id"}},
        {"rpc": {"method": "m"}},
        {"id": 0, "history": {"channel": "chat:no-id"}},
        {"no_such_method": {}},
    ],
    ids=["subscribe", "publish", "presence", "rpc", "id-zero-history", "unknown"],
)
async def test_command_without_id_closes_with_3501(
    gw: GatewayProcess, clients: Clients, command: dict[str, Any]
) -> None:
    """Only ``send`` and the pong may come without an id; any other command closes with 3501."""
    client = await clients.connected(gw)
    await client.send_raw(json.dumps(command))
    await assert_closed_with(client, 3501)


async def test_refresh_closes_with_3501_when_connection_does_not_expire(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A refresh on a connection whose token had no expiry is unexpected and closes with 3501."""
    client = await clients.connected(gw, ttl_s=None)
    await client.send("refresh", {"token": gw.token("alice")})
    await assert_closed_with(client, 3501)


# --------------------------------------------------------------------------- 109 then 3501


async def test_connect_fails_with_109_when_token_expired_and_next_command_closes_with_3501(
    gw: GatewayProcess, clients: Clients
) -> None:
    """An expired connection token is answered with 109; the unusable connection then closes with 3501."""
    client = await clients.open(gw)
    reply = await client.connect(gw.token("alice", ttl_s=-60))
    assert_error(reply, 109)
    await client.send("subscribe", {"channel": unique("chat:after-109-")})
    await assert_closed_with(client, 3501)


async def test_connect_after_failed_connect_closes_with_3501(gw: GatewayProcess, clients: Clients) -> None:
    """Even a retried connect after a failed one closes with 3501: the client must reconnect."""
    client = await clients.open(gw)
    assert_error(await client.connect(gw.token("alice", ttl_s=-60)), 109)
    await client.send("connect", {"token": gw.token("alice")})
    await assert_closed_with(client, 3501)


# --------------------------------------------------------------------------- 3500 invalid token


def _bad_signature(gateway: GatewayProcess) -> str:
    return issue_token(WRONG_SECRET, user="alice", ttl_s=3600)


def _malformed(gateway: GatewayProcess) -> str:
    return "not.a.jwt"


def _garbage(gateway: GatewayProcess) -> str:
    return "garbage"


def _with_channel_claim(gateway: GatewayProcess) -> str:
    return gateway.token("alice", channel="chat:room")


def _subscription_token(gateway: GatewayProcess) -> str:
    return gateway.sub_token("alice", "chat:room")


def _tampered(gateway: GatewayProcess) -> str:
    header, payload, signature = gateway.token("alice").split(".")
    return ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])


@pytest.mark.parametrize(
    "make_token",
    [_bad_signature, _tampered, _malformed, _garbage, _with_channel_claim, _subscription_token],
    ids=["bad-signature", "tampered", "malformed", "garbage", "channel-claim", "subscription-token"],
)
async def test_connect_closes_with_3500_when_token_invalid(
    gw: GatewayProcess, clients: Clients, make_token: Callable[[GatewayProcess], str]
) -> None:
    """A connection token that is forged, malformed or carries ``channel`` closes with 3500."""
    client = await clients.open(gw)
    await client.send("connect", {"token": make_token(gw)})
    await assert_closed_with(client, 3500)


async def test_refresh_closes_with_3500_when_token_belongs_to_another_user(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Refreshing with a valid token of another user closes the connection with 3500."""
    client = await clients.connected(gw, "alice")
    await client.send("refresh", {"token": gw.token("mallory")})
    await assert_closed_with(client, 3500)


async def test_refresh_closes_with_3500_when_token_invalid(gw: GatewayProcess, clients: Clients) -> None:
    """Refreshing with a forged token closes the connection with 3500."""
    client = await clients.connected(gw, "alice")
    await client.send("refresh", {"token": issue_token(WRONG_SECRET, user="alice")})
    await assert_closed_with(client, 3500)


@pytest.mark.parametrize("mismatch", ["user", "channel", "client"])
async def test_subscribe_closes_with_3500_when_subscription_token_is_for_someone_else(
    gw: GatewayProcess, clients: Clients, mismatch: str
) -> None:
    """A valid subscription token for another user, channel or client id closes with 3500."""
    client = await clients.connected(gw, "alice")
    channel = unique("locked:tok-")
    token = {
        "user": gw.sub_token("bob", channel),
        "channel": gw.sub_token("alice", unique("locked:other-")),
        "client": gw.sub_token("alice", channel, client="some-other-client-id"),
    }[mismatch]
    await client.send("subscribe", {"channel": channel, "token": token})
    await assert_closed_with(client, 3500)


async def test_sub_refresh_closes_with_3500_when_token_is_for_another_user(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A sub_refresh with another user's token for the channel closes with 3500."""
    client = await clients.connected(gw, "alice")
    channel = unique("locked:tok-")
    reply = await client.call("subscribe", {"channel": channel, "token": gw.sub_token("alice", channel)})
    assert "subscribe" in reply, reply
    await client.send("sub_refresh", {"channel": channel, "token": gw.sub_token("bob", channel)})
    await assert_closed_with(client, 3500)


async def test_subscribe_fails_with_103_when_subscription_token_is_forged(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A badly signed subscription token is a 103 error, not a disconnect (docs/protocol.md, "Tokens")."""
    client = await clients.connected(gw, "alice")
    channel = unique("locked:tok-")
    forged = issue_subscription_token(WRONG_SECRET, user="alice", channel=channel)
    assert_error(await client.call("subscribe", {"channel": channel, "token": forged}), 103)
    assert_error(await client.call("subscribe", {"channel": channel, "token": "not.a.jwt"}), 103)
    ok = await client.call("subscribe", {"channel": channel, "token": gw.sub_token("alice", channel)})
    assert "subscribe" in ok, ok


# --------------------------------------------------------------------------- 3502, 3507, 3508


async def test_connection_closes_with_3502_when_no_connect_within_stale_timeout(
    timers_gw: GatewayProcess, clients: Clients
) -> None:
    """A connection that sends nothing is closed with 3502 once the stale timeout passes."""
    client = await clients.open(timers_gw)
    await assert_closed_with(client, 3502)


async def test_connect_closes_with_3507_when_token_missing_and_anonymous_not_allowed(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A connect without a token is refused with 3507 when anonymous connections are off."""
    client = await clients.open(gw)
    await client.send("connect", {})
    await assert_closed_with(client, 3507)


async def test_send_closes_with_3508_when_no_handler(gw: GatewayProcess, clients: Clients) -> None:
    """An async ``send`` to a gateway without a message handler closes with 3508."""
    client = await clients.connected(gw)
    await client.send_raw(json.dumps({"send": {"data": {"hello": "world"}}}))
    await assert_closed_with(client, 3508)


# --------------------------------------------------------------------------- ping / pong, 3012


async def test_connect_reply_announces_client_version_ping_and_pong(
    gw: GatewayProcess, clients: Clients
) -> None:
    """The connect result carries the client id, the version, the ping interval and pong:true."""
    client = await clients.open(gw)
    reply = await client.connect(gw.token("alice", ttl_s=3600))
    result = reply["connect"]
    assert isinstance(result["client"], str)
    assert result["client"]
    assert isinstance(result["version"], str)
    assert result["version"]
    assert result["ping"] == 25
    assert result["pong"] is True
    assert result["expires"] is True
    assert 3590 <= result["ttl"] <= 3600


async def test_connect_reply_has_no_expiry_when_token_has_no_exp(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A token without ``exp`` gives a connection that never expires: no expires/ttl in the result."""
    client = await clients.open(gw)
    result = (await client.connect(gw.token("alice", ttl_s=None)))["connect"]
    assert "expires" not in result
    assert "ttl" not in result


async def test_connect_client_ids_are_unique(gw: GatewayProcess, clients: Clients) -> None:
    """Every connection gets its own client id."""
    ids = set()
    for _ in range(3):
        client = await clients.open(gw)
        ids.add((await client.connect(gw.token("alice")))["connect"]["client"])
    assert len(ids) == 3


async def test_ping_arrives_after_ping_interval(timers_gw: GatewayProcess, clients: Clients) -> None:
    """The server sends a bare ``{}`` ping within the ping interval it announced."""
    client = await clients.open(timers_gw)
    result = (await client.connect(timers_gw.token("alice")))["connect"]
    assert result["ping"] == PING_INTERVAL_S
    assert result["pong"] is True
    started = time.monotonic()
    message = await client.receive()  # RawClient waits at most 5 s
    elapsed = time.monotonic() - started
    assert message == {}
    assert PING_INTERVAL_S / 2 - 0.2 <= elapsed <= PING_INTERVAL_S + 1.0


async def test_connection_closes_with_3012_when_pings_are_not_answered(
    timers_gw: GatewayProcess, clients: Clients
) -> None:
    """A client that never answers a ping is closed with 3012 after the pong timeout."""
    client = await clients.open(timers_gw)
    assert "connect" in await client.connect(timers_gw.token("alice"))
    await assert_closed_with(client, 3012)


async def test_connection_stays_open_when_pings_are_answered(
    timers_gw: GatewayProcess, clients: Clients
) -> None:
    """Answering every ``{}`` ping with ``{}`` keeps the connection alive across several pings."""
    client = await clients.open(timers_gw)
    assert "connect" in await client.connect(timers_gw.token("alice"))
    for _ in range(3):
        assert await client.receive() == {}
        await client.send_raw("{}")
    # The next ping comes only after the previous pong deadline passed without a close.
    assert await client.receive() == {}
    await client.send_raw("{}")
    channel = unique("chat:alive-")
    reply = await client.call("subscribe", {"channel": channel})
    assert "subscribe" in reply, reply


# --------------------------------------------------------------------------- 3005 and refresh


async def test_connection_closes_with_3005_when_not_refreshed(gw: GatewayProcess, clients: Clients) -> None:
    """A connection whose token expires and is never refreshed closes with 3005."""
    client = await clients.open(gw)
    result = (await client.connect(gw.token("alice", ttl_s=2)))["connect"]
    assert result["expires"] is True
    assert 1 <= result["ttl"] <= 2
    await assert_closed_with(client, 3005)


async def test_refresh_extends_connection_past_original_expiry(gw: GatewayProcess, clients: Clients) -> None:
    """A refresh with a fresh token answers expires/ttl and keeps the connection past the old expiry."""
    client = await clients.open(gw)
    connected = (await client.connect(gw.token("alice", ttl_s=2)))["connect"]
    reply = await client.call("refresh", {"token": gw.token("alice", ttl_s=3600)})
    result = reply["refresh"]
    assert result["client"] == connected["client"]
    assert result["version"] == connected["version"]
    assert result["expires"] is True
    assert 3590 <= result["ttl"] <= 3600
    # A witness connected later with a longer token: once it expires, so would have the first.
    witness = await clients.open(gw)
    assert "connect" in await witness.connect(gw.token("alice", ttl_s=3))
    await assert_closed_with(witness, 3005)
    channel = unique("chat:refreshed-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})


async def test_refresh_fails_with_109_when_token_expired(gw: GatewayProcess, clients: Clients) -> None:
    """A refresh with an expired token of the same user is answered with 109."""
    client = await clients.connected(gw, "alice")
    assert_error(await client.call("refresh", {"token": gw.token("alice", ttl_s=-60)}), 109)


# --------------------------------------------------------------------------- 2501 and sub_refresh


async def test_subscription_gets_unsubscribe_2501_when_token_expires(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A subscription token that expires without sub_refresh ends the subscription with push 2501."""
    client = await clients.connected(gw, "alice")
    channel = unique("locked:expiring-")
    reply = await client.call(
        "subscribe", {"channel": channel, "token": gw.sub_token("alice", channel, ttl_s=2)}
    )
    result = reply["subscribe"]
    assert result["expires"] is True
    assert 1 <= result["ttl"] <= 2
    body = await next_push(client, channel, "unsubscribe")
    assert body["code"] == 2501
    assert isinstance(body["reason"], str)
    # The server really let go: subscribing again is not "already subscribed".
    again = await client.call("subscribe", {"channel": channel, "token": gw.sub_token("alice", channel)})
    assert "subscribe" in again, again


async def test_sub_refresh_extends_subscription_past_original_expiry(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A sub_refresh with a fresh token answers expires/ttl and keeps the subscription past the old expiry."""
    client = await clients.connected(gw, "alice")
    channel = unique("locked:refreshed-")
    first = await client.call(
        "subscribe", {"channel": channel, "token": gw.sub_token("alice", channel, ttl_s=2)}
    )
    assert first["subscribe"]["expires"] is True
    reply = await client.call("sub_refresh", {"channel": channel, "token": gw.sub_token("alice", channel)})
    assert reply["sub_refresh"]["expires"] is True
    assert 3590 <= reply["sub_refresh"]["ttl"] <= 3600
    # A witness subscription made later with a longer token: when it expires, so would have the first.
    witness = unique("locked:witness-")
    assert "subscribe" in await client.call(
        "subscribe", {"channel": witness, "token": gw.sub_token("alice", witness, ttl_s=3)}
    )
    while True:
        push = await client.push()
        assert "unsubscribe" not in push or push["channel"] == witness, push
        if "unsubscribe" in push:
            assert push["unsubscribe"]["code"] == 2501
            break
    still = await client.call("subscribe", {"channel": channel, "token": gw.sub_token("alice", channel)})
    assert_error(still, 105)


async def test_sub_refresh_fails_with_109_when_token_expired(gw: GatewayProcess, clients: Clients) -> None:
    """A sub_refresh with an expired subscription token is answered with 109."""
    client = await clients.connected(gw, "alice")
    channel = unique("locked:tok-")
    assert "subscribe" in await client.call(
        "subscribe", {"channel": channel, "token": gw.sub_token("alice", channel)}
    )
    reply = await client.call(
        "sub_refresh", {"channel": channel, "token": gw.sub_token("alice", channel, ttl_s=-60)}
    )
    assert_error(reply, 109)


async def test_subscribe_fails_with_109_when_subscription_token_expired(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A subscribe with an expired subscription token is answered with 109."""
    client = await clients.connected(gw, "alice")
    channel = unique("locked:tok-")
    reply = await client.call(
        "subscribe", {"channel": channel, "token": gw.sub_token("alice", channel, ttl_s=-60)}
    )
    assert_error(reply, 109)


# --------------------------------------------------------------------------- request errors


async def test_subscribe_fails_with_102_when_namespace_unknown(gw: GatewayProcess, clients: Clients) -> None:
    """A channel in a namespace that is not configured is answered with 102."""
    client = await clients.connected(gw)
    assert_error(await client.call("subscribe", {"channel": unique("nosuchns:")}), 102)
    assert_error(await client.call("publish", {"channel": unique("nosuchns:"), "data": {}}), 102)
    assert_error(await client.call("history", {"channel": unique("nosuchns:")}), 102)


async def test_subscribe_fails_with_103_when_namespace_does_not_allow_it(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Subscribing without a token where the namespace does not allow clients is answered with 103."""
    client = await clients.connected(gw)
    assert_error(await client.call("subscribe", {"channel": unique("locked:")}), 103)


@pytest.mark.parametrize("prefix", ["$chat:", "$"], ids=["namespaced", "top-level"])
async def test_subscribe_fails_with_103_when_private_channel_has_no_token(
    gw: GatewayProcess, clients: Clients, prefix: str
) -> None:
    """A ``$`` channel without a subscription token is refused with 103, even in an open namespace."""
    client = await clients.connected(gw)
    assert_error(await client.call("subscribe", {"channel": unique(prefix)}), 103)


async def test_subscribe_to_private_channel_succeeds_with_token(gw: GatewayProcess, clients: Clients) -> None:
    """A ``$`` channel is open to the holder of a matching subscription token."""
    client = await clients.connected(gw, "alice")
    channel = unique("$chat:")
    reply = await client.call("subscribe", {"channel": channel, "token": gw.sub_token("alice", channel)})
    assert "subscribe" in reply, reply


async def test_subscribe_fails_with_103_when_user_limited_channel_is_for_another_user(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A ``#`` channel that does not list the user is refused with 103; one that does is allowed."""
    client = await clients.connected(gw, "alice")
    room = uuid.uuid4().hex[:12]
    assert_error(await client.call("subscribe", {"channel": f"users:{room}#bob,carol"}), 103)
    assert "subscribe" in await client.call("subscribe", {"channel": f"users:{room}#bob,alice"})


async def test_subscribe_fails_with_103_when_namespace_disallows_user_limited_channels(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A ``#`` channel listing the user is refused with 103 where allow_user_limited_channels is off."""
    client = await clients.connected(gw, "alice")
    assert_error(await client.call("subscribe", {"channel": unique("chat:dm") + "#alice"}), 103)


@pytest.mark.parametrize("namespace", ["chat:", "locked:"], ids=["not-subscribed", "locked"])
async def test_publish_fails_with_103_when_not_permitted(
    gw: GatewayProcess, clients: Clients, namespace: str
) -> None:
    """Publishing where the client is not allowed (not a subscriber, or a closed namespace) gives 103."""
    client = await clients.connected(gw)
    reply = await client.call("publish", {"channel": unique(namespace), "data": {"x": 1}})
    assert_error(reply, 103)


async def test_history_fails_with_103_when_not_subscribed(gw: GatewayProcess, clients: Clients) -> None:
    """History of a namespace that allows it only to subscribers is refused with 103 to others."""
    client = await clients.connected(gw)
    assert_error(await client.call("history", {"channel": unique("chat:"), "limit": -1}), 103)
    assert_error(await client.call("presence", {"channel": unique("chat:")}), 103)


async def test_unknown_method_fails_with_104(gw: GatewayProcess, clients: Clients) -> None:
    """A command with an id and a method key the server does not know is answered with 104."""
    client = await clients.connected(gw)
    cmd_id = client.next_id()
    await client.send_raw(json.dumps({"id": cmd_id, "frobnicate": {"x": 1}}))
    assert_error(await client.reply(cmd_id), 104)
    # The connection lives on.
    assert "subscribe" in await client.call("subscribe", {"channel": unique("chat:after-104-")})


async def test_subscribe_fails_with_105_when_already_subscribed(gw: GatewayProcess, clients: Clients) -> None:
    """Subscribing twice to one channel on one connection is answered with 105."""
    client = await clients.connected(gw)
    channel = unique("chat:twice-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    assert_error(await client.call("subscribe", {"channel": channel}), 105)


async def test_subscribe_fails_with_106_when_channel_too_long(gw: GatewayProcess, clients: Clients) -> None:
    """A channel name longer than channel_max_length is answered with 106; one at the limit works."""
    client = await clients.connected(gw)
    stem = unique("chat:")
    at_limit = stem + "x" * (CHANNEL_MAX_LENGTH - len(stem))
    assert "subscribe" in await client.call("subscribe", {"channel": at_limit})
    assert_error(await client.call("subscribe", {"channel": at_limit + "x"}), 106)


@pytest.mark.parametrize(
    "suffix",
    [" space", "caf\u00e9", "a*b", "a&b", "a/b", "tab\t", "nul\u0000"],
    ids=["space", "non-ascii", "star", "ampersand", "slash", "tab", "nul"],
)
async def test_subscribe_fails_with_107_when_channel_has_invalid_characters(
    gw: GatewayProcess, clients: Clients, suffix: str
) -> None:
    """A channel with characters outside printable ASCII, or reserved ones, is answered with 107."""
    client = await clients.connected(gw)
    assert_error(await client.call("subscribe", {"channel": unique("chat:") + suffix}), 107)


async def test_history_fails_with_107_when_reverse_since_offset_zero(
    gw: GatewayProcess, clients: Clients
) -> None:
    """History with reverse:true and since.offset 0 is a bad request (107)."""
    client = await clients.connected(gw)
    channel = unique("chat:rev-")
    epoch = (await client.call("subscribe", {"channel": channel}))["subscribe"]["epoch"]
    await publish_numbers(client, channel, 2)
    reply = await client.call(
        "history", {"channel": channel, "limit": -1, "reverse": True, "since": {"offset": 0, "epoch": epoch}}
    )
    assert_error(reply, 107)
    newest_first = await client.call(
        "history", {"channel": channel, "limit": -1, "reverse": True, "since": {"offset": 3, "epoch": epoch}}
    )
    assert [p["offset"] for p in newest_first["history"]["publications"]] == [2, 1]


@pytest.mark.parametrize("method", ["history", "presence", "presence_stats"])
async def test_request_fails_with_108_when_namespace_has_feature_off(
    gw: GatewayProcess, clients: Clients, method: str
) -> None:
    """History or presence in a namespace without them is answered with 108."""
    client = await clients.connected(gw)
    channel = unique("plain:")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    assert_error(await client.call(method, {"channel": channel}), 108)


async def test_rpc_fails_with_108_when_no_handler(gw: GatewayProcess, clients: Clients) -> None:
    """An rpc to a gateway without RPC handlers is answered with 108."""
    client = await clients.connected(gw)
    assert_error(await client.call("rpc", {"method": "anything", "data": {"x": 1}}), 108)
    assert_error(await client.call("rpc", {"method": "chat:anything"}), 108)


async def test_history_fails_with_112_when_since_epoch_mismatch(gw: GatewayProcess, clients: Clients) -> None:
    """History since a position in another epoch is answered with 112."""
    client = await clients.connected(gw)
    channel = unique("chat:epoch-")
    epoch = (await client.call("subscribe", {"channel": channel}))["subscribe"]["epoch"]
    await publish_numbers(client, channel, 1)
    reply = await client.call(
        "history", {"channel": channel, "limit": -1, "since": {"offset": 0, "epoch": epoch + "x"}}
    )
    assert_error(reply, 112)
    ok = await client.call(
        "history", {"channel": channel, "limit": -1, "since": {"offset": 0, "epoch": epoch}}
    )
    assert [p["offset"] for p in ok["history"]["publications"]] == [1]


# --------------------------------------------------------------------------- recovery


async def _stream_with_publications(clients: Clients, gw: GatewayProcess, count: int) -> tuple[str, str]:
    """A fresh chat channel with ``count`` publications; returns (channel, epoch)."""
    publisher = await clients.connected(gw, "publisher")
    channel = unique("chat:rec-")
    result = (await publisher.call("subscribe", {"channel": channel}))["subscribe"]
    assert result["recoverable"] is True
    assert result["positioned"] is True
    assert "offset" not in result  # an empty stream's top is 0, omitted
    assert result["epoch"] == ""  # nor is there an epoch before the first publication
    await publish_numbers(publisher, channel, count)
    epoch = (await publisher.call("history", {"channel": channel, "limit": 0}))["history"]["epoch"]
    assert isinstance(epoch, str)
    assert epoch
    return channel, epoch


async def test_subscribe_fails_with_112_when_recovering_wrong_epoch_with_reject_flag(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Recovery from another epoch with flag bit 2 (reject unrecovered) is answered with 112."""
    channel, epoch = await _stream_with_publications(clients, gw, 3)
    client = await clients.connected(gw)
    reply = await client.call(
        "subscribe", {"channel": channel, "recover": True, "offset": 1, "epoch": epoch + "x", "flag": 3}
    )
    assert_error(reply, 112)
    # The failed subscribe left nothing behind: a plain subscribe works.
    assert "subscribe" in await client.call("subscribe", {"channel": channel})


async def test_subscribe_is_not_recovered_when_epoch_wrong_without_reject_flag(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Recovery from another epoch without flag bit 2 answers recovered:false, no publications, the top."""
    channel, epoch = await _stream_with_publications(clients, gw, 3)
    client = await clients.connected(gw)
    reply = await client.call(
        "subscribe", {"channel": channel, "recover": True, "offset": 1, "epoch": epoch + "x", "flag": 1}
    )
    result = reply["subscribe"]
    assert result.get("recovered", False) is False
    assert result["was_recovering"] is True
    assert not result.get("publications")
    assert result["offset"] == 3
    assert result["epoch"] == epoch


async def test_subscribe_recovers_exactly_the_missed_publications(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Recovery from offset O in the current epoch returns exactly O+1..top, recovered, with offset O."""
    channel, epoch = await _stream_with_publications(clients, gw, 5)
    client = await clients.connected(gw)
    reply = await client.call(
        "subscribe", {"channel": channel, "recover": True, "offset": 2, "epoch": epoch, "flag": 3}
    )
    result = reply["subscribe"]
    assert result["recovered"] is True
    assert result["was_recovering"] is True
    assert result["offset"] == 2
    assert result["epoch"] == epoch
    assert [(p["offset"], p["data"]) for p in result["publications"]] == [
        (3, {"n": 3}),
        (4, {"n": 4}),
        (5, {"n": 5}),
    ]


async def test_subscribe_recovers_from_zero_with_every_publication(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Recovery from offset 0 in the current epoch returns the whole stream."""
    channel, epoch = await _stream_with_publications(clients, gw, 3)
    client = await clients.connected(gw)
    reply = await client.call("subscribe", {"channel": channel, "recover": True, "offset": 0, "epoch": epoch})
    result = reply["subscribe"]
    assert result["recovered"] is True
    assert result.get("offset", 0) == 0
    assert [p["offset"] for p in result["publications"]] == [1, 2, 3]


async def test_subscribe_recovers_from_top_with_no_publications(gw: GatewayProcess, clients: Clients) -> None:
    """Recovery from the stream top is recovered:true with no publications and offset = top."""
    channel, epoch = await _stream_with_publications(clients, gw, 4)
    client = await clients.connected(gw)
    reply = await client.call(
        "subscribe", {"channel": channel, "recover": True, "offset": 4, "epoch": epoch, "flag": 3}
    )
    result = reply["subscribe"]
    assert result["recovered"] is True
    assert result["was_recovering"] is True
    assert result["offset"] == 4
    assert result["epoch"] == epoch
    assert not result.get("publications")


async def test_subscribe_is_not_recovered_when_offset_beyond_top(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Recovery from an offset the stream never reached is not recovered, and 112 with flag bit 2."""
    channel, epoch = await _stream_with_publications(clients, gw, 2)
    client = await clients.connected(gw)
    reply = await client.call("subscribe", {"channel": channel, "recover": True, "offset": 9, "epoch": epoch})
    result = reply["subscribe"]
    assert result.get("recovered", False) is False
    assert not result.get("publications")
    assert result["offset"] == 2
    other = await clients.connected(gw)
    rejected = await other.call(
        "subscribe", {"channel": channel, "recover": True, "offset": 9, "epoch": epoch, "flag": 2}
    )
    assert_error(rejected, 112)


async def test_recovered_subscription_continues_with_live_publications(
    gw: GatewayProcess, clients: Clients
) -> None:
    """After a recovery the live stream continues right after the recovered top, without gaps."""
    channel, epoch = await _stream_with_publications(clients, gw, 3)
    client = await clients.connected(gw)
    result = (
        await client.call("subscribe", {"channel": channel, "recover": True, "offset": 1, "epoch": epoch})
    )["subscribe"]
    assert [p["offset"] for p in result["publications"]] == [2, 3]
    await publish_numbers(client, channel, 1)
    pub = await next_push(client, channel, "pub")
    assert pub["offset"] == 4
    assert pub["data"] == {"n": 1}
