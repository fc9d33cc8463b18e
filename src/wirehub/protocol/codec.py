"""JSON codec: newline-batched frames in, compact single-line JSON out (PROTOCOL.md §2).

``json.dumps`` escapes newlines inside strings, so an encoded object is always one line and
objects can be joined with ``\\n`` into one frame.
"""

from __future__ import annotations

import json
from typing import Any

from wirehub.errors import DisconnectBadRequest, ErrorReply
from wirehub.protocol.frames import Command, parse_command
from wirehub.types import JSON, WireDict

PING = "{}"

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(obj: Any) -> str:
    """One JSON object as one line."""
    return _encoder.encode(obj)


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
            obj = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise DisconnectBadRequest("malformed JSON") from None
        commands.append(parse_command(obj))
    if not commands:
        raise DisconnectBadRequest("empty frame")
    return commands


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def encode_reply(cmd_id: int, method: str, result: WireDict) -> str:
    return encode({"id": cmd_id, method: result})


def encode_error(cmd_id: int, error: ErrorReply) -> str:
    body: WireDict = {"code": error.code, "message": error.message}
    if error.temporary:
        body["temporary"] = True
    return encode({"id": cmd_id, "error": body})


def encode_push(channel: str, kind: str, body: JSON) -> str:
    return encode({"push": {"channel": channel, kind: body}})
