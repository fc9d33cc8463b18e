"""Envelopes between replicas: MessagePack arrays, one per broker message.

An envelope is ``[kind, field, ...]``. Publications, joins and leaves travel on their channel's
broker channel; control messages on the node-level control channel. The format is versioned
by ``kind`` alone: a node appends new fields at the end (older nodes ignore what follows the
fields they know) and gives a changed meaning a new kind (older nodes drop it, logged).

JSON values travel as MessagePack values. Integers beyond 64 bits, which Python's JSON accepts,
travel as an extension type holding their decimal digits, so nothing a client may publish is
refused here.

Pure code: no I/O, no driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from wirehub.types import (
    JSON,
    BrokerMessage,
    ClientInfo,
    ControlMessage,
    DisconnectUser,
    Join,
    Leave,
    NodeAlive,
    NodeGone,
    Publication,
    RefreshUser,
    StreamPosition,
    SubscribeUser,
    Survey,
    SurveyReply,
    UnsubscribeUser,
)

__all__ = [
    "EnvelopeError",
    "decode_control",
    "decode_info",
    "decode_message",
    "encode_control",
    "encode_info",
    "encode_message",
    "info_from_list",
    "info_to_list",
]

(
    PUBLICATION,
    JOIN,
    LEAVE,
    DISCONNECT_USER,
    UNSUBSCRIBE_USER,
    SUBSCRIBE_USER,
    REFRESH_USER,
    NODE_ALIVE,
    NODE_GONE,
    SURVEY,
    SURVEY_REPLY,
) = range(11)
"""Envelope kinds. Never renumber: replicas of different versions share one broker."""

_BIG_INT = 1
"""Extension type code of an integer outside MessagePack's 64-bit range (decimal digits)."""


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this node understands."""


def _default(obj: Any) -> Any:
    if isinstance(obj, int):
        return msgpack.ExtType(_BIG_INT, str(obj).encode("ascii"))
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _BIG_INT:
        return int(data)
    raise EnvelopeError(f"unknown extension type {code}")


_packer_options: dict[str, Any] = {"default": _default, "use_bin_type": True, "datetime": False}


def _pack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, **_packer_options)
    return packed


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=True)
    except EnvelopeError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise EnvelopeError(f"not MessagePack: {exc}") from exc


# --------------------------------------------------------------------------- client info


def info_to_list(info: ClientInfo) -> list[JSON]:
    return [info.user, info.client, info.conn_info, info.chan_info]


def info_from_list(value: Any) -> ClientInfo:
    if not isinstance(value, list) or len(value) < 4:
        raise EnvelopeError("client info is not a list of 4")
    user, client, conn_info, chan_info = value[:4]
    if not isinstance(user, str) or not isinstance(client, str):
        raise EnvelopeError("client info user and client must be strings")
    return ClientInfo(user=user, client=client, conn_info=conn_info, chan_info=chan_info)


def encode_info(info: ClientInfo) -> bytes:
    """One client's info, as presence stores it."""
    return _pack(info_to_list(info))


def decode_info(data: bytes) -> ClientInfo:
    return info_from_list(_unpack(data))


# --------------------------------------------------------------------------- channel messages


def encode_message(message: BrokerMessage) -> bytes:
    """A publication, join or leave as the bytes every replica receives."""
    match message:
        case Publication(data=data, offset=offset, info=info, tags=tags, time_ms=time_ms, epoch=epoch):
            return _pack(
                [
                    PUBLICATION,
                    data,
                    offset,
                    time_ms,
                    info_to_list(info) if info is not None else None,
                    dict(tags) if tags else None,
                    epoch,
                ]
            )
        case Join(info=info):
            return _pack([JOIN, info_to_list(info)])
        case Leave(info=info):
            return _pack([LEAVE, info_to_list(info)])
    raise TypeError(f"not a broker message: {type(message).__name__}")


def decode_message(data: bytes) -> BrokerMessage:
    """The message a replica published; ``EnvelopeError`` if it is not one this node knows."""
    envelope = _unpack(data)
    if not isinstance(envelope, list) or not envelope:
        raise EnvelopeError("an envelope is a non-empty list")
    kind = envelope[0]
    if kind == PUBLICATION and len(envelope) >= 6:
        _, payload, offset, time_ms, info, tags = envelope[:6]
        epoch = envelope[6] if len(envelope) > 6 else ""  # added later: older nodes leave it out
        if not isinstance(offset, int) or not isinstance(time_ms, int):
            raise EnvelopeError("offset and time must be integers")
        if not isinstance(epoch, str):
            raise EnvelopeError("epoch must be a string")
        return Publication(
            data=payload,
            offset=offset,
            info=info_from_list(info) if info is not None else None,
            tags=_tags(tags),
            time_ms=time_ms,
            epoch=epoch,
        )
    if kind == JOIN and len(envelope) >= 2:
        return Join(info_from_list(envelope[1]))
    if kind == LEAVE and len(envelope) >= 2:
        return Leave(info_from_list(envelope[1]))
    raise EnvelopeError(f"unknown channel envelope kind {kind!r}")


def _tags(value: Any) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise EnvelopeError("tags must map strings to strings")
    return value


# --------------------------------------------------------------------------- control messages


