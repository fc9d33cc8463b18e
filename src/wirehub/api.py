"""The server API: what backends and app code do to channels and connections.

One implementation serves three callers: handlers (``ctx.server``), the app's lifespan hooks and
background tasks (``App`` hands them the ``Server``), and the HTTP API (``POST /api/<method>``,
shaped like Centrifugo's, in ``server/http_api.py``). Every operation acts across all replicas:
publications go through the store and the broker exactly as client publications do (history,
offsets, recovery, ordered delivery), and operations on connections reach every replica as
node-level control messages.

The backend is trusted: no channel handler is consulted and no permission applies. Failures
are the protocol's request errors (``UnknownChannel`` 102, ``NotAvailable`` 108, ``Invalid``
107, ``InternalError`` 100 when the store or broker is away...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wirehub.errors import (
    APP_CLOSE_CODES,
    DisconnectForce,
    Invalid,
    NotAvailable,
    RequestError,
    disconnect_for_code,
)
from wirehub.protocol.frames import HistoryRequest
from wirehub.types import (
    JSON,
    ClientInfo,
    DisconnectUser,
    HistoryPage,
    PresenceStats,
    PublishOptions,
    RefreshUser,
    StreamPosition,
    SubscribeUser,
    UnsubscribeUser,
    WireDict,
)

if TYPE_CHECKING:
    from wirehub.server.node import Node

__all__ = ["NodeStats", "PublishResult", "Server"]

OVERRIDABLE = frozenset(
    {"presence", "join_leave", "force_push_join_leave", "force_positioning", "force_recovery"}
)
"""Channel options a server-side subscription may override for its subscriber."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Where a publication went: its offset and the stream's epoch (0 and "" without history)."""

    offset: int = 0
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class NodeStats:
    """One replica, as ``info`` reports it."""

    uid: str
    name: str
    version: str
    num_clients: int
    num_users: int
    num_subs: int
    num_channels: int
    uptime_s: int
    pid: int
    rss_bytes: int

    def to_wire(self) -> WireDict:
        """As a replica answers the ``info`` survey, and as the HTTP server API lists it."""
        return {
            "uid": self.uid,
            "name": self.name,
            "version": self.version,
            "num_clients": self.num_clients,
            "num_users": self.num_users,
            "num_subs": self.num_subs,
            "num_channels": self.num_channels,
            "uptime": self.uptime_s,
            "process": {"rss": self.rss_bytes, "pid": self.pid},
        }


