"""Unit tests for ``wirehub.protocol.server_api``: server API bodies into typed commands."""

from __future__ import annotations

from typing import Any

import pytest

from wirehub.protocol.frames import HistoryRequest
from wirehub.protocol.server_api import (
    ApiRequestInvalid,
    BatchCommand,
    BroadcastCommand,
    ChannelsCommand,
    DisconnectCommand,
    InfoCommand,
    PublishCommand,
    parse_api_command,
)
from wirehub.types import PublishOptions, RefreshUser, StreamPosition, SubscribeUser, UnsubscribeUser


def test_publish_reads_every_field_and_ignores_unknown_ones() -> None:
    """All of publish's fields are read; fields wirehub does not know are ignored, as Centrifugo does."""
    body = {
        "channel": "chat:x",
        "data": {"text": "hi"},
        "tags": {"k": "v"},
        "idempotency_key": "key-1",
        "skip_history": True,
        "delta": True,
    }
    assert parse_api_command("publish", body) == PublishCommand(
        "chat:x", {"text": "hi"}, PublishOptions({"k": "v"}, "key-1", skip_history=True)
    )


def test_publish_accepts_null_data_when_given() -> None:
    """``"data": null`` is data (JSON null); a missing ``data`` is not."""
    assert parse_api_command("publish", {"channel": "c", "data": None}) == PublishCommand("c", None)
    with pytest.raises(ApiRequestInvalid, match=r"publish\.data: required"):
        parse_api_command("publish", {"channel": "c"})


def test_connection_methods_read_their_selectors() -> None:
    """subscribe, unsubscribe, disconnect and refresh read user, client, session and their options."""
    subscribe = parse_api_command(
        "subscribe",
        {
            "user": "u",
            "channel": "c",
            "client": "cl",
            "info": {"role": 1},
            "data": [1],
            "recover_since": {"offset": 3, "epoch": "e"},
            "override": {"presence": {"value": False}, "join_leave": {"value": True}},
        },
    )
    assert subscribe == SubscribeUser(
        "u",
        "c",
        client="cl",
        info={"role": 1},
        data=[1],
        recover_since=StreamPosition(3, "e"),
        override={"presence": False, "join_leave": True},
    )
    assert parse_api_command("unsubscribe", {"user": "u", "channel": "c", "session": "s"}) == (
        UnsubscribeUser("u", "c", session="s")
    )
    disconnect = {"user": "u", "whitelist": ["a"], "disconnect": {"code": 4000, "reason": "r"}}
    assert parse_api_command("disconnect", disconnect) == DisconnectCommand("u", "", "", ("a",), 4000, "r")
    assert parse_api_command("disconnect", {"user": "u"}) == DisconnectCommand("u")
    assert parse_api_command("refresh", {"user": "u", "expire_at": 99}) == RefreshUser("u", expire_at=99)


def test_history_channels_info_and_batch_parse() -> None:
    """history without limit asks for the position only; batch keeps each command's method."""
    assert parse_api_command("history", {"channel": "c"}) == HistoryRequest("c")
    assert parse_api_command("history", {"channel": "c", "limit": -1, "reverse": True}) == HistoryRequest(
        "c", -1, None, True
    )
    assert parse_api_command("channels", {}) == ChannelsCommand()
    assert parse_api_command("info", {}) == InfoCommand()
    batch = parse_api_command(
        "batch",
        {"commands": [{"broadcast": {"channels": ["a", "b"], "data": 1}}, {"info": {}}], "parallel": True},
    )
    assert batch == BatchCommand(
        (("broadcast", BroadcastCommand(("a", "b"), 1)), ("info", InfoCommand())), parallel=True
    )


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("publish", "text", "publish: expected a JSON object"),
        ("publish", {"channel": ["x"], "data": 1}, "publish.channel: expected a string"),
        ("publish", {"channel": "c", "data": 1, "idempotency_key": 7}, "publish.idempotency_key"),
        ("publish", {"channel": "c", "data": 1, "b64data": "AA=="}, "publish.b64data"),
        ("broadcast", {"channels": ["a", 1], "data": 1}, "broadcast.channels: expected a list of strings"),
        ("subscribe", {"user": "u", "channel": "c", "b64info": "AA=="}, "subscribe.b64info"),
        ("subscribe", {"user": "u", "channel": "c", "recover_since": 5}, "subscribe.recover_since"),
        ("subscribe", {"user": "u", "channel": "c", "override": {"presence": {"value": 1}}}, "value"),
        ("disconnect", {"user": "u", "whitelist": "a"}, "disconnect.whitelist"),
        ("disconnect", {"user": "u", "disconnect": {"code": -1}}, "disconnect.disconnect.code"),
        ("refresh", {"user": "u", "expired": 1}, "refresh.expired: expected a boolean"),
        ("refresh", {"client": "c"}, "refresh.user: required"),
        ("history", {"channel": "c", "limit": True}, "history.limit"),
        ("history", {"channel": "c", "since": {"offset": -1}}, "history.since.offset"),
        ("batch", {"commands": {}}, "batch.commands: expected a list"),
        ("batch", {"commands": ["info"]}, "batch.commands[0]"),
        ("batch", {"commands": [{"nope": {}}]}, "unknown method 'nope'"),
        ("batch", {"commands": [{"info": []}]}, "batch.commands[0].info: expected a JSON object"),
        ("shutdown", {}, "unknown method 'shutdown'"),
    ],
)
def test_malformed_body_raises_with_the_field_named(method: str, body: Any, message: str) -> None:
    """Every malformed body raises ApiRequestInvalid whose message names the offending field."""
    with pytest.raises(ApiRequestInvalid) as raised:
        parse_api_command(method, body)
    assert message in str(raised.value)
