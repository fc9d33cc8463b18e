"""Property-based fuzzing of the protocol layer: decoder, command parser and session state machine.

Whatever a client sends, the pure protocol code either yields commands or raises the protocol
error that closes the connection with 3501 (``DisconnectBadRequest``); no other exception may
escape, and whatever it accepts, the server can encode again.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz_strategies import commands, frames, json_values

from wirehub.errors import DisconnectBadRequest
from wirehub.protocol.codec import MAX_JSON_DEPTH, decode_frame, encode
from wirehub.protocol.frames import MAX_UINT32, Command, Pong, Refused, UnknownMethod, parse_command
from wirehub.protocol.session import Session

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_refuse(frame: str | bytes) -> list[Command] | None:
    """The decoded commands, or None when the decoder refused the frame with 3501."""
    try:
        return decode_frame(frame)
    except DisconnectBadRequest:  # closes with 3501
        return None


@FUZZ
@given(st.binary(max_size=512))
def test_decode_frame_yields_commands_or_3501_when_given_arbitrary_bytes(frame: bytes) -> None:
    """Binary frames of any bytes decode or are refused with 3501, nothing else."""
    decode_or_refuse(frame)


@FUZZ
@given(st.text(max_size=512))
def test_decode_frame_yields_commands_or_3501_when_given_arbitrary_text(frame: str) -> None:
    """Text frames of any characters (lone surrogates included) decode or are refused with 3501."""
    decode_or_refuse(frame)


@FUZZ
@given(frames())
def test_decode_frame_yields_one_command_per_line_when_it_accepts(frame: str) -> None:
    """An accepted frame gives exactly one command per non-blank line, each with a valid id."""
    decoded = decode_or_refuse(frame)
    if decoded is None:
        return
    assert len(decoded) == sum(1 for line in frame.strip().split("\n") if line.strip())
    for command in decoded:
        assert 0 <= command.id <= MAX_UINT32


@FUZZ
@given(json_values)
def test_parse_command_yields_command_or_3501_when_given_arbitrary_json(value: Any) -> None:
    """Any decoded JSON value parses as a command or is refused with 3501."""
    try:
        command = parse_command(value)
    except DisconnectBadRequest:
        return
    assert isinstance(value, dict)
    assert 0 <= command.id <= MAX_UINT32


@FUZZ
@given(commands())
def test_parse_command_keeps_protocol_invariants_when_given_command_shaped_objects(
    obj: dict[str, Any],
) -> None:
    """Only ``send`` and pongs go without an id; a methodless command is a pong or unknown."""
    try:
        command = parse_command(obj)
    except DisconnectBadRequest:
        return
    if command.id == 0:
        assert command.method in ("send", "")
    if command.method == "":
        assert isinstance(command.request, Pong | UnknownMethod)
        assert isinstance(command.request, Pong) == (command.id == 0)


@FUZZ
@given(frames())
def test_decode_frame_accepts_only_what_can_be_encoded_again(frame: str) -> None:
    """Every payload the decoder lets through re-encodes (no NaN, no lone surrogates, bounded depth)."""
    decoded = decode_or_refuse(frame)
    for command in decoded or []:
        data = getattr(command.request, "data", None)
        text = encode({"data": data})
        assert json.loads(text) == {"data": data}


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=MAX_JSON_DEPTH + 2))
def test_decode_frame_refuses_data_nested_beyond_max_depth(depth: int) -> None:
    """Data nested deeper than ``MAX_JSON_DEPTH`` makes a Refused command (107); shallower passes."""
    data = "[" * depth + "]" * depth
    decoded = decode_or_refuse('{"id": 1, "publish": {"channel": "c", "data": ' + data + "}}")
    assert decoded is not None
    assert isinstance(decoded[0].request, Refused) == (depth > MAX_JSON_DEPTH)
    assert decoded[0].id == 1


@FUZZ
@given(st.lists(commands(), max_size=8))
def test_session_admits_commands_or_refuses_with_3501(objs: list[dict[str, Any]]) -> None:
    """The state machine, fed any command sequence, admits or refuses with 3501, never crashes."""
    session = Session()
    for obj in objs:
        try:
            command = parse_command(obj)
            session.admit(command)
        except DisconnectBadRequest:
            return
        if command.method == "connect":
            session.connect_succeeded()
