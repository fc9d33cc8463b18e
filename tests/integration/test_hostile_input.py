"""Hostile and odd input never crashes or hangs the gateway, and never loses acknowledged data.

After each case a second, well-behaved client must still connect, subscribe, publish and
receive on the same gateway process. Gateways are shared per module, one per configuration.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.exceptions import ConnectionClosed

from tests.gateway_process import GatewayProcess
from tests.helpers import (
    Clients,
    assert_closed_with,
    assert_error,
    running_gateway,
    tiny_buffer_socket,
    unique,
)
from tests.raw_client import RawClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHAT = """
[namespaces.chat]
history_size = 1000
history_ttl_s = 86400.0
presence = true
join_leave = true
force_push_join_leave = true
force_recovery = true
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_history_for_subscriber = true
allow_presence_for_subscriber = true
"""

# plain: no history, no presence, open to every client (cheap fan-out for floods and batches);
# watched: the same with join/leave pushes, to see when the server lets a client go.
CONFIG = (
    CHAT
    + """
[namespaces.plain]
allow_subscribe_for_client = true
allow_publish_for_client = true

[namespaces.watched]
join_leave = true
force_push_join_leave = true
allow_subscribe_for_client = true
allow_publish_for_client = true
"""
)

BIG_MESSAGE_BYTES = 1_048_576
BIG_ENV = {
    "WIREHUB_CLIENT_MAX_MESSAGE_BYTES": str(BIG_MESSAGE_BYTES),
    "WIREHUB_CLIENT_WRITE_QUEUE_MAX_BYTES": str(8 * BIG_MESSAGE_BYTES),
    # One frame here carries 1000 commands on 500 channels: above the default channel limit (128)
    # and command burst (1000, with the connect), whose own tests live in test_limits.py.
    "WIREHUB_CLIENT_CHANNEL_LIMIT": "1000",
    "WIREHUB_CLIENT_COMMAND_BURST": "2000",
}
SMALL_MESSAGE_BYTES = 1024
SLOW_QUEUE_BYTES = 65536
SLOW_ENV = {
    "WIREHUB_CLIENT_MAX_MESSAGE_BYTES": str(SLOW_QUEUE_BYTES),
    "WIREHUB_CLIENT_WRITE_QUEUE_MAX_BYTES": str(SLOW_QUEUE_BYTES),
}


# --------------------------------------------------------------------------- fixtures and helpers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """Frames up to 1 MiB, so that big hostile frames reach the parser."""
    async with running_gateway(tmp_path_factory.mktemp("hostile"), config=CONFIG, env=BIG_ENV) as gateway:
        yield gateway


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def small_gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """Frames up to 1 KiB."""
    env = {"WIREHUB_CLIENT_MAX_MESSAGE_BYTES": str(SMALL_MESSAGE_BYTES)}
    async with running_gateway(tmp_path_factory.mktemp("small"), config=CONFIG, env=env) as gateway:
        yield gateway


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow_gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """A 64 KiB write queue per client: a client that stops reading overflows it quickly."""
    async with running_gateway(tmp_path_factory.mktemp("slow"), config=CONFIG, env=SLOW_ENV) as gateway:
        yield gateway


async def next_pub(client: RawClient, channel: str) -> dict[str, Any]:
    """The next publication pushed on ``channel``; joins, leaves and pings are skipped."""
    while True:
        push = await client.push()
        if push.get("channel") == channel and "pub" in push:
            pub: dict[str, Any] = push["pub"]
            return pub


async def assert_gateway_serves(gateway: GatewayProcess) -> None:
    """A well-behaved client still connects, subscribes, publishes and receives its publication."""
    client = await RawClient.open(gateway.ws_url)
    try:
        assert "connect" in await client.connect(gateway.token("healthy"))
        channel = unique("chat:healthy-")
        assert "subscribe" in await client.call("subscribe", {"channel": channel})
        reply = await client.call("publish", {"channel": channel, "data": {"ok": True}})
        assert reply == {"id": reply["id"], "publish": {}}, reply
        pub = await next_pub(client, channel)
        assert pub["data"] == {"ok": True}
        assert pub["offset"] == 1
    finally:
        await client.close()


def command(cmd_id: int, method: str, params: dict[str, Any]) -> str:
    return json.dumps({"id": cmd_id, method: params})


def raw_publish(cmd_id: int, channel: str, data_text: str) -> str:
    """A publish command whose ``data`` is the given JSON text, verbatim."""
    return (
        '{"id": '
        + str(cmd_id)
        + ', "publish": {"channel": '
        + json.dumps(channel)
        + ', "data": '
        + data_text
        + "}}"
    )


async def publish_or_refusal(client: RawClient, channel: str, data_text: str) -> dict[str, Any] | None:
    """Publish raw ``data_text``; return the reply, or None if the server refused the line with 3501.

    Refusing a value the server cannot carry is fine, as an error 107 or a 3501 close; an
    internal error (100) or any other close is not.
    """
    cmd_id = client.next_id()
    await client.send_raw(raw_publish(cmd_id, channel, data_text))
    try:
        reply = await client.reply(cmd_id)
    except ConnectionClosed:
        await assert_closed_with(client, 3501)
        return None
    if "error" in reply:
        assert reply["error"]["code"] == 107, reply
    else:
        assert reply == {"id": cmd_id, "publish": {}}, reply
    return reply


# --------------------------------------------------------------------------- malformed frames


@pytest.mark.parametrize(
    "line",
    ['{"id": 2, "publish": ', "not json", '{"id": 2,}', "{'id': 2}", '{"id": 2 "publish": {}}', "}{"],
    ids=["truncated", "words", "trailing-comma", "single-quotes", "missing-comma", "reversed"],
)
async def test_malformed_json_line_closes_with_3501(gw: GatewayProcess, clients: Clients, line: str) -> None:
    """A line that is not JSON closes the connection with 3501 and nothing else."""
    client = await clients.connected(gw)
    await client.send_raw(line)
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


async def test_malformed_json_closes_with_3501_when_sent_before_connect(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A malformed first frame closes with 3501 too."""
    client = await clients.open(gw)
    await client.send_raw('{"id":1,"connect":{')
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


