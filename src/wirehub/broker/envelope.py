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

from collections.abc import Mapping
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
    Publication,
    UnsubscribeUser,
)

PUBLICATION, JOIN, LEAVE, DISCONNECT_USER, UNSUBSCRIBE_USER = range(5)
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
        case Publication(data=data, offset=offset, info=info, tags=tags, time_ms=time_ms):
            return _pack(
                [
                    PUBLICATION,
                    data,
                    offset,
                    time_ms,
                    info_to_list(info) if info is not None else None,
                    dict(tags) if tags else None,
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
        if not isinstance(offset, int) or not isinstance(time_ms, int):
            raise EnvelopeError("offset and time must be integers")
        return Publication(
            data=payload,
            offset=offset,
            info=info_from_list(info) if info is not None else None,
            tags=_tags(tags),
            time_ms=time_ms,
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
        case DisconnectUser(user=user, code=code, reason=reason, origin=origin):
            return _pack([DISCONNECT_USER, origin, user, code, reason])
        case UnsubscribeUser(user=user, channel=channel, origin=origin):
            return _pack([UNSUBSCRIBE_USER, origin, user, channel])
    raise TypeError(f"not a control message: {type(message).__name__}")


def decode_control(data: bytes) -> ControlMessage:
    envelope = _unpack(data)
    if not isinstance(envelope, list) or not envelope:
        raise EnvelopeError("an envelope is a non-empty list")
    kind = envelope[0]
    if kind == DISCONNECT_USER and len(envelope) >= 5:
        _, origin, user, code, reason = envelope[:5]
        if (
            isinstance(origin, str)
            and isinstance(user, str)
            and isinstance(code, int)
            and isinstance(reason, str)
        ):
            return DisconnectUser(user=user, code=code, reason=reason, origin=origin)
    elif kind == UNSUBSCRIBE_USER and len(envelope) >= 4:
        _, origin, user, channel = envelope[:4]
        if isinstance(origin, str) and isinstance(user, str) and isinstance(channel, str):
            return UnsubscribeUser(user=user, channel=channel, origin=origin)
    raise EnvelopeError(f"unknown or malformed control envelope kind {kind!r}")
