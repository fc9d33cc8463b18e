"""Typed commands of the server API and their parsing from decoded JSON (docs/server-api.md).

The server API has Centrifugo's shape: ``POST /api/<method>`` with the method's fields as a JSON
object. A body that cannot be read as the method's request (a missing field, a wrong type) raises
``ApiRequestInvalid`` with a message that names the field, which the HTTP edge answers with 400.
Unknown fields are ignored, as Centrifugo does. Pure code: no I/O.

``subscribe``, ``unsubscribe`` and ``refresh`` parse into the node-level control messages they
become (``SubscribeUser``...), with ``origin`` left empty: the node that sends one fills it in.
``presence``, ``presence_stats`` and ``history`` parse into the client protocol's requests
(``protocol.frames``), which ask for the same.
``disconnect`` keeps a command of its own, as its close code is optional here (the node's default
applies) and it is checked and settled only when the node sends the control message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from wirehub.protocol.frames import HistoryRequest, PresenceRequest, PresenceStatsRequest
from wirehub.types import (
    JSON,
    PublishOptions,
    RefreshUser,
    StreamPosition,
    SubscribeUser,
    UnsubscribeUser,
)

__all__ = [
    "ApiCommand",
    "ApiRequestInvalid",
    "BatchCommand",
    "BroadcastCommand",
    "ChannelsCommand",
    "DisconnectCommand",
    "HistoryRemoveCommand",
    "InfoCommand",
    "PublishCommand",
    "parse_api_command",
]


class ApiRequestInvalid(ValueError):
    """A request body the server API cannot read as the method's request (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class PublishCommand:
    channel: str
    data: JSON
    options: PublishOptions = field(default_factory=PublishOptions)


@dataclass(frozen=True, slots=True)
class BroadcastCommand:
    channels: tuple[str, ...]
    data: JSON
    options: PublishOptions = field(default_factory=PublishOptions)


@dataclass(frozen=True, slots=True)
class DisconnectCommand:
    user: str
    client: str = ""
    session: str = ""
    whitelist: tuple[str, ...] = ()
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HistoryRemoveCommand:
    channel: str


@dataclass(frozen=True, slots=True)
class ChannelsCommand:
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class InfoCommand:
    pass


@dataclass(frozen=True, slots=True)
class BatchCommand:
    commands: tuple[tuple[str, ApiCommand], ...]
    """Each command with the method it came as (its reply goes under that key)."""
    parallel: bool = False


ApiCommand: TypeAlias = (
    PublishCommand
    | BroadcastCommand
    | SubscribeUser
    | UnsubscribeUser
    | DisconnectCommand
    | RefreshUser
    | PresenceRequest
    | PresenceStatsRequest
    | HistoryRequest
    | HistoryRemoveCommand
    | ChannelsCommand
    | InfoCommand
    | BatchCommand
)


def parse_api_command(method: str, body: Any) -> ApiCommand:
    """The command ``body`` asks for under ``method``; ``ApiRequestInvalid`` if it cannot be read."""
    parser = _PARSERS.get(method)
    if parser is None:
        raise ApiRequestInvalid(f"unknown method {method[:64]!r}")
    return parser(_Fields(body, method))