@pytest.mark.parametrize("line", ["[1,2]", '"x"', "1", "null", "true", "[]"])
async def test_non_object_line_closes_with_3501(gw: GatewayProcess, clients: Clients, line: str) -> None:
    """A line that is valid JSON but not an object closes with 3501."""
    client = await clients.connected(gw)
    await client.send_raw(line)
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


@pytest.mark.parametrize(
    "frame",
    [
        '{"id": "2", "publish": {"channel": "chat:x", "data": 1}}',
        '{"id": -2, "publish": {"channel": "chat:x", "data": 1}}',
        '{"id": 4294967296, "publish": {"channel": "chat:x", "data": 1}}',
        '{"id": 2.5, "publish": {"channel": "chat:x", "data": 1}}',
        '{"id": true, "publish": {"channel": "chat:x", "data": 1}}',
        '{"id": 2, "publish": {"channel": 5, "data": 1}}',
        '{"id": 2, "publish": "chat:x"}',
        '{"id": 2, "subscribe": {"channel": "chat:x", "offset": -1, "recover": true}}',
        '{"id": 2, "subscribe": {"channel": "chat:x", "recover": "yes"}}',
        '{"id": 2, "history": {"channel": "chat:x", "limit": "all"}}',
        '{"id": 2, "history": {"channel": "chat:x", "since": []}}',
    ],
    ids=[
        "string-id",
        "negative-id",
        "id-over-uint32",
        "float-id",
        "bool-id",
        "channel-number",
        "params-string",
        "negative-offset",
        "recover-string",
        "limit-string",
        "since-list",
    ],
)
async def test_wrongly_typed_command_closes_with_3501(
    gw: GatewayProcess, clients: Clients, frame: str
) -> None:
    """A command whose fields have the wrong JSON types closes with 3501."""
    client = await clients.connected(gw)
    await client.send_raw(frame)
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