def encode_control(message: ControlMessage) -> bytes:
    match message:
        case DisconnectUser():
            m = message
            return _pack(
                [DISCONNECT_USER, m.origin, m.user, m.code, m.reason, m.client, m.session, sorted(m.keep)]
            )
        case UnsubscribeUser():
            m2 = message
            return _pack([UNSUBSCRIBE_USER, m2.origin, m2.user, m2.channel, m2.client, m2.session])
        case SubscribeUser():
            m3 = message
            since = m3.recover_since
            return _pack(
                [
                    SUBSCRIBE_USER,
                    m3.origin,
                    m3.user,
                    m3.channel,
                    m3.client,
                    m3.session,
                    m3.info,
                    m3.data,
                    [since.offset, since.epoch] if since is not None else None,
                    dict(m3.override),
                ]
            )
        case RefreshUser():
            m4 = message
            return _pack([REFRESH_USER, m4.origin, m4.user, m4.client, m4.session, m4.expired, m4.expire_at])
        case NodeAlive(origin=origin, hello=hello):
            return _pack([NODE_ALIVE, origin, hello])
        case NodeGone(origin=origin):
            return _pack([NODE_GONE, origin])
        case Survey(origin=origin, id=survey_id, op=op, args=args):
            return _pack([SURVEY, origin, survey_id, op, args])
        case SurveyReply(origin=origin, id=survey_id, to=to, payload=payload):
            return _pack([SURVEY_REPLY, origin, survey_id, to, payload])
    raise TypeError(f"not a control message: {type(message).__name__}")


def decode_control(data: bytes) -> ControlMessage:
    """A node-level control message; ``EnvelopeError`` if it is not one this node knows.

    Fields added after a kind's first release are optional: an envelope from an older node
    that lacks them decodes with their defaults.
    """
    envelope = _unpack(data)
    if not isinstance(envelope, list) or not envelope:
        raise EnvelopeError("an envelope is a non-empty list")
    kind = envelope[0]
    decoder = _CONTROL_DECODERS.get(kind) if isinstance(kind, int) else None
    if decoder is None:
        raise EnvelopeError(f"unknown control envelope kind {kind!r}")
    try:
        return decoder(_Fields(envelope))
    except (ValueError, TypeError, IndexError) as exc:
        raise EnvelopeError(f"malformed control envelope kind {kind}: {exc}") from None


class _Fields:
    """Reads an envelope's fields in order, checking each one's type."""

    __slots__ = ("_index", "_values")

    def __init__(self, envelope: list[Any]) -> None:
        self._values = envelope
        self._index = 1

    def _next(self, default: Any) -> Any:
        index = self._index
        self._index += 1
        return self._values[index] if index < len(self._values) else default

    def text(self, *, required: bool = True) -> str:
        if required and self._index >= len(self._values):
            raise ValueError("missing field")
        value = self._next("")
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value

    def integer(self) -> int:
        value = self._next(None)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("expected an integer")
        return value

    def optional_integer(self) -> int | None:
        value = self._next(None)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TypeError("expected an integer or nil")
        return value

    def boolean(self) -> bool:
        value = self._next(False)
        if not isinstance(value, bool):
            raise TypeError("expected a boolean")
        return value

    def json(self) -> JSON:
        value: JSON = self._next(None)
        return value

    def strings(self) -> frozenset[str]:
        value = self._next([])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError("expected a list of strings")
        return frozenset(value)

    def flags(self) -> dict[str, bool]:
        value = self._next({})
        if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
            raise TypeError("expected a map of booleans")
        return value

    def position(self) -> StreamPosition | None:
        value = self._next(None)
        if value is None:
            return None
        if not (isinstance(value, list) and len(value) >= 2 and isinstance(value[1], str)):
            raise TypeError("expected [offset, epoch]")
        offset = value[0]
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise TypeError("expected [offset, epoch]")
        return StreamPosition(offset, value[1])


def _disconnect_user(f: _Fields) -> DisconnectUser:
    origin, user, code, reason = f.text(), f.text(), f.integer(), f.text()
    client, session = f.text(required=False), f.text(required=False)
    return DisconnectUser(user, code, reason, origin, client, session, f.strings())


def _unsubscribe_user(f: _Fields) -> UnsubscribeUser:
    origin, user, channel = f.text(), f.text(), f.text()
    return UnsubscribeUser(user, channel, origin, f.text(required=False), f.text(required=False))


def _subscribe_user(f: _Fields) -> SubscribeUser:
    origin, user, channel, client, session = f.text(), f.text(), f.text(), f.text(), f.text()
    info, data = f.json(), f.json()
    return SubscribeUser(user, channel, origin, client, session, info, data, f.position(), f.flags())


def _refresh_user(f: _Fields) -> RefreshUser:
    origin, user, client, session = f.text(), f.text(), f.text(), f.text()
    return RefreshUser(user, origin, client, session, f.boolean(), f.optional_integer())


_CONTROL_DECODERS: dict[int, Callable[[_Fields], ControlMessage]] = {
    DISCONNECT_USER: _disconnect_user,
    UNSUBSCRIBE_USER: _unsubscribe_user,
    SUBSCRIBE_USER: _subscribe_user,
    REFRESH_USER: _refresh_user,
    NODE_ALIVE: lambda f: NodeAlive(f.text(), f.boolean()),
    NODE_GONE: lambda f: NodeGone(f.text()),
    SURVEY: lambda f: Survey(f.text(), f.text(), f.text(), f.json()),
    SURVEY_REPLY: lambda f: SurveyReply(f.text(), f.text(), f.text(), f.json()),
}
