"""Unit tests for ``wirehub.errors``: request error codes and close codes."""

from __future__ import annotations

import pytest

from wirehub import errors
from wirehub.errors import (
    AlreadySubscribed,
    Disconnect,
    DisconnectBadRequest,
    DisconnectChannelLimit,
    DisconnectConnectionLimit,
    DisconnectExpired,
    DisconnectForce,
    DisconnectForceReconnect,
    DisconnectInsufficientState,
    DisconnectInvalidToken,
    DisconnectNoPong,
    DisconnectNotAvailable,
    DisconnectPermissionDenied,
    DisconnectServerError,
    DisconnectShutdown,
    DisconnectSlow,
    DisconnectStale,
    DisconnectSubExpired,
    DisconnectTooManyErrors,
    DisconnectTooManyRequests,
    DisconnectWriteError,
    ErrorReply,
    Expired,
    Forbidden,
    InternalError,
    Invalid,
    KeysUnavailable,
    LimitExceeded,
    MethodNotFound,
    NotAvailable,
    NotFound,
    RateLimited,
    RequestError,
    StoreUnavailable,
    TokenExpired,
    Unauthorized,
    UnknownChannel,
    UnrecoverablePosition,
    WirehubError,
    error_reply,
)

CLOSE_REASON_MAX_BYTES = 123

REQUEST_ERRORS: list[tuple[type[RequestError], int, str, bool]] = [
    (InternalError, 100, "internal server error", True),
    (Unauthorized, 101, "unauthorized", False),
    (UnknownChannel, 102, "unknown channel", False),
    (Forbidden, 103, "permission denied", False),
    (MethodNotFound, 104, "method not found", False),
    (AlreadySubscribed, 105, "already subscribed", False),
    (LimitExceeded, 106, "limit exceeded", False),
    (Invalid, 107, "bad request", False),
    (NotAvailable, 108, "not available", False),
    (TokenExpired, 109, "token expired", False),
    (Expired, 110, "expired", False),
    (RateLimited, 111, "too many requests", True),
    (UnrecoverablePosition, 112, "unrecoverable position", False),
    (StoreUnavailable, 100, "internal server error", True),
    (KeysUnavailable, 100, "internal server error", True),
]

DISCONNECTS: list[tuple[type[Disconnect], int, str, bool]] = [
    (Disconnect, 3000, "connection closed", True),
    (DisconnectShutdown, 3001, "shutdown", True),
    (DisconnectServerError, 3004, "internal server error", True),
    (DisconnectExpired, 3005, "connection expired", True),
    (DisconnectSubExpired, 3006, "subscription expired", True),
    (DisconnectSlow, 3008, "slow", True),
    (DisconnectWriteError, 3009, "write error", True),
    (DisconnectInsufficientState, 3010, "insufficient state", True),
    (DisconnectForceReconnect, 3011, "force reconnect", True),
    (DisconnectNoPong, 3012, "no pong", True),
    (DisconnectTooManyRequests, 3013, "too many requests", True),
    (DisconnectInvalidToken, 3500, "invalid token", False),
    (DisconnectBadRequest, 3501, "bad request", False),
    (DisconnectStale, 3502, "stale", False),
    (DisconnectForce, 3503, "force disconnect", False),
    (DisconnectConnectionLimit, 3504, "connection limit", False),
    (DisconnectChannelLimit, 3505, "channel limit", False),
    (DisconnectPermissionDenied, 3507, "permission denied", False),
    (DisconnectNotAvailable, 3508, "not available", False),
    (DisconnectTooManyErrors, 3509, "too many errors", False),
]


# --------------------------------------------------------------------------- request errors


@pytest.mark.parametrize(("cls", "code", "message", "temporary"), REQUEST_ERRORS)
def test_error_reply_maps_request_error_to_protocol_code(
    cls: type[RequestError], code: int, message: str, temporary: bool
) -> None:
    """Each request error has the code, message and temporary flag of docs/protocol.md, "Error codes"."""
    reply = error_reply(cls())

    assert reply == ErrorReply(code=code, message=message, temporary=temporary)