async def test_valid_connect_followed_by_garbage_closes_with_3501(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A frame whose first line is a valid connect and whose second line is garbage closes with 3501."""
    client = await clients.open(gw)
    await client.send_raw(command(1, "connect", {"token": gw.token("alice")}) + "\n\x01\x02garbage{{{")
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


async def test_binary_frame_with_invalid_utf8_closes_with_3501(gw: GatewayProcess, clients: Clients) -> None:
    """A binary frame that is not UTF-8 closes with 3501."""
    client = await clients.connected(gw)
    await client.send_raw(b'{"id": 2, "publish": {"channel": "chat:x", "data": "\xff\xfe\xc3\x28"}}')
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


async def test_frame_over_max_message_bytes_closes_with_1009(
    small_gw: GatewayProcess, clients: Clients
) -> None:
    """A frame larger than client.max_message_bytes closes with 1009 (message too big)."""
    client = await clients.connected(small_gw)
    channel = unique("chat:big-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    fits = await client.call("publish", {"channel": channel, "data": "x" * (SMALL_MESSAGE_BYTES - 200)})
    assert "publish" in fits, fits
    await client.send("publish", {"channel": channel, "data": "x" * (SMALL_MESSAGE_BYTES * 2)})
    await assert_closed_with(client, 1009)
    await assert_gateway_serves(small_gw)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_literals_close_with_3501(
    gw: GatewayProcess, clients: Clients, literal: str
) -> None:
    """``NaN`` / ``Infinity`` are not JSON: a publish carrying them closes with 3501."""
    client = await clients.connected(gw)
    channel = unique("chat:nan-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    await client.send_raw(raw_publish(99, channel, '{"x": ' + literal + "}"))
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


async def test_number_overflowing_a_double_never_breaks_the_channel(
    gw: GatewayProcess, clients: Clients
) -> None:
    """``1e400`` is valid JSON: it is refused cleanly or round-trips, and never poisons history."""
    client = await clients.connected(gw)
    channel = unique("chat:overflow-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    await publish_or_refusal(client, channel, '{"x": 1e400}')
    # Whatever happened, the channel's history and live stream keep working for everyone.
    reader = await clients.connected(gw, "reader")
    assert "subscribe" in await reader.call("subscribe", {"channel": channel})
    history = await reader.call("history", {"channel": channel, "limit": -1})
    assert "history" in history, history
    for pub in history["history"].get("publications", []):
        assert math.isinf(pub["data"]["x"]), pub  # 1e400 parses as inf here: only its raw text survives
    recovered = await clients.connected(gw, "recoverer")
    epoch = history["history"]["epoch"]
    reply = await recovered.call(
        "subscribe", {"channel": channel, "recover": True, "offset": 0, "epoch": epoch}
    )
    assert reply["subscribe"]["recovered"] is True, reply
    ok = await reader.call("publish", {"channel": channel, "data": {"after": True}})
    assert "publish" in ok, ok
    assert (await next_pub(reader, channel))["data"] == {"after": True}
    await assert_gateway_serves(gw)


async def test_deeply_nested_json_closes_with_3501(gw: GatewayProcess, clients: Clients) -> None:
    """100000 nested ``[`` in one frame close the connection with 3501 without crashing the node."""
    client = await clients.connected(gw)
    await client.send_raw("[" * 100_000)
    await assert_closed_with(client, 3501)
    await assert_gateway_serves(gw)


async def test_publish_with_data_too_deep_gets_107_and_the_connection_stays(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Data 100 levels deep (past the 64 allowed) fails that publish with 107; the connection goes on."""
    client = await clients.connected(gw)
    channel = unique("chat:too-deep-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    await client.send_raw(raw_publish(41, channel, "[" * 100 + "]" * 100))
    assert_error(await client.reply(41), 107)
    deepest_allowed = "[" * 64 + "]" * 64
    await client.send_raw(raw_publish(42, channel, deepest_allowed))
    assert "publish" in await client.reply(42)


async def test_deeply_nested_balanced_data_closes_with_3501(gw: GatewayProcess, clients: Clients) -> None:
    """A balanced publish 100000 levels deep is refused with 3501, never a crash."""
    client = await clients.connected(gw)
    channel = unique("chat:deep-")
    depth = 100_000
    data = "[" * depth + "]" * depth
    await client.send_raw(raw_publish(99, channel, data))
    code, _ = await client.closed()
    assert code == 3501
    await assert_gateway_serves(gw)


# --------------------------------------------------------------------------- batches in one frame


async def test_thousand_commands_in_one_frame_are_answered_in_order(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A frame of 1000 subscribe/publish commands gets 1000 replies, in order, with matching ids."""
    client = await clients.connected(gw)
    base = unique("plain:batch-")
    lines: list[str] = []
    expected: list[tuple[int, str]] = []
    for i in range(500):
        channel = f"{base}-{i}"
        sub_id, pub_id = 1000 + 2 * i, 1001 + 2 * i
        lines.append(command(sub_id, "subscribe", {"channel": channel}))
        lines.append(command(pub_id, "publish", {"channel": channel, "data": {"i": i}}))
        expected += [(sub_id, "subscribe"), (pub_id, "publish")]
    await client.send_raw("\n".join(lines))
    replies: list[tuple[int, str]] = []
    pubs: list[Any] = []
    while len(replies) < len(expected):
        message = await client.receive()
        if "id" in message:
            assert "error" not in message, message
            (method,) = set(message) - {"id"}
            replies.append((message["id"], method))
        elif "push" in message and "pub" in message["push"]:
            pubs.append(message["push"]["pub"]["data"]["i"])
    assert replies == expected
    assert pubs == list(range(500))
    await assert_gateway_serves(gw)


async def test_connect_and_subscribe_in_one_frame_sees_authenticated_connection(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Connect, subscribe and publish in one frame (as centrifuge-js does) all succeed, in order."""
    client = await clients.open(gw)
    channel = unique("chat:js-")
    frame = "\n".join(
        [
            command(1, "connect", {"token": gw.token("alice"), "name": "js"}),
            command(2, "subscribe", {"channel": channel, "flag": 1}),
            command(3, "publish", {"channel": channel, "data": {"first": True}}),
        ]
    )
    await client.send_raw(frame)
    assert "connect" in await client.reply(1)
    subscribed = await client.reply(2)
    assert "subscribe" in subscribed, subscribed
    assert subscribed["subscribe"]["recoverable"] is True
    assert await client.reply(3) == {"id": 3, "publish": {}}
    pub = await next_pub(client, channel)
    assert pub["data"] == {"first": True}
    assert pub["offset"] == 1
    await assert_gateway_serves(gw)


async def test_blank_lines_between_commands_are_ignored(gw: GatewayProcess, clients: Clients) -> None:
    """Empty lines and surrounding whitespace in a frame do not count as commands."""
    client = await clients.open(gw)
    channel = unique("chat:blank-")
    frame = "\n\n" + command(1, "connect", {"token": gw.token("alice")}) + "\n  \n"
    frame += command(2, "subscribe", {"channel": channel}) + "\n\n"
    await client.send_raw(frame)
    assert "connect" in await client.reply(1)
    assert "subscribe" in await client.reply(2)
    await assert_gateway_serves(gw)


# --------------------------------------------------------------------------- payload fidelity


ODD_PAYLOAD: dict[str, Any] = {
    "$where": "this.password.length > 0",
    "$gt": "",
    "a.b": {"c.d": 1, "$set": {"x": 1}},
    "__proto__": {"polluted": True},
    "constructor": {"prototype": {"polluted": True}},
    "nul": "a\u0000b",
    "\u0000key": "nul in key",
    "": "empty key",
    "big": 2**64 + 1,
    "bigger": 123456789012345678901234567890123456789,
    "negative": -(2**100),
    "zero": 0,
    "float": 1.5e300,
    "tiny": 5e-324,
    "unicode": "日本語 🎉 \u2028\u2029",
    "newline": "line1\nline2\r\n",
    "quote": '"\\/',
    "html": "</script><script>alert(1)</script>",
    "control": "".join(chr(c) for c in range(32)),
    "nested": [[[[{}]]]],
    "list": [None, True, False, 0, -1, 1.25, "s"],
}


async def test_odd_payloads_round_trip_exactly_through_publish_and_history(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Keys like ``$where``, ``a.b``, ``__proto__``, NUL characters and huge integers come back unchanged."""
    client = await clients.connected(gw)
    channel = unique("chat:odd-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    payloads: list[Any] = [ODD_PAYLOAD, "plain string", 2**70, [ODD_PAYLOAD], None, {"deep": ODD_PAYLOAD}]
    for payload in payloads:
        reply = await client.call("publish", {"channel": channel, "data": payload})
        assert "publish" in reply, reply
        assert (await next_pub(client, channel))["data"] == payload
    history = await client.call("history", {"channel": channel, "limit": -1})
    assert [p["data"] for p in history["history"]["publications"]] == payloads
    await assert_gateway_serves(gw)


async def test_replies_never_contain_raw_newlines_inside_objects(
    gw: GatewayProcess, clients: Clients
) -> None:
    """Every line of every frame the server sends is one complete JSON object, even for multi-line data."""
    client = await clients.connected(gw)
    channel = unique("chat:lines-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    await client.send("publish", {"channel": channel, "data": {"text": "a\nb\n\nc"}})
    await client.send("history", {"channel": channel, "limit": -1})
    seen = 0
    async with asyncio.timeout(5):
        while seen < 2:
            frame = await client.ws.recv()
            text = frame.decode() if isinstance(frame, bytes) else frame
            for line in text.split("\n"):
                message = json.loads(line)
                assert isinstance(message, dict)
                if message.get("id") in (3, 4):
                    seen += 1
    await assert_gateway_serves(gw)


async def test_lone_surrogate_in_payload_never_breaks_subscribers(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A lone ``\\ud800`` escape (valid JSON, not UTF-8) is refused or delivered, never kills writers."""
    publisher = await clients.connected(gw, "publisher")
    subscriber = await clients.connected(gw, "subscriber")
    channel = unique("chat:surrogate-")
    assert "subscribe" in await subscriber.call("subscribe", {"channel": channel})
    assert "subscribe" in await publisher.call("subscribe", {"channel": channel})
    if await publish_or_refusal(publisher, channel, '{"s": "\\ud800", "\\udfff": 1}') is None:
        publisher = await clients.connected(gw, "publisher")
        assert "subscribe" in await publisher.call("subscribe", {"channel": channel})
    ok = await publisher.call("publish", {"channel": channel, "data": {"after": True}})
    assert "publish" in ok, ok
    # The subscriber receives whatever was accepted, then the next publication.
    while (pub := await next_pub(subscriber, channel))["data"] != {"after": True}:
        assert pub["data"] == {"s": "\ud800", "\udfff": 1}
    history = await subscriber.call("history", {"channel": channel, "limit": -1})
    assert "history" in history, history
    await assert_gateway_serves(gw)


async def test_escaped_surrogate_pairs_round_trip(gw: GatewayProcess, clients: Clients) -> None:
    """A correctly paired ``\\ud83d\\ude00`` escape is an ordinary character and round-trips."""
    client = await clients.connected(gw)
    channel = unique("chat:pair-")
    assert "subscribe" in await client.call("subscribe", {"channel": channel})
    reply = await publish_or_refusal(client, channel, '{"s": "\\ud83d\\ude00", "\\ud83c\\udf89": "key"}')
    assert reply is not None, "a paired surrogate escape is valid JSON text and must be accepted"
    assert "publish" in reply, reply
    expected = {"s": "\U0001f600", "\U0001f389": "key"}
    assert (await next_pub(client, channel))["data"] == expected
    history = await client.call("history", {"channel": channel, "limit": -1})
    assert [p["data"] for p in history["history"]["publications"]] == [expected]
    await assert_gateway_serves(gw)


# --------------------------------------------------------------------------- slow readers, lost writes


async def _non_reading_client(gateway: GatewayProcess, clients: Clients) -> RawClient:
    """A client with tiny receive buffers that buffers at most one frame until it reads."""
    sock = await tiny_buffer_socket(gateway.ws_url)
    client = await clients.open(gateway, sock=sock, max_queue=1, ping_interval=None)
    assert "connect" in await client.connect(gateway.token("sloth"))
    return client


async def test_client_that_never_reads_is_closed_with_3008_while_others_keep_receiving(
    slow_gw: GatewayProcess, clients: Clients
) -> None:
    """A subscriber that stops reading overflows its queue and is closed with 3008; others get everything."""
    channel = unique("plain:flood-")
    slow = await _non_reading_client(slow_gw, clients)
    assert "subscribe" in await slow.call("subscribe", {"channel": channel})
    reader = await clients.connected(slow_gw, "reader")
    assert "subscribe" in await reader.call("subscribe", {"channel": channel})
    publisher = await clients.connected(slow_gw, "publisher")

    count, size = 600, 16 * 1024  # ~10 MB: more than any socket buffer on the way
    received: list[int] = []

    async def read_all() -> None:
        while len(received) < count:
            received.append((await next_pub(reader, channel))["data"]["n"])

    reading = asyncio.create_task(read_all())
    try:
        filler = "x" * size
        for n in range(count):
            reply = await publisher.call("publish", {"channel": channel, "data": {"n": n, "fill": filler}})
            assert reply == {"id": reply["id"], "publish": {}}, reply
        async with asyncio.timeout(30):
            await reading
    finally:
        reading.cancel()
    assert received == list(range(count))
    # Only now does the slow client read: what the server had written, then the close frame.
    await assert_closed_with(slow, 3008)
    await assert_gateway_serves(slow_gw)


async def test_client_that_never_reads_is_released_so_others_see_it_leave(
    slow_gw: GatewayProcess, clients: Clients
) -> None:
    """After a 3008 the server ends the connection even if the client never reads: it leaves the channel."""
    channel = unique("watched:flood-")
    slow = await _non_reading_client(slow_gw, clients)
    assert "subscribe" in await slow.call("subscribe", {"channel": channel})
    reader = await clients.connected(slow_gw, "reader")
    assert "subscribe" in await reader.call("subscribe", {"channel": channel})
    publisher = await clients.connected(slow_gw, "publisher")

    count, size = 600, 16 * 1024
    received: list[int] = []

    async def watch_until_sloth_leaves() -> None:
        while True:
            push = await reader.push()  # at most 5 s between messages
            if push.get("channel") != channel:
                continue
            if "pub" in push:
                received.append(push["pub"]["data"]["n"])
            elif "leave" in push and push["leave"]["info"]["user"] == "sloth":
                return

    watching = asyncio.create_task(watch_until_sloth_leaves())
    try:
        filler = "x" * size
        for n in range(count):
            reply = await publisher.call("publish", {"channel": channel, "data": {"n": n, "fill": filler}})
            assert reply == {"id": reply["id"], "publish": {}}, reply
        # The slow client never reads again; the server must still let it go within its close timeout.
        try:
            await watching
        except TimeoutError:
            pytest.fail("the server never ended the connection of the client that stopped reading")
    finally:
        watching.cancel()
    assert received == list(range(count))
    slow.ws.transport.abort()
    await assert_gateway_serves(slow_gw)


async def test_every_acknowledged_publish_is_in_history(gw: GatewayProcess, clients: Clients) -> None:
    """Concurrent publishers, pipelining and one that is cut off: every acknowledged publish is in history."""
    channel = unique("chat:acked-")
    publishers = [await clients.connected(gw, f"pub{i}") for i in range(3)]
    for p in publishers:
        assert "subscribe" in await p.call("subscribe", {"channel": channel})

    async def pipeline(client: RawClient, name: str, count: int) -> list[Any]:
        ids = {
            await client.send("publish", {"channel": channel, "data": {"by": name, "n": n}}): n
            for n in range(count)
        }
        acked: list[Any] = []
        for cmd_id, n in ids.items():
            reply = await client.reply(cmd_id)
            assert reply == {"id": cmd_id, "publish": {}}, reply
            acked.append({"by": name, "n": n})
        return acked

    async def cut_off(client: RawClient, name: str, count: int) -> list[Any]:
        ids = {
            await client.send("publish", {"channel": channel, "data": {"by": name, "n": n}}): n
            for n in range(count)
        }
        await client.send_raw("this is not json")
        acked: list[Any] = []
        # Every publish frame came before the bad one: all are processed and answered first.
        while len(acked) < count:
            message = await client.receive()
            if "publish" in message:
                acked.append({"by": name, "n": ids[message["id"]]})
        await assert_closed_with(client, 3501)
        return acked

    results = await asyncio.gather(
        pipeline(publishers[0], "a", 40),
        pipeline(publishers[1], "b", 40),
        cut_off(publishers[2], "c", 40),
    )
    acknowledged = [data for result in results for data in result]
    reader = await clients.connected(gw, "auditor")
    assert "subscribe" in await reader.call("subscribe", {"channel": channel})
    history = (await reader.call("history", {"channel": channel, "limit": -1}))["history"]
    publications = history["publications"]
    stored = [p["data"] for p in publications]
    offsets = [p["offset"] for p in publications]
    assert offsets == list(range(1, len(publications) + 1))
    assert history["offset"] == len(publications)
    for data in acknowledged:
        assert stored.count(data) == 1, data
    # Per publisher, history keeps the order the publishes were sent in.
    for name in ("a", "b", "c"):
        ns = [d["n"] for d in stored if d["by"] == name]
        assert ns == sorted(ns)
    await assert_gateway_serves(gw)


async def test_every_acknowledged_publish_survives_a_gateway_crash(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Publishes acknowledged before a SIGKILL are all in history after the restart, in one epoch."""
    gateway = GatewayProcess(tmp_path_factory.mktemp("crash"), config=CONFIG)
    await gateway.start()
    try:
        channel = unique("chat:crash-")
        publisher = await RawClient.open(gateway.ws_url)
        assert "connect" in await publisher.connect(gateway.token("publisher"))
        # No stream before its first publication: the epoch comes with it.
        assert (await publisher.call("subscribe", {"channel": channel}))["subscribe"]["epoch"] == ""
        ids = {await publisher.send("publish", {"channel": channel, "data": {"n": n}}): n for n in range(300)}
        acked: list[int] = []
        try:
            while True:
                message = await publisher.receive()
                if "publish" in message:
                    acked.append(ids[message["id"]])
                if len(acked) == 50:
                    await gateway.kill()  # SIGKILL while publishes are still in flight
        except ConnectionClosed:
            pass
        assert len(acked) >= 50
        await gateway.start()
        reader = await RawClient.open(gateway.ws_url)
        try:
            assert "connect" in await reader.connect(gateway.token("reader"))
            subscribed = (await reader.call("subscribe", {"channel": channel}))["subscribe"]
            history = (await reader.call("history", {"channel": channel, "limit": -1}))["history"]
            assert subscribed["epoch"] == history["epoch"] != ""
        finally:
            await reader.close()
        stored = [p["data"]["n"] for p in history["publications"]]
        assert [p["offset"] for p in history["publications"]] == list(range(1, len(stored) + 1))
        assert stored == sorted(stored)
        assert set(acked) <= set(stored)
        await assert_gateway_serves(gateway)
    finally:
        await gateway.kill()
