"""The token verifier interface and the claims it yields (PROTOCOL.md §9)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wirehub.types import JSON


@dataclass(frozen=True, slots=True)
class ServerSubscription:
    """A subscription the server makes at connect, from the token's ``channels`` or ``subs``."""

    channel: str
    info: JSON = None
    data: JSON = None


@dataclass(frozen=True, slots=True)
class ConnectionClaims:
    user: str
    expire_at: int | None = None
    """Unix seconds after which the connection must be refreshed; None never expires."""
    info: JSON = None
    meta: JSON = None
    subs: tuple[ServerSubscription, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionClaims:
    user: str
    channel: str
    client: str = ""
    expire_at: int | None = None
    info: JSON = None
    data: JSON = None
    override: Mapping[str, bool] = field(default_factory=dict)


class TokenVerifier(Protocol):
    """Checks signed tokens. Raises ``TokenExpired`` when expired, ``TokenError`` otherwise."""

    def verify_connection(self, token: str) -> ConnectionClaims: ...

    def verify_subscription(self, token: str) -> SubscriptionClaims: ...