@pytest.mark.parametrize(("cls", "code", "message", "temporary"), REQUEST_ERRORS)
def test_error_reply_keeps_custom_message_when_given(
    cls: type[RequestError], code: int, message: str, temporary: bool
) -> None:
    """A message passed to a request error reaches the client unchanged."""
    reply = error_reply(cls("channel is read-only"))

    assert reply.code == code
    assert reply.message == "channel is read-only"
    assert reply.temporary is temporary


def test_error_reply_marks_only_100_and_111_temporary() -> None:
    """Of the codes 100..112 only internal errors and rate limiting are temporary."""
    temporary = {error_reply(cls()).code for cls, *_ in REQUEST_ERRORS if error_reply(cls()).temporary}

    assert temporary == {100, 111}


def test_request_error_subclasses_cover_codes_100_to_112() -> None:
    """Every error code from 100 to 112 has a request error class."""
    codes = {cls.code for cls, *_ in REQUEST_ERRORS}

    assert codes == set(range(100, 113))


def test_request_error_uses_default_message_when_message_empty() -> None:
    """An empty message falls back to the class's default message."""
    assert Forbidden("").message == "permission denied"
    assert str(Forbidden()) == "permission denied"


def test_store_unavailable_is_internal_error() -> None:
    """StoreUnavailable is an InternalError so it maps to 100 temporary."""
    assert issubclass(StoreUnavailable, InternalError)


def test_broker_unavailable_is_temporary_internal_error() -> None:
    """BrokerUnavailable maps to 100, marked temporary, so SDKs and apps may retry."""
    assert issubclass(errors.BrokerUnavailable, InternalError)
    reply = error_reply(errors.BrokerUnavailable("broker unavailable"))
    assert reply == ErrorReply(100, "broker unavailable", True)


@pytest.mark.parametrize(
    "cls", [Disconnect, DisconnectForce, DisconnectInsufficientState, DisconnectShutdown, DisconnectSlow]
)
def test_disconnect_for_code_rebuilds_disconnect_when_code_known(cls: type[Disconnect]) -> None:
    """A close code that travelled between nodes becomes its class again, with the reason given."""
    rebuilt = errors.disconnect_for_code(cls.close.code, "why")
    assert type(rebuilt) is cls
    assert (rebuilt.code, rebuilt.reason) == (cls.close.code, "why")


def test_disconnect_for_code_keeps_reconnect_meaning_when_code_unknown() -> None:
    """An unknown code from a newer node: final from 3500 on (3503), reconnecting below it (3000)."""
    assert errors.disconnect_for_code(3999, "x").code == DisconnectForce.close.code
    assert errors.disconnect_for_code(5000, "x").code == DisconnectForce.close.code
    assert errors.disconnect_for_code(3499, "x").code == Disconnect.close.code
    assert errors.disconnect_for_code(3499, "x").close.reconnect


@pytest.mark.parametrize("code", [4000, 4321, 4999])
def test_disconnect_for_code_keeps_application_codes(code: int) -> None:
    """Codes 4000-4999 are the application's own: they travel unchanged, with their reason."""
    rebuilt = errors.disconnect_for_code(code, "kicked")
    assert isinstance(rebuilt, errors.DisconnectCustom)
    assert (rebuilt.code, rebuilt.reason) == (code, "kicked")


@pytest.mark.parametrize("code", [3999, 5000])
def test_custom_disconnect_refuses_codes_outside_the_application_range(code: int) -> None:
    """A DisconnectCustom is only made with an application code."""
    with pytest.raises(ValueError, match="4000"):
        errors.DisconnectCustom(code)


