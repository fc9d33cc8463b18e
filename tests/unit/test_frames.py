"""Unit tests for ``wirehub.protocol.frames``: decoded JSON to commands (docs/protocol.md, "Commands")."""

from __future__ import annotations

from typing import Any

import pytest

from wirehub.errors import DisconnectBadRequest
from wirehub.protocol.frames import (
    MAX_UINT32,
    Command,
    ConnectRequest,
    HistoryRequest,
    Pong,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    RpcRequest,
    SendRequest,
    SubRefreshRequest,
    SubscribeRequest,
    UnknownMethod,
    UnsubscribeRequest,
    parse_command,
)
from wirehub.types import StreamPosition

BAD_REQUEST_CODE = 3501

CHANNEL_METHODS = [
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "sub_refresh",
]
"""Methods whose request requires a non-empty ``channel``."""

ALL_METHODS = [*CHANNEL_METHODS, "connect", "send", "rpc", "refresh"]


def _bad_request(obj: Any) -> DisconnectBadRequest:
    with pytest.raises(DisconnectBadRequest) as info:
        parse_command(obj)
    assert info.value.code == BAD_REQUEST_CODE
    return info.value


# --------------------------------------------------------------------------- every method


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"id": 1, "connect": {"token": "t", "data": {"a": 1}, "name": "js", "version": "1.0"}},
            Command(1, "connect", ConnectRequest(token="t", data={"a": 1}, name="js", version="1.0")),
        ),
        (
            {
                "id": 2,
                "subscribe": {
                    "channel": "chat:1",
                    "token": "st",
                    "data": [1, 2],
                    "recover": True,
                    "offset": 7,
                    "epoch": "e1",
                    "positioned": True,
                    "recoverable": True,
                    "join_leave": True,
                    "flag": 3,
                },
            },
            Command(
                2,
                "subscribe",
                SubscribeRequest(
                    channel="chat:1",
                    token="st",
                    data=[1, 2],
                    recover=True,
                    offset=7,
                    epoch="e1",
                    positioned=True,
                    recoverable=True,
                    join_leave=True,
                    flag=3,
                ),
            ),
        ),
        ({"id": 3, "unsubscribe": {"channel": "c"}}, Command(3, "unsubscribe", UnsubscribeRequest("c"))),
        (
            {"id": 4, "publish": {"channel": "c", "data": {"text": "hi"}}},
            Command(4, "publish", PublishRequest("c", {"text": "hi"})),
        ),
        ({"id": 5, "presence": {"channel": "c"}}, Command(5, "presence", PresenceRequest("c"))),
        (
            {"id": 6, "presence_stats": {"channel": "c"}},
            Command(6, "presence_stats", PresenceStatsRequest("c")),
        ),
        (
            {"id": 7, "history": {"channel": "c", "limit": 10, "since": {"offset": 3, "epoch": "e"}}},
            Command(7, "history", HistoryRequest("c", limit=10, since=StreamPosition(3, "e"))),
        ),
        ({"send": {"data": "x"}}, Command(0, "send", SendRequest("x"))),
        (
            {"id": 9, "rpc": {"method": "m", "data": {"y": 2}}},
            Command(9, "rpc", RpcRequest("m", {"y": 2})),
        ),
        ({"id": 10, "refresh": {"token": "t2"}}, Command(10, "refresh", RefreshRequest("t2"))),
        (
            {"id": 11, "sub_refresh": {"channel": "c", "token": "t3"}},
            Command(11, "sub_refresh", SubRefreshRequest("c", "t3")),
        ),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_parse_command_parses_every_method(obj: dict[str, Any], expected: Command) -> None:
    """Each method key becomes its typed request with every field read."""
    assert parse_command(obj) == expected


def test_parse_command_defaults_subscribe_fields_when_omitted() -> None:
    """A subscribe with only a channel has every other field at its zero value."""
    assert parse_command({"id": 1, "subscribe": {"channel": "c"}}).request == SubscribeRequest("c")


def test_parse_command_defaults_history_limit_to_zero_when_omitted() -> None:
    """A history without limit asks for the position only, and without since has no since position."""
    request = parse_command({"id": 1, "history": {"channel": "c"}}).request
    assert request == HistoryRequest("c", limit=0, since=None, reverse=False)


@pytest.mark.parametrize("limit", [-1, 0, 1, 2**31 - 1])
def test_parse_command_accepts_history_limit_when_in_range(limit: int) -> None:
    """History limit -1 (all), 0 (position only) and positive int32 values are valid."""
    request = parse_command({"id": 1, "history": {"channel": "c", "limit": limit}}).request
    assert isinstance(request, HistoryRequest)
    assert request.limit == limit


