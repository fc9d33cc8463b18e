"""Unit tests for ``wirehub.broker.envelope``: MessagePack envelopes between replicas."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirehub.broker.envelope import (
    DISCONNECT_USER,
    JOIN,
    NODE_ALIVE,
    PUBLICATION,
    REFRESH_USER,
    SUBSCRIBE_USER,
    SURVEY,
    UNSUBSCRIBE_USER,
    EnvelopeError,
    decode_control,
    decode_info,
    decode_message,
    encode_control,
    encode_info,
    encode_message,
)
from wirehub.types import (
    JSON,
    ClientInfo,
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

json_values: st.SearchStrategy[JSON] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
infos = st.builds(ClientInfo, user=st.text(), client=st.text(), conn_info=json_values, chan_info=json_values)


@given(
    data=json_values,
    offset=st.integers(min_value=0, max_value=2**63 - 1),
    info=st.none() | infos,
    tags=st.dictionaries(st.text(), st.text(), max_size=3),
    time_ms=st.integers(min_value=0, max_value=2**53),
)
def test_publication_round_trips_when_encoded(
    data: JSON, offset: int, info: ClientInfo | None, tags: dict[str, str], time_ms: int
) -> None:
    """Any JSON data (integers of any size included), offset, info, tags and time survive the trip."""
    pub = Publication(data=data, offset=offset, info=info, tags=tags, time_ms=time_ms)
    assert decode_message(encode_message(pub)) == pub


@given(info=infos)
def test_join_and_leave_round_trip_when_encoded(info: ClientInfo) -> None:
    """Joins and leaves keep their kind and client info."""
    assert decode_message(encode_message(Join(info))) == Join(info)
    assert decode_message(encode_message(Leave(info))) == Leave(info)
    assert decode_info(encode_info(info)) == info


def test_control_messages_round_trip_when_encoded() -> None:
    """Control messages keep every field, their origin included."""
    for message in (
        DisconnectUser(user="alice", code=3503, reason="banned", origin="n1"),
        DisconnectUser(
            "alice", 4001, "kicked", "n1", client="c1", session="s1", keep=frozenset({"c2", "c3"})
        ),
        UnsubscribeUser(user="bob", channel="chat:room", origin="n2"),
        UnsubscribeUser(user="bob", channel="chat:room", origin="n2", client="c", session="s"),
        SubscribeUser(
            "bob",
            "chat:room",
            "n2",
            client="c",
            info={"role": "guest"},
            data=[1, 2],
            recover_since=StreamPosition(7, "e1"),
            override={"presence": False},
        ),
        SubscribeUser("bob", "chat:room", "n2"),
        RefreshUser("carol", "n3", expire_at=1_900_000_000),
        RefreshUser("carol", "n3", client="c", expired=True),
        NodeAlive("n4", hello=True),
        NodeGone("n4"),
        Survey("n5", "s1", "channels", {"pattern": "chat:*"}),
        SurveyReply("n6", "s1", "n5", {"channels": {"chat:a": 2}}),
    ):
        assert decode_control(encode_control(message)) == message


def test_envelope_keeps_negative_zero_and_extreme_floats() -> None:
    """Floats travel as doubles: -0.0, tiny and huge values come back bit for bit."""
    values: list[JSON] = [-0.0, 5e-324, 1.7976931348623157e308]
    decoded = decode_message(encode_message(Publication(data=values)))
    assert isinstance(decoded, Publication)
    assert isinstance(decoded.data, list)
    assert [math.copysign(1, v) if v == 0 else v for v in decoded.data if isinstance(v, float)] == [
        -1.0,
        5e-324,
        1.7976931348623157e308,
    ]


def test_decode_ignores_trailing_fields_when_newer_node_sent_them() -> None:
    """A newer node may append fields; this node reads the ones it knows."""
    data = msgpack.packb([PUBLICATION, {"a": 1}, 7, 99, None, None, "future", 42])
    assert decode_message(data) == Publication(data={"a": 1}, offset=7, time_ms=99)
    join = msgpack.packb([JOIN, ["u", "c", None, None, "extra"], "future"])
    assert decode_message(join) == Join(ClientInfo(user="u", client="c"))
    control = msgpack.packb([DISCONNECT_USER, "n", "u", 3000, "bye", "", "", [], "future"])
    assert decode_control(control) == DisconnectUser(user="u", code=3000, reason="bye", origin="n")


def test_decode_fills_defaults_when_older_node_sent_fewer_fields() -> None:
    """An older node's disconnect and unsubscribe envelopes lack the newer fields: defaults apply."""
    control = msgpack.packb([DISCONNECT_USER, "n", "u", 3000, "bye"])
    assert decode_control(control) == DisconnectUser(user="u", code=3000, reason="bye", origin="n")
    control = msgpack.packb([UNSUBSCRIBE_USER, "n", "u", "chat:x"])
    assert decode_control(control) == UnsubscribeUser(user="u", channel="chat:x", origin="n")