def test_not_found_is_alias_of_method_not_found() -> None:
    """``NotFound`` is the same class as ``MethodNotFound`` (104)."""
    assert NotFound is MethodNotFound
    assert error_reply(NotFound("no such method")).code == 104


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("database password is hunter2"),
        KeyError("hunter2"),
        ValueError("hunter2"),
        errors.ConfigError(["auth.token_hmac_secret: hunter2"]),
        errors.TokenError("hunter2"),
    ],
)
def test_error_reply_maps_arbitrary_exception_to_temporary_internal_error(exc: BaseException) -> None:
    """Anything that is not a RequestError becomes 100 temporary without its message."""
    reply = error_reply(exc)

    assert reply == ErrorReply(code=100, message="internal server error", temporary=True)
    assert "hunter2" not in reply.message


def test_error_reply_maps_disconnect_to_internal_error() -> None:
    """A Disconnect is not a request error, so error_reply treats it as internal."""
    assert error_reply(DisconnectSlow()).code == 100


def test_request_error_is_wirehub_error() -> None:
    """Request errors and disconnects share the WirehubError base class."""
    assert issubclass(RequestError, WirehubError)
    assert issubclass(Disconnect, WirehubError)


# --------------------------------------------------------------------------- disconnects


@pytest.mark.parametrize(("cls", "code", "reason", "reconnect"), DISCONNECTS)
def test_disconnect_carries_close_code_of_protocol(
    cls: type[Disconnect], code: int, reason: str, reconnect: bool
) -> None:
    """Each Disconnect has the close code, reason and reconnect advice of docs/protocol.md, "Close codes"."""
    exc = cls()

    assert exc.code == code
    assert exc.close.code == code
    assert exc.close.reason == reason
    assert exc.close.reconnect is reconnect
    assert exc.reason == reason
    assert str(exc) == reason


@pytest.mark.parametrize(("cls", "code", "reason", "reconnect"), DISCONNECTS)
def test_disconnect_reconnect_flag_follows_client_rule(
    cls: type[Disconnect], code: int, reason: str, reconnect: bool
) -> None:
    """Codes 3500..3999 are terminal and every other code advises a reconnect."""
    assert cls.close.reconnect is not (3500 <= cls.close.code < 4000)


def test_disconnect_keeps_custom_reason_when_short() -> None:
    """A short custom reason is used as is and the code stays the class's."""
    exc = DisconnectForce("kicked by admin")

    assert exc.reason == "kicked by admin"
    assert exc.code == 3503


def test_disconnect_truncates_reason_when_longer_than_close_frame_allows() -> None:
    """A reason longer than 123 bytes is cut to fit the close frame."""
    long_reason = "x" * 500

    reason = DisconnectForce(long_reason).reason

    assert len(reason.encode()) <= CLOSE_REASON_MAX_BYTES
    assert long_reason.startswith(reason)
    assert reason


def test_disconnect_truncates_reason_on_character_boundary_when_multibyte() -> None:
    """Truncation never splits a multi-byte UTF-8 character."""
    long_reason = "é€😀" * 40

    reason = DisconnectBadRequest(long_reason).reason

    assert len(reason.encode()) <= CLOSE_REASON_MAX_BYTES
    assert long_reason.startswith(reason)
    assert reason.encode().decode() == reason


def test_disconnect_keeps_reason_when_exactly_fitting() -> None:
    """A reason of 120 ASCII bytes is kept whole."""
    reason = "r" * 120

    assert DisconnectForce(reason).reason == reason


def test_unsubscribe_codes_follow_resubscribe_rule() -> None:
    """Unsubscribe codes below 2500 are final, from 2500 the client resubscribes."""
    assert errors.UNSUBSCRIBE_SERVER == (2000, "server unsubscribe")
    assert errors.UNSUBSCRIBE_INSUFFICIENT_STATE == (2500, "insufficient state")
    assert errors.UNSUBSCRIBE_EXPIRED == (2501, "subscription expired")
