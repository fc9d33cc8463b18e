"""Hypothesis strategies for hostile client input: arbitrary JSON, command-shaped objects, frames.

Command-shaped objects are what makes fuzzing reach past the parser into the dispatcher: mostly
a valid ``id`` and one known method whose parameters are the fields the server reads, each with
a value of the right type most of the time (edge values included: huge offsets, ``-1`` limits,
odd channel names) and of any JSON type otherwise. A minority of lines are made-up methods,
missing or wrong ids, and plain junk, so the refusal paths are covered too.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

CHANNELS = (
    "chat:fuzz",
    "plain:fuzz",
    "plain:other",
    "$chat:fuzz",
    "$plain:fuzz",
    "users:fuzz#fuzzer",
    "users:fuzz#fuzzer,someone",
    "users:fuzz#someone",
    "nowhere:fuzz",
    "fuzz",
    "",
    "chat:",
    ":",
    "#",
    "$",
    "chat:a*b",
    "chat:a b",
    "chat:é",
    "x" * 300,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

channels = st.sampled_from(CHANNELS) | st.sampled_from(["chat:", "plain:", "users:"]).flatmap(
    lambda prefix: st.text(max_size=12).map(lambda rest: prefix + rest)
)
uint64s = st.integers(min_value=0, max_value=2**64 - 1) | st.sampled_from([0, 1, 2, 49, 50, 51, 2**64 - 1])
texts = st.text(max_size=16)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "channel": channels,
    "token": st.sampled_from(["", "x", "a.b.c", "eyJhbGciOiJub25lIn0.e30."]) | texts,
    "data": json_values,
    "recover": st.booleans(),
    "positioned": st.booleans(),
    "recoverable": st.booleans(),
    "join_leave": st.booleans(),
    "reverse": st.booleans(),
    "offset": uint64s,
    "flag": uint64s,
    "epoch": st.sampled_from(["", "x"]) | texts,
    "limit": st.integers(min_value=-1, max_value=2**31 - 1) | st.sampled_from([-1, 0, 1, 300, 301]),
    "since": st.fixed_dictionaries({}, optional={"offset": uint64s, "epoch": texts}),
    "method": st.sampled_from(["", "x", "chat:x", "plain:x", "fuzz:x"]) | texts,
    "name": texts,
    "version": texts,
    "subs": st.dictionaries(
        channels, st.fixed_dictionaries({}, optional={"recover": st.booleans()}), max_size=2
    ),
}

CHANNEL_METHODS = (
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "sub_refresh",
)
FIELDS_OF: dict[str, tuple[str, ...]] = {
    "connect": ("token", "data", "subs", "name", "version"),
    "subscribe": (
        "token",
        "data",
        "recover",
        "offset",
        "epoch",
        "positioned",
        "recoverable",
        "join_leave",
        "flag",
    ),
    "unsubscribe": (),
    "publish": ("data",),
    "presence": (),
    "presence_stats": (),
    "history": ("limit", "since", "reverse"),
    "send": ("data",),
    "rpc": ("method", "data"),
    "refresh": ("token",),
    "sub_refresh": ("token",),
}
METHODS = tuple(FIELDS_OF)
# Methods that end the connection whatever their parameters (a second connect, a refresh nobody
# asked for, send without a handler) are rarer, so that most frames reach deeper.
WEIGHTED_METHODS = (
    *("subscribe", "publish", "history") * 4,
    *("unsubscribe", "presence", "presence_stats", "rpc") * 2,
    *("sub_refresh", "refresh", "send", "connect"),
)


def field_value(name: str) -> st.SearchStrategy[Any]:
    """Usually a value of the field's own type; one time in forty any JSON value."""
    return st.integers(min_value=0, max_value=39).flatmap(lambda n: FIELD_VALUES[name] if n else json_values)


def params_of(method: str) -> st.SearchStrategy[dict[str, Any]]:
    required = {"channel": field_value("channel")} if method in CHANNEL_METHODS else {}
    optional = {name: field_value(name) for name in FIELDS_OF[method]}
    return st.fixed_dictionaries(required, optional=optional)


command_ids = st.integers(min_value=2, max_value=1000) | st.sampled_from(
    [0, -1, 2**32 - 1, 2**32, None, True, "1", 1.5]
)


@st.composite
def commands(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like a command; usually a well-formed one."""
    obj: dict[str, Any] = {}
    shape = draw(st.integers(min_value=0, max_value=19))
    obj["id"] = draw(st.integers(min_value=2, max_value=1000) if shape else command_ids)
    method = draw(st.sampled_from(WEIGHTED_METHODS))
    obj[method] = draw(params_of(method) if shape else json_values)
    if shape == 1:
        obj[draw(texts)] = draw(json_values)  # an extra key: another method, or an unknown field
    return obj


def command_lines(draw: st.DrawFn, *, max_lines: int = 4) -> list[str]:
    """Lines of a frame: encoded commands mostly, sometimes any JSON or any text."""
    junk = (
        json_values.map(json.dumps)
        | st.text(max_size=40)
        | st.sampled_from(
            ["", " ", "{}", "null", "[]", '{"id":1}', "NaN", '{"id": 1e400}', '{"id": 2, "rpc"']
        )
    )
    line = st.integers(min_value=0, max_value=9).flatmap(lambda n: commands().map(json.dumps) if n else junk)
    return draw(st.lists(line, min_size=1, max_size=max_lines))


@st.composite
def frames(draw: st.DrawFn) -> str:
    """A text frame: newline-joined command-like lines."""
    return "\n".join(command_lines(draw))
