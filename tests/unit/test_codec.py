"""Unit tests for ``wirehub.protocol.codec``: batched frames in, one-line JSON out (docs/protocol.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirehub.errors import DisconnectBadRequest, ErrorReply
from wirehub.protocol.codec import (
    COMMAND_LEVELS,
    MAX_FRAME_DEPTH,
    MAX_JSON_DEPTH,
    PING,
    decode_frame,
    encode,
    encode_error,
    encode_push,
    encode_reply,
)
from wirehub.protocol.frames import (
    Command,
    ConnectRequest,
    Pong,
    PublishRequest,
    Refused,
    SendRequest,
    SubscribeRequest,
)
from wirehub.types import WireDict

BAD_REQUEST_CODE = 3501


def _bad_frame(frame: str | bytes) -> None:
    with pytest.raises(DisconnectBadRequest) as info:
        decode_frame(frame)
    assert info.value.code == BAD_REQUEST_CODE


# --------------------------------------------------------------------------- decode_frame


def test_decode_frame_returns_one_command_for_one_line() -> None:
    """A frame with a single JSON object is a single command."""
    assert decode_frame('{"id":1,"connect":{}}') == [Command(1, "connect", ConnectRequest())]


def test_decode_frame_splits_newline_batched_commands_in_order() -> None:
    """The JS SDK's connect + subscribe frame yields both commands, connect first (docs/protocol.md)."""
    frame = '{"id":1,"connect":{"token":"t"}}\n{"id":2,"subscribe":{"channel":"chat:1","flag":1}}'
    assert decode_frame(frame) == [
        Command(1, "connect", ConnectRequest(token="t")),
        Command(2, "subscribe", SubscribeRequest("chat:1", flag=1)),
    ]


def test_decode_frame_keeps_order_of_many_lines() -> None:
    """Commands come back in the order of their lines."""
    lines = [json.dumps({"id": i, "publish": {"channel": "c", "data": i}}) for i in range(1, 21)]
    commands = decode_frame("\n".join(lines))
    assert [c.id for c in commands] == list(range(1, 21))
    assert [c.request for c in commands] == [PublishRequest("c", i) for i in range(1, 21)]


def test_decode_frame_ignores_blank_lines() -> None:
    """Empty and whitespace-only lines between, before and after commands are skipped."""
    frame = '\n\n{"id":1,"connect":{}}\n\n   \n\t\n{"send":{"data":2}}\n\n'
    assert decode_frame(frame) == [
        Command(1, "connect", ConnectRequest()),
        Command(0, "send", SendRequest(2)),
    ]


def test_decode_frame_accepts_crlf_line_endings() -> None:
    """A trailing carriage return is insignificant JSON whitespace."""
    assert decode_frame('{"id":1,"connect":{}}\r\n{}\r\n') == [
        Command(1, "connect", ConnectRequest()),
        Command(0, "", Pong()),
    ]


def test_decode_frame_returns_pong_for_bare_object() -> None:
    """The pong ``{}`` decodes to a Pong command."""
    assert decode_frame("{}") == [Command(0, "", Pong())]


def test_decode_frame_accepts_bytes_frames() -> None:
    """A frame given as UTF-8 bytes decodes like the same text."""
    text = '{"id":1,"publish":{"channel":"c","data":"héllo ✓"}}\n{"id":2,"connect":{}}'
    assert decode_frame(text.encode()) == decode_frame(text)
    assert decode_frame(text.encode())[0].request == PublishRequest("c", "héllo ✓")


@pytest.mark.parametrize("frame", [b"\xff", b'{"id":1,"connect":{"token":"\xc3"}}', b"\xed\xa0\x80"])
def test_decode_frame_rejects_bytes_when_not_utf8(frame: bytes) -> None:
    """Invalid UTF-8 closes the connection with 3501."""
    _bad_frame(frame)