class _Fields:
    """Reads the fields of one JSON object, naming ``path.field`` in every complaint."""

    __slots__ = ("_obj", "_path")

    def __init__(self, obj: Any, path: str) -> None:
        if not isinstance(obj, dict):
            raise ApiRequestInvalid(f"{path}: expected a JSON object")
        self._obj: dict[str, Any] = obj
        self._path = path

    def _bad(self, key: str, expected: str) -> ApiRequestInvalid:
        return ApiRequestInvalid(f"{self._path}.{key}: expected {expected}")

    def _get(self, key: str, *, required: bool) -> Any:
        value = self._obj.get(key)
        if value is None and required:
            raise ApiRequestInvalid(f"{self._path}.{key}: required")
        return value

    def text(self, key: str, *, required: bool = False) -> str:
        value = self._get(key, required=required)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key, required=False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._bad(key, "a boolean")
        return value

    def integer(self, key: str, *, minimum: int = -(2**63), maximum: int = 2**63 - 1) -> int | None:
        value = self._get(key, required=False)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise self._bad(key, f"an integer in {minimum}..{maximum}")
        return value

    def json(self, key: str, *, required: bool = False) -> JSON:
        if required and key not in self._obj:
            raise ApiRequestInvalid(f"{self._path}.{key}: required")
        value: JSON = self._obj.get(key)
        return value

    def strings(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        value = self._get(key, required=required)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._bad(key, "a list of strings")
        return tuple(value)

    def tags(self, key: str) -> dict[str, str]:
        value = self._get(key, required=False)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._bad(key, "an object of strings")
        return value

    def names(self) -> list[str]:
        return list(self._obj)

    def nested(self, key: str) -> _Fields | None:
        value = self._get(key, required=False)
        return None if value is None else _Fields(value, f"{self._path}.{key}")

    def position(self, key: str) -> StreamPosition | None:
        fields = self.nested(key)
        if fields is None:
            return None
        return StreamPosition(fields.integer("offset", minimum=0) or 0, fields.text("epoch"))

    def no_binary(self, *keys: str) -> None:
        """Refuse the base64 binary fields: wirehub's clients speak JSON only."""
        for key in keys:
            if self._obj.get(key) is not None:
                raise ApiRequestInvalid(f"{self._path}.{key}: binary data is not supported (JSON only)")


def _publish(f: _Fields) -> PublishCommand:
    f.no_binary("b64data")
    return PublishCommand(f.text("channel", required=True), *_publication(f))


def _broadcast(f: _Fields) -> BroadcastCommand:
    f.no_binary("b64data")
    return BroadcastCommand(f.strings("channels", required=True), *_publication(f))


def _publication(f: _Fields) -> tuple[JSON, PublishOptions]:
    """What publish and broadcast share, in their fields' order: data, tags, idempotency key, skip history."""
    data = f.json("data", required=True)
    return data, PublishOptions(f.tags("tags"), f.text("idempotency_key"), f.flag("skip_history"))


def _subscribe(f: _Fields) -> SubscribeUser:
    f.no_binary("b64info", "b64data")
    override: dict[str, bool] = {}
    options = f.nested("override")
    if options is not None:
        for name in options.names():
            wrapped = options.nested(name)
            if wrapped is not None:
                override[name] = wrapped.flag("value")
    return SubscribeUser(
        user=f.text("user", required=True),
        channel=f.text("channel", required=True),
        client=f.text("client"),
        session=f.text("session"),
        info=f.json("info"),
        data=f.json("data"),
        recover_since=f.position("recover_since"),
        override=override,
    )


def _disconnect(f: _Fields) -> DisconnectCommand:
    code: int | None = None
    reason = ""
    disconnect = f.nested("disconnect")
    if disconnect is not None:
        code = disconnect.integer("code", minimum=0, maximum=2**32 - 1)
        reason = disconnect.text("reason")
    return DisconnectCommand(
        user=f.text("user", required=True),
        client=f.text("client"),
        session=f.text("session"),
        whitelist=f.strings("whitelist"),
        code=code or None,
        reason=reason,
    )


def _refresh(f: _Fields) -> RefreshUser:
    return RefreshUser(
        user=f.text("user", required=True),
        client=f.text("client"),
        session=f.text("session"),
        expired=f.flag("expired"),
        expire_at=f.integer("expire_at", minimum=0) or None,
    )


def _history(f: _Fields) -> HistoryRequest:
    return HistoryRequest(
        channel=f.text("channel", required=True),
        limit=f.integer("limit", minimum=-1, maximum=2**31 - 1) or 0,
        since=f.position("since"),
        reverse=f.flag("reverse"),
    )


def _batch(f: _Fields) -> BatchCommand:
    raw = f.json("commands", required=True)
    if not isinstance(raw, list):
        raise ApiRequestInvalid("batch.commands: expected a list")
    commands: list[tuple[str, ApiCommand]] = []
    for index, item in enumerate(raw):
        path = f"batch.commands[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise ApiRequestInvalid(f'{path}: expected an object with one method, as {{"publish": {{...}}}}')
        ((method, body),) = item.items()
        if method == "batch" or method not in _PARSERS:
            raise ApiRequestInvalid(f"{path}: unknown method {method[:64]!r}")
        commands.append((method, _PARSERS[method](_Fields(body, f"{path}.{method}"))))
    return BatchCommand(tuple(commands), parallel=f.flag("parallel"))


_PARSERS: dict[str, Callable[[_Fields], ApiCommand]] = {
    "publish": _publish,
    "broadcast": _broadcast,
    "subscribe": _subscribe,
    "unsubscribe": lambda f: UnsubscribeUser(
        user=f.text("user", required=True),
        channel=f.text("channel", required=True),
        client=f.text("client"),
        session=f.text("session"),
    ),
    "disconnect": _disconnect,
    "refresh": _refresh,
    "presence": lambda f: PresenceRequest(f.text("channel", required=True)),
    "presence_stats": lambda f: PresenceStatsRequest(f.text("channel", required=True)),
    "history": _history,
    "history_remove": lambda f: HistoryRemoveCommand(f.text("channel", required=True)),
    "channels": lambda f: ChannelsCommand(f.text("pattern")),
    "info": lambda f: InfoCommand(),
    "batch": _batch,
}
