"""Typed commands of the client protocol, parsed from decoded JSON (docs/protocol.md, "Commands").

A command whose structure is wrong (a channel that is not a string, an offset that is not a
non-negative integer) cannot be answered meaningfully: parsing raises ``DisconnectBadRequest``,
as Centrifugo does for a command it cannot decode. Unknown fields are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from wirehub.errors import DisconnectBadRequest
from wirehub.types import JSON, StreamPosition, immutable

__all__ = [
    "MAX_UINT32",
    "MAX_UINT64",
    "ChannelRequest",
    "Command",
    "ConnectRequest",
    "HistoryRequest",
    "Pong",
    "PresenceRequest",
    "PresenceStatsRequest",
    "PublishRequest",
    "RefreshRequest",
    "Refused",
    "Request",
    "RpcRequest",
    "SendRequest",
    "SubRefreshRequest",
    "SubscribeRequest",
    "UnknownMethod",
    "UnsubscribeRequest",
    "parse_command",
]

MAX_UINT32 = 2**32 - 1
MAX_UINT64 = 2**64 - 1


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    token: str = ""
    data: JSON = None
    subs: Mapping[str, SubscribeRequest] | None = None
    name: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    channel: str
    token: str = ""
    data: JSON = None
    recover: bool = False
    offset: int = 0
    epoch: str = ""
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    flag: int = 0

    @property
    def reject_unrecovered(self) -> bool:
        """Flag bit 2: answer a failed recovery with error 112 instead of ``recovered:false``."""
        return bool(self.flag & 2)


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """A command that names a channel and nothing else; which one is its subclass."""

    channel: str


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest(ChannelRequest):
    pass


@immutable
class PublishRequest:
    channel: str
    data: JSON = None


@dataclass(frozen=True, slots=True)
class PresenceRequest(ChannelRequest):
    pass


@dataclass(frozen=True, slots=True)
class PresenceStatsRequest(ChannelRequest):
    pass


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    channel: str
    limit: int = 0
    since: StreamPosition | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class SendRequest:
    data: JSON = None


@dataclass(frozen=True, slots=True)
class RpcRequest:
    method: str = ""
    data: JSON = None


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    token: str = ""


@dataclass(frozen=True, slots=True)
class SubRefreshRequest:
    channel: str
    token: str = ""


@dataclass(frozen=True, slots=True)
class Pong:
    """The bare ``{}`` a client sends in answer to a server ping."""


@dataclass(frozen=True, slots=True)
class UnknownMethod:
    """A command with an id but no method this server knows (answered with 104)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A well-formed command that cannot be served as sent (answered with 107, ``reason``).

    ``request`` is what it would have been, so the state machine judges it as such.
    """

    request: Request
    reason: str


Request: TypeAlias = (
    ConnectRequest
    | SubscribeRequest
    | UnsubscribeRequest
    | PublishRequest
    | PresenceRequest
    | PresenceStatsRequest
    | HistoryRequest
    | SendRequest
    | RpcRequest
    | RefreshRequest
    | SubRefreshRequest
    | Pong
    | UnknownMethod
    | Refused
)


@immutable
class Command:
    id: int
    method: str
    """The key the reply result goes under (``"subscribe"``...); "" for pongs and unknown methods."""
    request: Request


def parse_command(obj: Any) -> Command:
    """Turn one decoded JSON line into a ``Command``."""
    if not isinstance(obj, dict):
        raise DisconnectBadRequest("command must be a JSON object")
    cmd_id = obj.get("id", 0)
    if cmd_id is None:
        cmd_id = 0
    # ``type() is int``: of decoded JSON, bool is the only subclass of int.
    if type(cmd_id) is not int or not 0 <= cmd_id <= MAX_UINT32:
        raise DisconnectBadRequest("id must be an unsigned 32-bit integer")
    for method in obj:
        parser = _PARSERS.get(method)
        params = obj[method]
        if parser is None or params is None:
            continue
        if not isinstance(params, dict):
            raise DisconnectBadRequest(f"{method} must be an object")
        if cmd_id == 0 and method != "send":
            raise DisconnectBadRequest(f"{method} needs an id")
        return Command(cmd_id, method, parser(params))
    if cmd_id == 0:
        if any(key != "id" for key in obj):
            raise DisconnectBadRequest("unknown command without id")
        return Command(0, "", Pong())
    return Command(cmd_id, "", UnknownMethod())


# --------------------------------------------------------------------------- field readers


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DisconnectBadRequest(f"{key} must be a string")
    return value


def _bool(params: Mapping[str, Any], key: str) -> bool:
    value = params.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DisconnectBadRequest(f"{key} must be a boolean")
    return value


def _uint(params: Mapping[str, Any], key: str, maximum: int = MAX_UINT64) -> int:
    value = params.get(key)
    if value is None:
        return 0
    if not _is_int(value) or not 0 <= value <= maximum:
        raise DisconnectBadRequest(f"{key} must be an unsigned integer")
    return int(value)


def _channel(params: Mapping[str, Any]) -> str:
    channel = _str(params, "channel")
    if not channel:
        raise DisconnectBadRequest("channel required")
    return channel


def _subscribe(params: Mapping[str, Any]) -> SubscribeRequest:
    return _subscribe_fields(params, _channel(params))


def _subscribe_fields(params: Mapping[str, Any], channel: str) -> SubscribeRequest:
    return SubscribeRequest(
        channel=channel,
        token=_str(params, "token"),
        data=params.get("data"),
        recover=_bool(params, "recover"),
        offset=_uint(params, "offset"),
        epoch=_str(params, "epoch"),
        positioned=_bool(params, "positioned"),
        recoverable=_bool(params, "recoverable"),
        join_leave=_bool(params, "join_leave"),
        flag=_uint(params, "flag"),
    )


def _connect(params: Mapping[str, Any]) -> ConnectRequest:
    subs_raw = params.get("subs")
    subs: dict[str, SubscribeRequest] | None = None
    if subs_raw is not None:
        if not isinstance(subs_raw, dict) or not all(isinstance(v, dict) for v in subs_raw.values()):
            raise DisconnectBadRequest("subs must map channels to objects")
        subs = {ch: _subscribe_fields(opts, ch) for ch, opts in subs_raw.items()}
    return ConnectRequest(
        token=_str(params, "token"),
        data=params.get("data"),
        subs=subs,
        name=_str(params, "name")[:16],
        version=_str(params, "version")[:64],
    )


def _history(params: Mapping[str, Any]) -> HistoryRequest:
    limit = params.get("limit", 0)
    if limit is None:
        limit = 0
    if not _is_int(limit) or not -1 <= limit <= 2**31 - 1:
        raise DisconnectBadRequest("limit must be -1 or a non-negative 32-bit integer")
    since_raw = params.get("since")
    since: StreamPosition | None = None
    if since_raw is not None:
        if not isinstance(since_raw, dict):
            raise DisconnectBadRequest("since must be an object")
        since = StreamPosition(_uint(since_raw, "offset"), _str(since_raw, "epoch"))
    return HistoryRequest(
        channel=_channel(params),
        limit=int(limit),
        since=since,
        reverse=_bool(params, "reverse"),
    )


_PARSERS: dict[str, Any] = {
    "connect": _connect,
    "subscribe": _subscribe,
    "unsubscribe": lambda p: UnsubscribeRequest(_channel(p)),
    "publish": lambda p: PublishRequest(_channel(p), p.get("data")),
    "presence": lambda p: PresenceRequest(_channel(p)),
    "presence_stats": lambda p: PresenceStatsRequest(_channel(p)),
    "history": _history,
    "send": lambda p: SendRequest(p.get("data")),
    "rpc": lambda p: RpcRequest(_str(p, "method"), p.get("data")),
    "refresh": lambda p: RefreshRequest(_str(p, "token")),
    "sub_refresh": lambda p: SubRefreshRequest(_channel(p), _str(p, "token")),
}