@pytest.mark.parametrize(
    "frame",
    [
        '{"id":1',
        '{"id":1,}',
        "{'id':1}",
        '{"id":1}}',
        "{id:1}",
        '{"id":1,"connect":{}} trailing',
        '{"id":1,"publish":{"channel":"c","data":"a\nb"}}',
        '{"id":1,"publish":{"channel":"c","data":"tab\there"}}',
    ],
)
def test_decode_frame_rejects_malformed_json(frame: str) -> None:
    """A line that is not valid JSON closes with 3501."""
    _bad_frame(frame)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_decode_frame_rejects_non_json_constants(constant: str) -> None:
    """NaN and Infinity are not JSON, even though Python's parser would accept them."""
    _bad_frame('{"id":1,"publish":{"channel":"c","data":' + constant + "}}")


@pytest.mark.parametrize(
    "line", ["[]", '[{"id":1,"connect":{}}]', "1", "1.5", '"x"', "null", "true", "false"]
)
def test_decode_frame_rejects_line_when_not_an_object(line: str) -> None:
    """Every line must be a JSON object."""
    _bad_frame(line)


def test_decode_frame_rejects_whole_frame_when_one_line_is_bad() -> None:
    """A bad line anywhere in a frame rejects the frame; nothing of it is returned."""
    _bad_frame('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":""}}\n{"id":3,"connect":{}}')
    _bad_frame('{"id":1,"connect":{}}\nnot json')


@pytest.mark.parametrize("frame", ["", "\n", "  \n\n \t "])
def test_decode_frame_rejects_frame_when_empty(frame: str) -> None:
    """A frame without any command is a bad request (as Centrifugo's empty request)."""
    _bad_frame(frame)


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_decode_frame_rejects_deep_nesting(depth: int) -> None:
    """Pathologically nested JSON closes with 3501 instead of crashing with RecursionError."""
    _bad_frame("[" * depth + "]" * depth)
    _bad_frame('{"id":1,"publish":{"channel":"c","data":' + "[" * depth + "]" * depth + "}}")
    _bad_frame('{"id":1,"publish":{"channel":"c","data":' + '{"a":' * depth + "1" + "}" * depth + "}}")


def _nested_publish(depth: int) -> str:
    return '{"id":1,"publish":{"channel":"c","data":' + "[" * depth + "]" * depth + "}}"


def test_decode_frame_serves_data_up_to_max_depth_and_refuses_deeper_with_107() -> None:
    """Data up to MAX_JSON_DEPTH levels is served (and encodes again inside a push); deeper data
    up to MAX_FRAME_DEPTH makes a Refused command (answered 107); beyond that the frame is 3501."""
    deepest = decode_frame(_nested_publish(MAX_JSON_DEPTH))[0].request
    assert isinstance(deepest, PublishRequest)
    encode_push("c", "pub", {"data": deepest.data, "offset": 1})
    for depth in (MAX_JSON_DEPTH + 1, MAX_FRAME_DEPTH - COMMAND_LEVELS):
        command = decode_frame(_nested_publish(depth))[0]
        assert isinstance(command.request, Refused)
        assert (command.id, command.method) == (1, "publish")
        assert isinstance(command.request.request, PublishRequest)
    _bad_frame(_nested_publish(MAX_FRAME_DEPTH))


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E999"])
def test_decode_frame_accepts_only_numbers_that_can_be_re_encoded_when_overflowing(number: str) -> None:
    """A number that overflows a float is rejected with 3501 or decoded to something encode accepts."""
    try:
        commands = decode_frame('{"id":1,"publish":{"channel":"c","data":' + number + "}}")
    except DisconnectBadRequest:
        return
    request = commands[0].request
    assert isinstance(request, PublishRequest)
    encode_push("c", "pub", {"data": request.data})


