"""JSON codec: newline-batched frames in, compact single-line UTF-8 JSON out (docs/protocol.md).

Everything sent is encoded to bytes here, once: a publication's push is encoded once for all its
subscribers. JSON escapes newlines inside strings, so an encoded object is always one line and
objects can be joined with ``\\n`` into one frame.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from wirehub.errors import DisconnectBadRequest, ErrorReply
from wirehub.protocol.frames import Command, parse_command
from wirehub.types import JSON, WireDict

PING = b"{}"

MAX_JSON_DEPTH = 64
"""Deeper values are refused: the server must be able to re-encode whatever it accepted."""

_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(obj: Any) -> bytes:
    """One JSON object as one line of UTF-8."""
    return _encoder.encode(obj).encode()


def decode_frame(frame: str | bytes) -> list[Command]:
    """Split a frame into lines and parse every command, in order.

    Any line that is not a JSON object of a known shape makes the whole connection a
    protocol violation (3501); nothing of a frame is processed before all of it parsed, so a
    bad line never leaves half a frame applied.
    """
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise DisconnectBadRequest("frame is not UTF-8") from None
    commands: list[Command] = []
    for line in frame.strip().split("\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):
            raise DisconnectBadRequest("malformed JSON") from None
        _check_encodable(line, obj)
        commands.append(parse_command(obj))
    if not commands:
        raise DisconnectBadRequest("empty frame")
    return commands


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows")
    return value


def _check_encodable(line: str, obj: Any) -> None:
    """Refuse values that decode but could not be sent on: too deep, or lone surrogates.

    Both checks first look at the raw line with C-speed string scans, so the common case
    (shallow payloads without escaped surrogates) never walks the value in Python.
    """
    too_many_brackets = line.count("[") + line.count("{") > MAX_JSON_DEPTH
    surrogates = _ESCAPED_SURROGATE.search(line) is not None
    if not too_many_brackets and not surrogates:
        return
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_JSON_DEPTH:
                raise DisconnectBadRequest("JSON nested too deeply")
            for key, item in value.items():
                if surrogates:
                    _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_JSON_DEPTH:
                raise DisconnectBadRequest("JSON nested too deeply")
            stack.extend((item, depth + 1) for item in value)
        elif surrogates and isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DisconnectBadRequest("lone surrogate in a string") from None


def encode_reply(cmd_id: int, method: str, result: WireDict) -> bytes:
    return encode({"id": cmd_id, method: result})


def encode_error(cmd_id: int, error: ErrorReply) -> bytes:
    body: WireDict = {"code": error.code, "message": error.message}
    if error.temporary:
        body["temporary"] = True
    return encode({"id": cmd_id, "error": body})


def encode_push(channel: str, kind: str, body: JSON) -> bytes:
    return encode({"push": {"channel": channel, kind: body}})
