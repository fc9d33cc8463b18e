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

import orjson

from wirehub.errors import DisconnectBadRequest, ErrorReply
from wirehub.protocol.frames import Command, Refused, parse_command
from wirehub.types import JSON, WireDict

__all__ = [
    "COMMAND_LEVELS",
    "MAX_FRAME_DEPTH",
    "MAX_JSON_DEPTH",
    "PING",
    "decode_frame",
    "encode",
    "encode_error",
    "encode_push",
    "encode_reply",
]

PING = b"{}"

MAX_JSON_DEPTH = 64
"""The deepest a command's values (a publication's data) may be nested; deeper ones get 107."""
COMMAND_LEVELS = 2
"""What a command wraps its values in: ``{"publish": {"data": ...}}``."""
MAX_FRAME_DEPTH = 256
"""A line nested deeper than this is no command at all (3501): far beyond any payload, and
within what the JSON libraries parse without running out of stack."""

_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_SCAN = bytes.maketrans(b"123456789[", b"000000000{")
"""Every digit to 0 and every ``[`` to ``{``: one translated copy of a line answers both of the
questions below with ``in`` and ``count``, several times faster than regular expressions."""
_LONG_NUMBER = b"0" * 19
"""In the translated line: a run of digits that may be an integer beyond 64 bits, which orjson
would turn into a float."""

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(obj: Any) -> bytes:
    """One JSON object as one line of UTF-8.

    orjson (several times faster than the standard library here) for everything but integers
    beyond 64 bits, which only the standard library writes.
    """
    try:
        return orjson.dumps(obj)
    except TypeError:
        return _encoder.encode(obj).encode()


def decode_frame(frame: str | bytes) -> list[Command]:
    """Split a frame into lines and parse every command, in order.

    Any line that is not a JSON object of a known shape makes the whole connection a
    protocol violation (3501); nothing of a frame is processed before all of it parsed, so a
    bad line never leaves half a frame applied.
    """
    if isinstance(frame, str):
        try:
            frame = frame.encode()
        except UnicodeEncodeError:
            raise DisconnectBadRequest("frame is not UTF-8") from None
    if b"\n" not in frame:  # one command, the common case: no split, no comprehension (a call of its own)
        if not frame.strip():
            raise DisconnectBadRequest("empty frame")
        return [_decode_command(frame)]
    commands = [_decode_command(line) for line in frame.split(b"\n") if line.strip()]
    if not commands:
        raise DisconnectBadRequest("empty frame")
    return commands


def _decode_command(line: bytes) -> Command:
    scanned = line.translate(_SCAN)
    obj = _decode_line(line, long_numbers=_LONG_NUMBER in scanned)
    # A line with fewer opening brackets cannot nest deeper: most are never walked.
    depth = _depth(obj) if scanned.count(b"{") > MAX_JSON_DEPTH else 0
    command = parse_command(obj)
    if depth > MAX_JSON_DEPTH + COMMAND_LEVELS:
        reason = f"values nested deeper than {MAX_JSON_DEPTH} levels"
        command = Command(command.id, command.method, Refused(command.request, reason))
    return command


def _decode_line(line: bytes, *, long_numbers: bool) -> Any:
    """One line as JSON whose every value the server can send on (finite numbers, valid UTF-8).

    orjson refuses invalid UTF-8, lone surrogate escapes and numbers that overflow by itself. It
    would read an integer beyond 64 bits as a float, so a line that may hold one
    (``long_numbers``) goes to the standard library, which keeps it exact.
    """
    try:
        if not long_numbers:
            return orjson.loads(line)
        obj = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise DisconnectBadRequest("malformed JSON") from None
    if _ESCAPED_SURROGATE.search(line) is not None:
        _check_surrogates(obj)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows")
    return value


def _depth(obj: Any) -> int:
    """How deeply ``obj`` nests (only walked when the line has that many brackets).

    Raises ``DisconnectBadRequest`` past MAX_FRAME_DEPTH: no command is nested that deeply.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_FRAME_DEPTH:
                raise DisconnectBadRequest("JSON nested too deeply")
            deepest = max(deepest, depth)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return deepest


def _check_surrogates(obj: Any) -> None:
    """Refuse lone surrogates, which the standard library decodes but UTF-8 cannot carry."""
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DisconnectBadRequest("lone surrogate in a string") from None


def encode_reply(cmd_id: int, method: str, result: WireDict) -> bytes:
    if not result:
        # The reply to every publish: formatted, not encoded (``method`` is one of the command
        # names, plain ASCII, and ``cmd_id`` an integer).
        return b'{"id":%d,"%s":{}}' % (cmd_id, method.encode())
    return encode({"id": cmd_id, method: result})


def encode_error(cmd_id: int, error: ErrorReply) -> bytes:
    body: WireDict = {"code": error.code, "message": error.message}
    if error.temporary:
        body["temporary"] = True
    return encode({"id": cmd_id, "error": body})


def encode_push(channel: str, kind: str, body: JSON) -> bytes:
    return encode({"push": {"channel": channel, kind: body}})