@pytest.mark.parametrize("number", [2**64 - 1, 2**64, -(2**63) - 1, 10**18, 10**19, 7 * 10**40, -(10**25)])
def test_decode_frame_keeps_integers_exact_within_and_beyond_64_bits(number: int) -> None:
    """Integers of 19 digits and more (which orjson would read as floats) come back exact."""
    commands = decode_frame(
        '{"id":1,"publish":{"channel":"c","data":[' + str(number) + ',"9999999999999999999"]}}'
    )
    request = commands[0].request
    assert isinstance(request, PublishRequest)
    assert request.data == [number, "9999999999999999999"]
    assert type(request.data[0]) is int


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\ud83d", "\\ude00b"])
def test_decode_frame_accepts_only_strings_that_can_be_sent_when_lone_surrogate(escape: str) -> None:
    """A lone surrogate escape is rejected with 3501 or decoded to something that encodes to valid UTF-8."""
    try:
        commands = decode_frame('{"id":1,"publish":{"channel":"c","data":"' + escape + '"}}')
    except DisconnectBadRequest:
        return
    request = commands[0].request
    assert isinstance(request, PublishRequest)
    encode_push("c", "pub", {"data": request.data}).decode("utf-8")


def test_decode_frame_keeps_valid_surrogate_pairs() -> None:
    """A properly escaped astral character decodes to that character."""
    commands = decode_frame('{"id":1,"publish":{"channel":"c","data":"\\ud83d\\ude00"}}')
    assert commands[0].request == PublishRequest("c", "\U0001f600")


# --------------------------------------------------------------------------- encode


def test_encode_escapes_newlines_in_payload_strings() -> None:
    """A payload string with newlines still encodes to a single line (docs/protocol.md, "Framing")."""
    frame = encode_push("c", "pub", {"data": {"text": "line1\nline2\r\n", "k\ney": ["\n"]}})
    assert b"\n" not in frame
    assert b"\r" not in frame
    assert json.loads(frame) == {
        "push": {"channel": "c", "pub": {"data": {"text": "line1\nline2\r\n", "k\ney": ["\n"]}}}
    }


def test_encode_is_compact() -> None:
    """Encoded objects use no insignificant whitespace."""
    assert encode({"a": [1, 2], "b": {"c": None}}) == b'{"a":[1,2],"b":{"c":null}}'


def test_encode_keeps_non_ascii_characters() -> None:
    """Non-ASCII text is written as UTF-8 characters, not escapes."""
    assert encode({"t": "héllo ✓"}) == '{"t":"héllo ✓"}'.encode()


def test_ping_is_bare_object() -> None:
    """A server ping is the bare ``{}`` (docs/protocol.md, "Ping and pong")."""
    assert PING == b"{}"


def test_encode_reply_puts_result_under_method_key() -> None:
    """A reply echoes the id and carries the result under the method's key."""
    result: WireDict = {"client": "abc", "version": "0.1.0", "ping": 25, "pong": True}
    assert encode_reply(1, "connect", result) == (
        b'{"id":1,"connect":{"client":"abc","version":"0.1.0","ping":25,"pong":true}}'
    )


def test_encode_reply_sends_empty_result_as_empty_object() -> None:
    """An empty result is still sent as ``{}`` (docs/protocol.md, "Envelopes")."""
    assert encode_reply(3, "publish", {}) == b'{"id":3,"publish":{}}'


@pytest.mark.parametrize(
    "method", ["publish", "unsubscribe", "subscribe", "rpc", "sub_refresh", "presence_stats"]
)
@pytest.mark.parametrize("cmd_id", [1, 7, 2**32 - 1])
def test_encode_reply_formats_empty_results_as_the_encoder_would(method: str, cmd_id: int) -> None:
    """The formatted empty reply is byte for byte what encoding the reply object gives."""
    assert encode_reply(cmd_id, method, {}) == encode({"id": cmd_id, method: {}})


def test_encode_error_omits_temporary_when_false() -> None:
    """A permanent error carries only code and message."""
    assert encode_error(5, ErrorReply(103, "permission denied")) == (
        b'{"id":5,"error":{"code":103,"message":"permission denied"}}'
    )