def test_parse_command_reads_history_reverse_and_empty_since() -> None:
    """``reverse`` is read and an empty ``since`` object means offset 0."""
    request = parse_command({"id": 1, "history": {"channel": "c", "reverse": True, "since": {}}}).request
    assert request == HistoryRequest("c", since=StreamPosition(0, ""), reverse=True)


def test_parse_command_sets_reject_unrecovered_when_flag_bit_2_is_set() -> None:
    """Subscribe flag bit 2 is the "reject unrecovered" request (docs/protocol.md, "Recovery")."""
    with_bit = parse_command({"id": 1, "subscribe": {"channel": "c", "flag": 3}}).request
    without_bit = parse_command({"id": 1, "subscribe": {"channel": "c", "flag": 1}}).request
    assert isinstance(with_bit, SubscribeRequest)
    assert isinstance(without_bit, SubscribeRequest)
    assert with_bit.reject_unrecovered
    assert not without_bit.reject_unrecovered


def test_parse_command_truncates_connect_name_and_version() -> None:
    """Connect ``name`` is cut to 16 characters and ``version`` to 64."""
    request = parse_command({"id": 1, "connect": {"name": "n" * 40, "version": "v" * 100}}).request
    assert request == ConnectRequest(name="n" * 16, version="v" * 64)


def test_parse_command_parses_connect_subs_into_subscribe_requests() -> None:
    """Connect ``subs`` maps each channel to a SubscribeRequest carrying that channel."""
    command = parse_command(
        {
            "id": 1,
            "connect": {
                "token": "t",
                "subs": {
                    "news": {"recover": True, "offset": 5, "epoch": "abc"},
                    "chat:1": {},
                },
            },
        }
    )
    assert isinstance(command.request, ConnectRequest)
    assert command.request.subs == {
        "news": SubscribeRequest("news", recover=True, offset=5, epoch="abc"),
        "chat:1": SubscribeRequest("chat:1"),
    }


def test_parse_command_leaves_connect_subs_none_when_absent() -> None:
    """A connect without ``subs`` has ``subs`` None."""
    request = parse_command({"id": 1, "connect": {}}).request
    assert isinstance(request, ConnectRequest)
    assert request.subs is None


# --------------------------------------------------------------------------- envelope rules


def test_parse_command_returns_pong_for_empty_object() -> None:
    """The bare ``{}`` is the pong answering a server ping."""
    assert parse_command({}) == Command(0, "", Pong())


@pytest.mark.parametrize("obj", [{"id": 0}, {"id": None}])
def test_parse_command_returns_pong_when_id_is_zero_or_null(obj: dict[str, Any]) -> None:
    """An id of 0 or null with no method is a pong as well."""
    assert parse_command(obj) == Command(0, "", Pong())


def test_parse_command_returns_unknown_method_when_id_has_no_known_method() -> None:
    """A command with an id but an unknown method key is answered with 104, not a disconnect."""
    assert parse_command({"id": 8, "frobnicate": {"x": 1}}) == Command(8, "", UnknownMethod())


def test_parse_command_returns_unknown_method_when_method_is_null() -> None:
    """A method key whose value is null counts as absent."""
    assert parse_command({"id": 8, "subscribe": None}) == Command(8, "", UnknownMethod())


def test_parse_command_rejects_unknown_method_when_id_is_missing() -> None:
    """Without an id an unknown key cannot be a pong and has nothing to reply to."""
    _bad_request({"frobnicate": {}})


@pytest.mark.parametrize("method", [m for m in ALL_METHODS if m != "send"])
def test_parse_command_rejects_non_send_command_when_id_is_missing(method: str) -> None:
    """Only ``send`` may come without an id (docs/protocol.md, "Envelopes")."""
    _bad_request({method: {"channel": "c"}})


def test_parse_command_accepts_send_when_id_is_missing() -> None:
    """``send`` is the id-less async message."""
    assert parse_command({"send": {}}) == Command(0, "send", SendRequest(None))


def test_parse_command_ignores_unknown_fields() -> None:
    """Unknown fields on the envelope and inside requests are ignored (docs/protocol.md, "Framing")."""
    command = parse_command(
        {"id": 4, "flag": 9, "publish": {"channel": "c", "data": 1, "type": 2, "new_thing": [1]}}
    )
    assert command == Command(4, "publish", PublishRequest("c", 1))


