"""Core value types shared by every layer: publications, positions, client info.

All are immutable slotted dataclasses: frozen ones, or ``immutable`` ones (the types made once
per message). ``JSON`` is the only loose type in public signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar, dataclass_transform

__all__ = [
    "JSON",
    "Appended",
    "BrokerMessage",
    "ClientInfo",
    "ControlMessage",
    "DisconnectUser",
    "HistoryLimits",
    "HistoryPage",
    "Join",
    "Leave",
    "NewPublication",
    "NodeAlive",
    "NodeGone",
    "PresenceStats",
    "Publication",
    "PublishOptions",
    "RefreshUser",
    "StreamPosition",
    "SubscribeUser",
    "Survey",
    "SurveyReply",
    "UnsubscribeUser",
    "User",
    "WireDict",
    "immutable",
]

JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
"""Any JSON value: what clients publish and what handlers return."""

WireDict: TypeAlias = dict[str, JSON]

_Class = TypeVar("_Class")


@dataclass_transform(frozen_default=True)
def immutable(cls: type[_Class]) -> type[_Class]:
    """A slotted dataclass that is frozen for type checkers (mypy refuses any assignment to a field)
    and hashable like a frozen one, but whose ``__init__`` assigns its fields directly.

    For the types made once or more per message: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` for every field, which makes it about three times as costly.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


@immutable
class ClientInfo:
    """Who a connection is, as other clients see it (presence, join/leave, publications)."""

    user: str
    client: str
    conn_info: JSON = None
    chan_info: JSON = None

    def to_wire(self) -> WireDict:
        wire: WireDict = {"user": self.user, "client": self.client}
        if self.conn_info is not None:
            wire["conn_info"] = self.conn_info
        if self.chan_info is not None:
            wire["chan_info"] = self.chan_info
        return wire


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in a channel's stream: the offset only means something with its epoch."""

    offset: int
    epoch: str


@immutable
class NewPublication:
    """A publication before the store has given it an offset.

    ``idempotency_key``: a retried append of a publication with the same non-empty key to the same
    channel, within the store's idempotency window, returns the original publication instead of
    storing a duplicate.
    """

    data: JSON
    info: ClientInfo | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    time_ms: int = 0
    idempotency_key: str = ""


@immutable
class PublishOptions:
    """What a server API publication asks for beyond its data (``Server.publish``'s keywords).

    ``tags`` travel with it to subscribers; a retry with the same non-empty ``idempotency_key``
    within the store's window returns the original publication; ``skip_history`` fans it out
    without storing it.
    """

    tags: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str = ""
    skip_history: bool = False


@immutable
class Publication:
    """A publication as clients receive it. ``offset`` is 0 in channels without history.

    ``epoch`` is the stream's, on publications that travel between nodes (so that a node learns
    when a stream was created, or lost and created anew); clients never see it.
    """

    data: JSON
    offset: int = 0
    info: ClientInfo | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    time_ms: int = 0
    epoch: str = field(default="", compare=False)

    def to_wire(self) -> WireDict:
        wire: WireDict = {"data": self.data}
        if self.info is not None:
            wire["info"] = self.info.to_wire()
        if self.offset:
            wire["offset"] = self.offset
        if self.tags:
            wire["tags"] = dict(self.tags)
        if self.time_ms:
            wire["time"] = self.time_ms
        return wire


@immutable
class Join:
    info: ClientInfo


@immutable
class Leave:
    info: ClientInfo


BrokerMessage: TypeAlias = Publication | Join | Leave


# Node-level control about connections. ``origin`` is the node that sent the message; the server
# API's requests (protocol/server_api.py) parse into these with it left empty, for the node that
# sends them to fill in.


@dataclass(frozen=True, slots=True)
class DisconnectUser:
    """Node-level control: close connections of ``user`` with this close code and reason.

    ``client`` or ``session`` narrow it to one connection; connections in ``keep`` stay open.
    """

    user: str
    code: int
    reason: str
    origin: str = ""
    """The node that sent it: it has already acted on its own clients."""
    client: str = ""
    session: str = ""
    keep: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class UnsubscribeUser:
    """Node-level control: unsubscribe connections of ``user`` (or one of them) from ``channel``."""

    user: str
    channel: str
    origin: str = ""
    """The node that sent it: it has already acted on its own clients."""
    client: str = ""
    session: str = ""


@dataclass(frozen=True, slots=True)
class SubscribeUser:
    """Node-level control: subscribe connections of ``user`` (or one of them) to ``channel``.

    The subscription is server-side: the client learns of it from a ``subscribe`` push.
    ``info`` becomes the subscriber's channel info, ``data`` travels in the push, and
    ``recover_since`` asks for the publications after that position first.
    """

    user: str
    channel: str
    origin: str = ""
    client: str = ""
    session: str = ""
    info: JSON = None
    data: JSON = None
    recover_since: StreamPosition | None = None
    override: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefreshUser:
    """Node-level control: set the expiry of connections of ``user``, or expire them now.

    ``expire_at`` is a Unix time in seconds; None means the connections no longer expire.
    """

    user: str
    origin: str = ""
    client: str = ""
    session: str = ""
    expired: bool = False
    expire_at: int | None = None


@dataclass(frozen=True, slots=True)
class NodeAlive:
    """A node announces itself (at start and then periodically); ``hello`` asks others to answer."""

    origin: str
    hello: bool = False


@dataclass(frozen=True, slots=True)
class NodeGone:
    """A node that shuts down says so, so that the others stop waiting for it."""

    origin: str


@dataclass(frozen=True, slots=True)
class Survey:
    """A question to every node (``op`` with ``args``); each answers with a ``SurveyReply``."""

    origin: str
    id: str
    op: str
    args: JSON = None


@dataclass(frozen=True, slots=True)
class SurveyReply:
    """One node's answer to the survey ``id`` sent by node ``to``."""

    origin: str
    id: str
    to: str
    payload: JSON = None


ControlMessage: TypeAlias = (
    DisconnectUser
    | UnsubscribeUser
    | SubscribeUser
    | RefreshUser
    | NodeAlive
    | NodeGone
    | Survey
    | SurveyReply
)
"""What nodes tell each other about clients and about themselves, beside the channels' messages."""


@dataclass(frozen=True, slots=True)
class Appended:
    """What one append stored: the publications with their offsets, and the stream's epoch."""

    publications: list[Publication]
    epoch: str


@dataclass(frozen=True, slots=True)
class HistoryPage:
    publications: Sequence[Publication]
    position: StreamPosition


@immutable
class HistoryLimits:
    """Retention of one channel's stream: at most ``size`` publications, none older than ``ttl_s``."""

    size: int
    ttl_s: float


@dataclass(frozen=True, slots=True)
class PresenceStats:
    num_clients: int
    num_users: int


@dataclass(frozen=True, slots=True)
class User:
    """The authenticated identity behind a connection. ``id == ""`` means anonymous."""

    id: str
    info: JSON = None
    meta: JSON = None

    @property
    def anonymous(self) -> bool:
        return self.id == ""
