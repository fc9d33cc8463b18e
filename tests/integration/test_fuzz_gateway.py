"""Property-based fuzzing of the command dispatcher through a real ``wirehub serve`` process.

Each example opens a fresh WebSocket connection, connects with a valid token, sends one
generated frame (arbitrary bytes, arbitrary text, or command-shaped JSON lines), then a sentinel
command. The gateway must answer every command of an accepted frame, reach the sentinel (so
nothing hung), and otherwise close with a close code of docs/protocol.md; an error reply is one of
its request errors and never 100 (an internal error means a handler crashed on client input).
After the run the gateway must still serve a healthy client and have logged no traceback.

The examples use the synchronous ``websockets`` client: Hypothesis drives plain functions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.fuzz_strategies import frames
from tests.gateway_process import GatewayProcess
from tests.helpers import running_gateway
from wirehub.errors import DisconnectBadRequest
from wirehub.protocol.codec import decode_frame

TIMEOUT_S = 10.0
SENTINEL_ID = 4_000_000_000
REQUEST_ERRORS = frozenset(range(101, 113))
CLOSE_CODES = frozenset({1009, 3500, 3501, 3504, 3505, 3507, 3508, 3509, 3013})
"""Every close a client's own input may earn; 1009 is a frame over ``max_message_bytes``."""

CONFIG = """
[namespaces.chat]
history_size = 50
history_ttl_s = 3600.0
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

[namespaces.users]
allow_user_limited_channels = true
"""

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    async with running_gateway(tmp_path_factory.mktemp("fuzz"), config=CONFIG) as gateway:
        yield gateway


# --------------------------------------------------------------------------- one exchange


class Outcome:
    """What the gateway did with one fuzzed frame."""

    def __init__(self) -> None:
        self.replies: dict[int, dict[str, Any]] = {}
        self.close_code: int | None = None


def receive(ws: ClientConnection, outcome: Outcome) -> bool:
    """Read one frame into ``outcome``; False once the connection is closed."""
    try:
        frame = ws.recv(timeout=TIMEOUT_S)
    except ConnectionClosed as exc:
        outcome.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        return False
    text = frame.decode() if isinstance(frame, bytes) else frame
    for line in text.split("\n"):
        if line.strip():
            message = json.loads(line)
            if message.get("id"):
                outcome.replies[message["id"]] = message
    return True


def exchange(gw: GatewayProcess, frame: str | bytes) -> Outcome:
    """Connect, send ``frame`` and a sentinel, and collect replies until the sentinel or a close."""
    outcome = Outcome()
    with connect(gw.ws_url, open_timeout=TIMEOUT_S, close_timeout=2, max_size=None, compression=None) as ws:
        ws.send(json.dumps({"id": 1, "connect": {"token": gw.token("fuzzer")}}))
        while 1 not in outcome.replies:
            assert receive(ws, outcome), outcome.close_code
        assert "connect" in outcome.replies[1], outcome.replies[1]
        try:
            ws.send(frame)
            ws.send(json.dumps({"id": SENTINEL_ID, "rpc": {"method": "fuzz:sentinel"}}))
        except ConnectionClosed:
            pass  # closed while sending: the close code is read below
        while SENTINEL_ID not in outcome.replies and receive(ws, outcome):
            pass
    return outcome


def check(frame: str | bytes, outcome: Outcome) -> None:
    """Every command answered (or a protocol close), errors and closes from docs/protocol.md only."""
    for reply in outcome.replies.values():
        if "error" in reply:
            assert reply["error"]["code"] in REQUEST_ERRORS, (frame, reply)
    if outcome.close_code is not None:
        assert outcome.close_code in CLOSE_CODES, (frame, outcome.close_code)
        try:
            decode_frame(frame)
        except DisconnectBadRequest:
            assert outcome.close_code in (3501, 1009), (frame, outcome.close_code)
        return
    # Still open: the sentinel came back, so everything before it was answered in order.
    assert SENTINEL_ID in outcome.replies, frame
    for command in decode_frame(frame):
        if command.id and command.method != "send":
            assert command.id in outcome.replies, (frame, command)


def assert_serves(gw: GatewayProcess) -> None:
    """A healthy client connects, subscribes, publishes and receives its publication."""
    with connect(gw.ws_url, open_timeout=TIMEOUT_S, compression=None) as ws:
        ws.send(json.dumps({"id": 1, "connect": {"token": gw.token("healthy")}}))
        ws.send(json.dumps({"id": 2, "subscribe": {"channel": "plain:after-fuzz"}}))
        ws.send(json.dumps({"id": 3, "publish": {"channel": "plain:after-fuzz", "data": {"ok": True}}}))
        seen: list[dict[str, Any]] = []
        while not (any("push" in m for m in seen) and any(m.get("id") == 3 for m in seen)):
            frame = ws.recv(timeout=TIMEOUT_S)
            text = frame.decode() if isinstance(frame, bytes) else frame
            seen.extend(json.loads(line) for line in text.split("\n") if line.strip())
        replies = {m["id"]: m for m in seen if "id" in m}
        assert "connect" in replies[1], seen
        assert "subscribe" in replies[2], seen
        assert "publish" in replies[3], seen


def assert_no_traceback(gw: GatewayProcess) -> None:
    assert gw.running, "the gateway process died"
    log = gw.log()
    assert "Traceback" not in log, log[-4000:]


# --------------------------------------------------------------------------- properties


def test_dispatcher_answers_or_closes_when_given_command_shaped_frames(gw: GatewayProcess) -> None:
    """Frames of command-like JSON lines are answered command by command or closed with its close codes."""

    @FUZZ
    @given(frames())
    def run(frame: str) -> None:
        check(frame, exchange(gw, frame))

    run()
    assert_serves(gw)
    assert_no_traceback(gw)


def test_dispatcher_answers_or_closes_when_given_arbitrary_bytes(gw: GatewayProcess) -> None:
    """Binary frames of any bytes, and text frames of any characters, never hang or crash the node."""

    @FUZZ
    @given(st.binary(max_size=300) | st.text(max_size=300).filter(lambda t: not _has_surrogate(t)))
    def run(frame: str | bytes) -> None:
        check(frame, exchange(gw, frame))

    run()
    assert_serves(gw)
    assert_no_traceback(gw)


def _has_surrogate(text: str) -> bool:
    """Lone surrogates cannot travel in a text frame at all (the client cannot encode them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