class Server:
    """The server API of one node; every replica's ``Server`` reaches all of them."""

    def __init__(self, node: Node) -> None:
        self._node = node

    # ------------------------------------------------------------------ publications

    async def publish(
        self,
        channel: str,
        data: JSON,
        *,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        skip_history: bool = False,
    ) -> PublishResult:
        """Publish ``data`` to ``channel``; returns once the store has it (channels with history).

        A retry with the same ``idempotency_key`` within the store's window
        (``store.idempotency_window_s``) returns the original publication's place instead of
        publishing again. ``skip_history`` delivers without storing.
        """
        return await self._publish(channel, data, PublishOptions(tags or {}, idempotency_key, skip_history))

    async def broadcast(
        self,
        channels: Sequence[str],
        data: JSON,
        *,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        skip_history: bool = False,
    ) -> list[PublishResult | RequestError]:
        """Publish ``data`` to every channel at once; one result (or error) per channel, in order."""
        publish_options = PublishOptions(tags or {}, idempotency_key, skip_history)

        async def one(channel: str) -> PublishResult | RequestError:
            try:
                return await self._publish(channel, data, publish_options)
            except RequestError as exc:
                return exc

        return list(await asyncio.gather(*(one(channel) for channel in channels)))

    async def _publish(self, channel: str, data: JSON, publish_options: PublishOptions) -> PublishResult:
        _, options = self._node.resolve(channel)
        pub, epoch = await self._node.publish(channel, data, options=options, publish_options=publish_options)
        self._node.metrics.api_publications += 1
        return PublishResult(pub.offset, epoch)

    async def history(
        self,
        channel: str,
        *,
        limit: int = 0,
        since: StreamPosition | None = None,
        reverse: bool = False,
    ) -> HistoryPage:
        """Publications of ``channel``: ``limit`` 0 gives only the position, -1 all there are.

        With ``since``, those after (before, with ``reverse``) its offset; ``UnrecoverablePosition``
        (112) if its epoch is not the stream's.
        """
        _, options = self._node.resolve(channel)
        if not options.history_enabled:
            raise NotAvailable("channel has no history")
        return await self._node.history(HistoryRequest(channel, limit, since, reverse))

    async def history_remove(self, channel: str) -> None:
        """Drop the channel's publications; offsets and epoch go on, so positions stay valid."""
        _, options = self._node.resolve(channel)
        if not options.history_enabled:
            raise NotAvailable("channel has no history")
        await self._node.store.remove_history(channel)

    # ------------------------------------------------------------------ presence and channels

    async def presence(self, channel: str) -> Mapping[str, ClientInfo]:
        """Who is subscribed to ``channel`` on any replica, by client id."""
        self._presence_options(channel)
        return await self._node.presence(channel)

    async def presence_stats(self, channel: str) -> PresenceStats:
        self._presence_options(channel)
        return await self._node.presence_stats(channel)

    def _presence_options(self, channel: str) -> None:
        _, options = self._node.resolve(channel)
        if not options.presence:
            raise NotAvailable("channel has no presence")

    async def channels(self, pattern: str = "") -> dict[str, int]:
        """Channels with at least one subscriber on any replica, with subscriber counts.

        ``pattern`` filters by a glob (``chat:*``; ``*``, ``?`` and ``[...]``), case-sensitively.
        """
        answers = await self._node.replicas.survey("channels", {"pattern": pattern})
        totals: dict[str, int] = {}
        for answer in answers.values():
            if isinstance(answer, dict):
                for channel, count in answer.items():
                    if isinstance(count, int):
                        totals[channel] = totals.get(channel, 0) + count
        return totals

    async def info(self) -> list[NodeStats]:
        """Every replica that answered, this one first."""
        answers = await self._node.replicas.survey("info")
        nodes = [node for node in map(_node_stats, answers.values()) if node is not None]
        nodes.sort(key=lambda node: (node.uid != self._node.id, node.name, node.uid))
        return nodes

    # ------------------------------------------------------------------ connections

    async def subscribe(
        self,
        user: str,
        channel: str,
        *,
        client: str = "",
        session: str = "",
        info: JSON = None,
        data: JSON = None,
        recover_since: StreamPosition | None = None,
        override: Mapping[str, bool] | None = None,
    ) -> None:
        """Subscribe the user's connections (or one of them) to ``channel``, on every replica.

        Each connection gets a server-side subscription and a ``subscribe`` push carrying
        ``data``; ``info`` is its channel info in presence and join/leave. With
        ``recover_since``, the publications after that position come first. ``override`` turns
        channel options on or off for these subscribers (``presence``, ``join_leave``,
        ``force_push_join_leave``, ``force_positioning``, ``force_recovery``). Returns once
        every replica has been told, not once the subscriptions are live.
        """
        self._check_user(user)
        self._node.resolve(channel)
        unknown = set(override or {}) - OVERRIDABLE
        if unknown:
            raise Invalid(f"override: unknown option {sorted(unknown)[0]!r}")
        await self._node.control(
            SubscribeUser(
                user,
                channel,
                self._node.id,
                client=client,
                session=session,
                info=info,
                data=data,
                recover_since=recover_since,
                override=dict(override or {}),
            )
        )

    async def unsubscribe(self, user: str, channel: str, *, client: str = "", session: str = "") -> None:
        """Unsubscribe the user's connections (or one of them) from ``channel`` (push 2000)."""
        self._check_user(user)
        self._node.resolve(channel)
        await self._node.control(
            UnsubscribeUser(user, channel, self._node.id, client=client, session=session)
        )

    async def disconnect(
        self,
        user: str,
        *,
        client: str = "",
        session: str = "",
        keep: Iterable[str] = (),
        code: int | None = None,
        reason: str = "",
    ) -> None:
        """Close the user's connections (or one of them) with ``code`` and ``reason``.

        Connections whose client id is in ``keep`` stay open. ``code`` is one of wirehub's
        close codes or the application's own (4000-4499: the SDK reconnects; 4500-4999: it
        does not); the default, 3503, tells the SDK not to reconnect.
        """
        self._check_user(user)
        if code is None:
            code = DisconnectForce.close.code
        if not 3001 <= code <= APP_CLOSE_CODES[1]:
            raise Invalid(f"disconnect code must be between 3001 and {APP_CLOSE_CODES[1]}")
        reason = disconnect_for_code(code, reason).reason
        await self._node.control(
            DisconnectUser(
                user, code, reason, self._node.id, client=client, session=session, keep=frozenset(keep)
            )
        )

    async def refresh(
        self,
        user: str,
        *,
        client: str = "",
        session: str = "",
        expired: bool = False,
        expire_at: int | None = None,
    ) -> None:
        """Set when the user's connections expire (Unix seconds; None: never), or expire them now.

        An expired connection is closed with 3005; the SDK reconnects with a fresh token.
        """
        self._check_user(user)
        await self._node.control(
            RefreshUser(
                user, self._node.id, client=client, session=session, expired=expired, expire_at=expire_at
            )
        )

    @staticmethod
    def _check_user(user: str) -> None:
        if not user:
            raise Invalid("user required")


def _node_stats(answer: JSON) -> NodeStats | None:
    """A survey answer (``NodeStats.to_wire``) read back, or None if it is not one (another version)."""
    if not isinstance(answer, dict):
        return None
    process = answer.get("process")
    process = process if isinstance(process, dict) else {}

    def number(source: Mapping[str, JSON], key: str) -> int:
        value = source.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def text(key: str) -> str:
        value = answer.get(key)
        return value if isinstance(value, str) else ""

    if not text("uid"):
        return None
    return NodeStats(
        uid=text("uid"),
        name=text("name"),
        version=text("version"),
        num_clients=number(answer, "num_clients"),
        num_users=number(answer, "num_users"),
        num_subs=number(answer, "num_subs"),
        num_channels=number(answer, "num_channels"),
        uptime_s=number(answer, "uptime"),
        pid=number(process, "pid"),
        rss_bytes=number(process, "rss"),
    )