@pytest.mark.parametrize(
    "envelope",
    [
        b"",
        b"\xc1",
        msgpack.packb({"kind": 0}),
        msgpack.packb([]),
        msgpack.packb([99, 1, 2, 3]),
        msgpack.packb([PUBLICATION, 1, 2]),
        msgpack.packb([PUBLICATION, 1, "not an offset", 0, None, None]),
        msgpack.packb([PUBLICATION, 1, 1, 0, ["u"], None]),
        msgpack.packb([PUBLICATION, 1, 1, 0, None, {"k": 1}]),
        msgpack.packb([JOIN, [1, "c", None, None]]),
        msgpack.packb([PUBLICATION, msgpack.ExtType(42, b"?"), 1, 0, None, None]),
        msgpack.packb([PUBLICATION, {1: "int key"}, 1, 0, None, None]),
    ],
)
def test_decode_message_raises_envelope_error_when_malformed(envelope: bytes) -> None:
    """Bytes that are not a channel envelope this node knows raise EnvelopeError, nothing else."""
    with pytest.raises(EnvelopeError):
        decode_message(envelope)


@pytest.mark.parametrize(
    "envelope",
    [
        msgpack.packb([PUBLICATION, 1, 1, 0, None, None]),
        msgpack.packb([DISCONNECT_USER, "n", "u", "3000", "bye"]),
        msgpack.packb([DISCONNECT_USER, "n", "u"]),
        msgpack.packb([DISCONNECT_USER, "n", "u", 3000, "bye", "", "", "not a list"]),
        msgpack.packb([SUBSCRIBE_USER, "n", "u"]),
        msgpack.packb([SUBSCRIBE_USER, "n", "u", "c", "", "", None, None, [1], {}]),
        msgpack.packb([SUBSCRIBE_USER, "n", "u", "c", "", "", None, None, None, {"presence": 1}]),
        msgpack.packb([REFRESH_USER, "n", "u", "", "", False, "soon"]),
        msgpack.packb([SURVEY, "n", 7, "info", None]),
        msgpack.packb([NODE_ALIVE]),
        msgpack.packb(["kind"]),
    ],
)
def test_decode_control_raises_envelope_error_when_not_a_control_message(envelope: Any) -> None:
    """A channel envelope, a wrong field type or missing fields are not control messages."""
    with pytest.raises(EnvelopeError):
        decode_control(envelope)


def test_publication_carries_its_stream_epoch_between_nodes() -> None:
    """A publication's epoch travels in its envelope; one from an older node has none."""
    decoded = decode_message(encode_message(Publication(data=1, offset=5, epoch="e1")))
    assert isinstance(decoded, Publication)
    assert decoded.epoch == "e1"
    older = decode_message(msgpack.packb([PUBLICATION, 1, 5, 0, None, None]))
    assert isinstance(older, Publication)
    assert older.epoch == ""
