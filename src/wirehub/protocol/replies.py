"""The results of client commands and the bodies of pushes, as the protocol puts them on the wire.

Builders of ``WireDict`` values from typed arguments: which fields appear, and when they are left
out (an offset of 0, a missing ``data``), is decided here and only here. Pure code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wirehub.protocol.codec import encode
from wirehub.types import JSON, ClientInfo, HistoryPage, PresenceStats, Publication, StreamPosition, WireDict

__all__ = [
    "connect_result",
    "history_result",
    "presence_result",
    "presence_stats_result",
    "publications_within",
    "refresh_result",
    "rpc_result",
    "sub_refresh_result",
    "subscribe_push",
    "subscribe_result",
    "unsubscribe_push",
]

SUBSCRIBE_PUSH_FIELDS = ("recoverable", "positioned", "epoch", "offset", "data")
"""What a ``subscribe`` push carries of a subscribe result."""


def publications_within(publications: Sequence[Publication], budget_bytes: int) -> int:
    """How many of ``publications``, from the first, fit in a reply of ``budget_bytes`` (at least one)."""
    size = 0
    for count, pub in enumerate(publications):
        size += len(encode(pub.to_wire())) + 1
        if size > budget_bytes and count:
            return count
    return len(publications)


def connect_result(
    client: str, version: str, *, ttl: int, data: JSON | None, ping_interval_s: int
) -> WireDict:
    result: WireDict = {"client": client, "version": version}
    if ttl:
        result.update(expires=True, ttl=ttl)
    if data is not None:
        result["data"] = data
    if ping_interval_s > 0:
        result.update(ping=ping_interval_s, pong=True)
    return result


def refresh_result(client: str, version: str, *, ttl: int) -> WireDict:
    result: WireDict = {"client": client, "version": version}
    if ttl:
        result.update(expires=True, ttl=ttl)
    return result


def sub_refresh_result(*, ttl: int) -> WireDict:
    return {"expires": True, "ttl": ttl} if ttl else {}


def subscribe_result(
    *,
    ttl: int,
    recoverable: bool,
    positioned: bool,
    position: StreamPosition | None,
    was_recovering: bool,
    recovered: bool,
    publications: Sequence[Publication],
    data: JSON | None,
) -> WireDict:
    result: WireDict = {}
    if ttl:
        result.update(expires=True, ttl=ttl)
    if recoverable:
        result["recoverable"] = True
    if positioned:
        result["positioned"] = True
    if position is not None and (positioned or recoverable):
        result["epoch"] = position.epoch
        if position.offset:
            result["offset"] = position.offset
    if was_recovering:
        result["was_recovering"] = True
        if recovered:
            result["recovered"] = True
        if publications:
            result["publications"] = [pub.to_wire() for pub in publications]
    if data is not None:
        result["data"] = data
    return result


def subscribe_push(result: WireDict) -> WireDict:
    """The ``subscribe`` push that tells a client of a server-side subscription made at runtime."""
    return {key: result[key] for key in SUBSCRIBE_PUSH_FIELDS if key in result}


def unsubscribe_push(code: int, reason: str) -> WireDict:
    return {"code": code, "reason": reason}


def history_result(page: HistoryPage) -> WireDict:
    result: WireDict = {"epoch": page.position.epoch}
    if page.position.offset:
        result["offset"] = page.position.offset
    if page.publications:
        result["publications"] = [pub.to_wire() for pub in page.publications]
    return result


def presence_result(members: Mapping[str, ClientInfo]) -> WireDict:
    return {"presence": {client: info.to_wire() for client, info in members.items()}}


def presence_stats_result(stats: PresenceStats) -> WireDict:
    return {"num_clients": stats.num_clients, "num_users": stats.num_users}


def rpc_result(data: JSON | None) -> WireDict:
    return {} if data is None else {"data": data}