@pytest.mark.parametrize("cmd_id", [1, MAX_UINT32])
def test_parse_command_accepts_id_when_uint32(cmd_id: int) -> None:
    """Ids from 1 to 2**32-1 are valid."""
    assert parse_command({"id": cmd_id, "presence": {"channel": "c"}}).id == cmd_id


@pytest.mark.parametrize("cmd_id", [-1, MAX_UINT32 + 1, 1.0, 1.5, "1", True, [1], {"a": 1}])
def test_parse_command_rejects_id_when_not_uint32(cmd_id: Any) -> None:
    """An id that is not an unsigned 32-bit integer (including a bool or float) closes with 3501."""
    _bad_request({"id": cmd_id, "presence": {"channel": "c"}})


@pytest.mark.parametrize("obj", [[], [{"id": 1}], "x", 1, 1.5, True, None])
def test_parse_command_rejects_non_object(obj: Any) -> None:
    """A line that is not a JSON object is not a command."""
    _bad_request(obj)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("params", [[], "x", 1, True])
def test_parse_command_rejects_request_when_not_object(method: str, params: Any) -> None:
    """The value under a method key must be an object."""
    _bad_request({"id": 1, method: params})


# --------------------------------------------------------------------------- field types


@pytest.mark.parametrize("method", CHANNEL_METHODS)
@pytest.mark.parametrize("channel", [1, True, None, [], {}, ""])
def test_parse_command_rejects_channel_when_not_a_non_empty_string(method: str, channel: Any) -> None:
    """A missing, empty or non-string channel closes with 3501."""
    params = {"channel": channel} if channel is not None else {}
    _bad_request({"id": 1, method: params})


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("subscribe", {"channel": "c", "offset": -1}),
        ("subscribe", {"channel": "c", "offset": 2**64}),
        ("subscribe", {"channel": "c", "offset": 1.0}),
        ("subscribe", {"channel": "c", "offset": "1"}),
        ("subscribe", {"channel": "c", "offset": True}),
        ("subscribe", {"channel": "c", "flag": False}),
        ("subscribe", {"channel": "c", "flag": -1}),
        ("subscribe", {"channel": "c", "recover": 1}),
        ("subscribe", {"channel": "c", "recover": "true"}),
        ("subscribe", {"channel": "c", "positioned": 1}),
        ("subscribe", {"channel": "c", "recoverable": "yes"}),
        ("subscribe", {"channel": "c", "join_leave": 0}),
        ("subscribe", {"channel": "c", "epoch": 5}),
        ("subscribe", {"channel": "c", "token": ["t"]}),
        ("history", {"channel": "c", "limit": -2}),
        ("history", {"channel": "c", "limit": 2**31}),
        ("history", {"channel": "c", "limit": True}),
        ("history", {"channel": "c", "limit": 1.5}),
        ("history", {"channel": "c", "limit": "10"}),
        ("history", {"channel": "c", "since": 5}),
        ("history", {"channel": "c", "since": {"offset": -1}}),
        ("history", {"channel": "c", "since": {"offset": False}}),
        ("history", {"channel": "c", "since": {"epoch": 1}}),
        ("history", {"channel": "c", "reverse": "true"}),
        ("connect", {"token": 1}),
        ("connect", {"name": 1}),
        ("connect", {"version": ["1"]}),
        ("connect", {"subs": []}),
        ("connect", {"subs": {"c": 1}}),
        ("connect", {"subs": {"c": {"offset": -5}}}),
        ("connect", {"subs": {"c": {"recover": "yes"}}}),
        ("rpc", {"method": 1}),
        ("refresh", {"token": {}}),
        ("sub_refresh", {"channel": "c", "token": 1}),
    ],
)
def test_parse_command_rejects_field_when_wrong_type(method: str, params: dict[str, Any]) -> None:
    """A field of the wrong type (negative offset, bool for an int, int for a bool...) closes with 3501."""
    _bad_request({"id": 1, method: params})


def test_parse_command_reads_null_fields_as_zero_values() -> None:
    """A field set to null is the same as an omitted one."""
    command = parse_command(
        {
            "id": 1,
            "subscribe": {"channel": "c", "token": None, "offset": None, "recover": None, "flag": None},
        }
    )
    assert command.request == SubscribeRequest("c")


def test_parse_command_accepts_offset_when_max_uint64() -> None:
    """Offsets are uint64: 2**64-1 is still valid."""
    request = parse_command({"id": 1, "subscribe": {"channel": "c", "offset": 2**64 - 1}}).request
    assert isinstance(request, SubscribeRequest)
    assert request.offset == 2**64 - 1