def test_encode_error_sets_temporary_when_true() -> None:
    """A temporary error carries ``"temporary":true``."""
    assert encode_error(6, ErrorReply(100, "internal server error", temporary=True)) == (
        b'{"id":6,"error":{"code":100,"message":"internal server error","temporary":true}}'
    )


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        (
            "pub",
            {"data": {"text": "hi"}, "offset": 3},
            '{"push":{"channel":"chat:1","pub":{"data":{"text":"hi"},"offset":3}}}',
        ),
        (
            "join",
            {"info": {"user": "u", "client": "c"}},
            '{"push":{"channel":"chat:1","join":{"info":{"user":"u","client":"c"}}}}',
        ),
        (
            "leave",
            {"info": {"user": "u", "client": "c"}},
            '{"push":{"channel":"chat:1","leave":{"info":{"user":"u","client":"c"}}}}',
        ),
        (
            "unsubscribe",
            {"code": 2000, "reason": "server unsubscribe"},
            '{"push":{"channel":"chat:1","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}',
        ),
        ("message", {"data": 1}, '{"push":{"channel":"chat:1","message":{"data":1}}}'),
    ],
)
def test_encode_push_nests_body_under_kind(kind: str, body: dict[str, Any], expected: str) -> None:
    """A push is ``{"push":{"channel":…,"<kind>":{…}}}`` without an id (docs/protocol.md, "Pushes")."""
    assert encode_push("chat:1", kind, body) == expected.encode()


# --------------------------------------------------------------------------- properties

JSON_SCALARS: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

METHODS = [
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "send",
    "rpc",
    "refresh",
    "sub_refresh",
]
FIELDS = [
    "channel",
    "token",
    "data",
    "recover",
    "offset",
    "epoch",
    "positioned",
    "recoverable",
    "join_leave",
    "flag",
    "limit",
    "since",
    "reverse",
    "method",
    "subs",
    "name",
    "version",
]
FIELD_VALUES: st.SearchStrategy[Any] = (
    JSON_VALUES
    | st.integers(min_value=-2, max_value=2**64)
    | st.sampled_from(["", "c", "chat:1"])
    | st.dictionaries(st.sampled_from(["c", "offset", "epoch"]), JSON_VALUES, max_size=3)
)
REQUESTS: st.SearchStrategy[Any] = st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=5)
COMMAND_LIKE: st.SearchStrategy[Any] = st.dictionaries(
    st.sampled_from([*METHODS, "id", "unknown"]),
    st.one_of(REQUESTS, st.integers(min_value=-1, max_value=2**33), JSON_VALUES),
    max_size=3,
)


def _decodes_or_bad_request(frame: str | bytes) -> list[Command] | None:
    try:
        commands = decode_frame(frame)
    except DisconnectBadRequest:
        return None
    assert commands
    assert all(isinstance(command, Command) for command in commands)
    return commands


@given(st.text())
def test_decode_frame_returns_commands_or_bad_request_for_any_text(frame: str) -> None:
    """Arbitrary text either decodes to commands or raises DisconnectBadRequest, nothing else."""
    _decodes_or_bad_request(frame)


@given(st.binary())
def test_decode_frame_returns_commands_or_bad_request_for_any_bytes(frame: bytes) -> None:
    """Arbitrary bytes either decode to commands or raise DisconnectBadRequest, nothing else."""
    _decodes_or_bad_request(frame)


@given(JSON_VALUES)
def test_decode_frame_returns_commands_or_bad_request_for_any_json_value(value: Any) -> None:
    """Any JSON value as a line either decodes to a command or raises DisconnectBadRequest."""
    _decodes_or_bad_request(json.dumps(value))


@given(st.lists(COMMAND_LIKE, min_size=1, max_size=4))
def test_decode_frame_returns_one_command_per_line_or_bad_request_for_command_like_objects(
    objects: list[Any],
) -> None:
    """Command-shaped objects batched in one frame give one command per line or DisconnectBadRequest."""
    commands = _decodes_or_bad_request("\n".join(json.dumps(obj) for obj in objects))
    if commands is not None:
        assert len(commands) == len(objects)


@given(JSON_VALUES)
def test_encode_emits_one_line_that_round_trips_for_any_json_value(value: Any) -> None:
    """Any JSON value encodes to a newline-free line that decodes back to an equal value."""
    line = encode(value)
    assert b"\n" not in line
    assert json.loads(line) == value
