"""Core value types shared by every layer: publications, positions, client info.

All are frozen slotted dataclasses. ``JSON`` is the only loose type in public signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
"""Any JSON value: what clients publish and what handlers return."""

WireDict: TypeAlias = dict[str, JSON]


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Publication:
    """A publication as clients receive it. ``offset`` is 0 in channels without history."""

    data: JSON
    offset: int = 0
    info: ClientInfo | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    time_ms: int = 0

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


@dataclass(frozen=True, slots=True)
class Join:
    info: ClientInfo


@dataclass(frozen=True, slots=True)
class Leave:
    info: ClientInfo


BrokerMessage: TypeAlias = Publication | Join | Leave


@dataclass(frozen=True, slots=True)
class DisconnectUser:
    """Node-level control: close every connection of ``user`` with this close code and reason."""

    user: str
    code: int
    reason: str
    origin: str = ""
    """The node that sent it: it has already acted on its own clients."""


@dataclass(frozen=True, slots=True)
class UnsubscribeUser:
    """Node-level control: unsubscribe every connection of ``user`` from ``channel``."""

    user: str
    channel: str
    origin: str = ""
    """The node that sent it: it has already acted on its own clients."""


ControlMessage: TypeAlias = DisconnectUser | UnsubscribeUser
"""What nodes tell each other about clients, beside the channels' own messages."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    publications: Sequence[Publication]
    position: StreamPosition


@dataclass(frozen=True, slots=True)
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
