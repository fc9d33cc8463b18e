"""The exception hierarchy and the one table that maps exceptions to protocol codes.

Two kinds of failure reach a client:

* a *request error* fails one command: the reply carries ``{"code", "message", "temporary"}``
  (docs/protocol.md, "Error codes") and the connection lives on;
* a *disconnect* ends the connection with a WebSocket close code (docs/protocol.md, "Close codes").

Application handlers raise the request errors (``Forbidden``, ``Invalid``, ...). The server raises
``Disconnect`` subclasses. Anything else escaping a handler is an internal error (100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "APP_CLOSE_CODES",
    "UNSUBSCRIBE_EXPIRED",
    "UNSUBSCRIBE_INSUFFICIENT_STATE",
    "UNSUBSCRIBE_SERVER",
    "AlreadySubscribed",
    "BrokerUnavailable",
    "CloseCode",
    "ConfigError",
    "Disconnect",
    "DisconnectBadRequest",
    "DisconnectChannelLimit",
    "DisconnectConnectionLimit",
    "DisconnectCustom",
    "DisconnectExpired",
    "DisconnectForce",
    "DisconnectForceReconnect",
    "DisconnectInsufficientState",
    "DisconnectInvalidToken",
    "DisconnectNoPong",
    "DisconnectNotAvailable",
    "DisconnectPermissionDenied",
    "DisconnectServerError",
    "DisconnectShutdown",
    "DisconnectSlow",
    "DisconnectStale",
    "DisconnectSubExpired",
    "DisconnectTooManyErrors",
    "DisconnectTooManyRequests",
    "DisconnectWriteError",
    "ErrorReply",
    "Expired",
    "Forbidden",
    "InternalError",
    "Invalid",
    "KeysUnavailable",
    "LimitExceeded",
    "MethodNotFound",
    "NotAvailable",
    "NotFound",
    "RateLimited",
    "RequestError",
    "StartupError",
    "StoreUnavailable",
    "TokenError",
    "TokenExpired",
    "Unauthorized",
    "UnknownChannel",
    "UnrecoverablePosition",
    "UsernameTaken",
    "WirehubError",
    "disconnect_for_code",
    "error_reply",
]


class WirehubError(Exception):
    """Base class of every exception wirehub raises on purpose."""


# --------------------------------------------------------------------------- request errors


class RequestError(WirehubError):
    """Fails one command with a protocol error code; the connection stays open."""

    code: ClassVar[int] = 100
    default_message: ClassVar[str] = "internal server error"
    temporary: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def __init_subclass__(
        cls, *, code: int | None = None, default_message: str | None = None, temporary: bool | None = None
    ) -> None:
        """A subclass names its code, message and flag in its header, so the classes read as a table."""
        super().__init_subclass__()
        if code is not None:
            cls.code = code
        if default_message is not None:
            cls.default_message = default_message
        if temporary is not None:
            cls.temporary = temporary


class InternalError(RequestError, code=100, default_message="internal server error", temporary=True): ...


class Unauthorized(RequestError, code=101, default_message="unauthorized"): ...


class UnknownChannel(RequestError, code=102, default_message="unknown channel"): ...


class Forbidden(RequestError, code=103, default_message="permission denied"): ...


class MethodNotFound(RequestError, code=104, default_message="method not found"): ...


class AlreadySubscribed(RequestError, code=105, default_message="already subscribed"): ...


class LimitExceeded(RequestError, code=106, default_message="limit exceeded"): ...


class Invalid(RequestError, code=107, default_message="bad request"):
    """The request is malformed or its data fails validation (107, not worth retrying)."""


class NotAvailable(RequestError, code=108, default_message="not available"): ...


class TokenExpired(RequestError, code=109, default_message="token expired"): ...


class Expired(RequestError, code=110, default_message="expired"): ...


class RateLimited(RequestError, code=111, default_message="too many requests", temporary=True): ...


class UnrecoverablePosition(RequestError, code=112, default_message="unrecoverable position"): ...


class StoreUnavailable(InternalError):
    """The store could not be reached or failed; the client may retry (100, temporary)."""


class BrokerUnavailable(InternalError):
    """The broker (Redis) could not be reached or failed; the client may retry (100, temporary)."""


class KeysUnavailable(InternalError):
    """The token keys (a JWKS endpoint) could not be fetched; the client may retry (100, temporary).

    Not an invalid token: refusing it with 3500 would stop the SDK from ever reconnecting.
    """


class UsernameTaken(WirehubError):
    """An account with this username (compared case-insensitively) exists already."""


NotFound = MethodNotFound
"""Alias that reads better in RPC handlers: ``raise NotFound("no such method")``."""


# --------------------------------------------------------------------------- disconnects


@dataclass(frozen=True, slots=True)
class CloseCode:
    code: int
    reason: str
    reconnect: bool


class Disconnect(WirehubError):
    """Ends the connection with a WebSocket close code (docs/protocol.md, "Close codes")."""

    close: ClassVar[CloseCode] = CloseCode(3000, "connection closed", True)

    def __init__(self, reason: str | None = None) -> None:
        # The close reason travels in the close frame, which allows at most 123 bytes.
        self.reason = (reason or self.close.reason).encode()[:120].decode(errors="ignore")
        super().__init__(self.reason)

    @property
    def code(self) -> int:
        return self.close.code


class DisconnectShutdown(Disconnect):
    close = CloseCode(3001, "shutdown", True)


class DisconnectServerError(Disconnect):
    close = CloseCode(3004, "internal server error", True)


class DisconnectExpired(Disconnect):
    close = CloseCode(3005, "connection expired", True)


class DisconnectSubExpired(Disconnect):
    close = CloseCode(3006, "subscription expired", True)


class DisconnectSlow(Disconnect):
    close = CloseCode(3008, "slow", True)


class DisconnectWriteError(Disconnect):
    close = CloseCode(3009, "write error", True)


class DisconnectInsufficientState(Disconnect):
    close = CloseCode(3010, "insufficient state", True)


class DisconnectForceReconnect(Disconnect):
    close = CloseCode(3011, "force reconnect", True)


class DisconnectNoPong(Disconnect):
    close = CloseCode(3012, "no pong", True)


class DisconnectTooManyRequests(Disconnect):
    close = CloseCode(3013, "too many requests", True)


class DisconnectInvalidToken(Disconnect):
    close = CloseCode(3500, "invalid token", False)


class DisconnectBadRequest(Disconnect):
    close = CloseCode(3501, "bad request", False)


class DisconnectStale(Disconnect):
    close = CloseCode(3502, "stale", False)


class DisconnectForce(Disconnect):
    close = CloseCode(3503, "force disconnect", False)


class DisconnectConnectionLimit(Disconnect):
    close = CloseCode(3504, "connection limit", False)


class DisconnectChannelLimit(Disconnect):
    close = CloseCode(3505, "channel limit", False)


class DisconnectPermissionDenied(Disconnect):
    close = CloseCode(3507, "permission denied", False)


class DisconnectNotAvailable(Disconnect):
    close = CloseCode(3508, "not available", False)


class DisconnectTooManyErrors(Disconnect):
    close = CloseCode(3509, "too many errors", False)


class DisconnectCustom(Disconnect):
    """A close code the application chose (4000-4999, from the server API's ``disconnect``).

    SDKs reconnect after a code in 4000-4499 and stay disconnected after one in 4500-4999.
    """

    def __init__(self, code: int, reason: str | None = None) -> None:
        if not APP_CLOSE_CODES[0] <= code <= APP_CLOSE_CODES[1]:
            raise ValueError(f"application close codes lie in {APP_CLOSE_CODES[0]}..{APP_CLOSE_CODES[1]}")
        self._code = code
        super().__init__(reason or "disconnect")

    @property
    def code(self) -> int:
        return self._code


APP_CLOSE_CODES = (4000, 4999)


def disconnect_for_code(code: int, reason: str) -> Disconnect:
    """The ``Disconnect`` with this close code (one that travelled between nodes as a number).

    Codes 4000-4999 are the application's own. Any other code this node does not know (sent by
    a newer node) keeps its meaning as far as clients care: from 3500 on, the client must not
    reconnect (3503 force disconnect); below, it reconnects (3000).
    """
    if APP_CLOSE_CODES[0] <= code <= APP_CLOSE_CODES[1]:
        return DisconnectCustom(code, reason)
    cls = _DISCONNECTS.get(code)
    if cls is None:
        cls = DisconnectForce if code >= 3500 else Disconnect
    return cls(reason)


def _subclasses(cls: type[Disconnect]) -> list[type[Disconnect]]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


_DISCONNECTS: dict[int, type[Disconnect]] = {
    cls.close.code: cls for cls in _subclasses(Disconnect) if cls is not DisconnectCustom
}
_DISCONNECTS[Disconnect.close.code] = Disconnect


# Unsubscribe push codes (docs/protocol.md, "Unsubscribe codes"): below 2500 final, from 2500 the SDK
# subscribes again.
UNSUBSCRIBE_SERVER = (2000, "server unsubscribe")
UNSUBSCRIBE_INSUFFICIENT_STATE = (2500, "insufficient state")
UNSUBSCRIBE_EXPIRED = (2501, "subscription expired")


# --------------------------------------------------------------------------- the one table


@dataclass(frozen=True, slots=True)
class ErrorReply:
    code: int
    message: str
    temporary: bool = False


def error_reply(exc: BaseException) -> ErrorReply:
    """Map any exception raised while serving a command to the error a client receives.

    Request errors keep their code and message. Anything else is an internal error whose
    details stay in the server log, never on the wire.
    """
    if isinstance(exc, RequestError):
        return ErrorReply(exc.code, exc.message, exc.temporary)
    return ErrorReply(InternalError.code, InternalError.default_message, True)


class ConfigError(WirehubError):
    """The configuration is invalid; ``problems`` names each offending key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class StartupError(WirehubError):
    """The gateway cannot start; ``message`` names the thing (a port, a module, a path, a URL)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class TokenError(WirehubError):
    """A token failed verification for a reason other than expiry."""
