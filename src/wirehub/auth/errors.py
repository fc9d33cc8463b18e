"""The account endpoints' errors: each fails one ``/auth/*`` request with an HTTP status and a
stable ``code`` for the JSON error body. Beside the accounts code rather than in ``wirehub.errors``,
which holds the client protocol's codes."""

from __future__ import annotations

from typing import ClassVar

from wirehub.errors import WirehubError

__all__ = [
    "AccountDisabled",
    "AccountError",
    "AccountsUnavailable",
    "BadRequest",
    "BearerTokenExpired",
    "BodyTimeout",
    "BodyTooLarge",
    "InvalidBearerToken",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "InvalidUsername",
    "PolicyViolation",
    "SubscriptionRefused",
    "TooManyAttempts",
    "UnknownNamespace",
    "UnsupportedMediaType",
    "UsernameUnavailable",
    "WeakPassword",
]


class AccountError(WirehubError):
    """Fails one request to the account endpoints (``/auth/*`` on the HTTP port).

    ``code`` is the stable string in the JSON error body, ``status`` its HTTP status. Messages
    never name whether a username exists, and never quote a password or a token.
    """

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal server error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadRequest(AccountError):
    code = "bad_request"
    status = 400
    default_message = "bad request"


class InvalidCredentials(AccountError):
    """Unknown username or wrong password: one answer for both."""

    code = "invalid_credentials"
    status = 401
    default_message = "invalid username or password"


class InvalidRefreshToken(AccountError):
    """Unknown, expired, used or revoked refresh token: one answer for all."""

    code = "invalid_refresh_token"
    status = 401
    default_message = "invalid refresh token"


class InvalidBearerToken(AccountError):
    code = "invalid_token"
    status = 401
    default_message = "invalid token"


class BearerTokenExpired(AccountError):
    code = "token_expired"
    status = 401
    default_message = "token expired"


class AccountDisabled(AccountError):
    code = "account_disabled"
    status = 403
    default_message = "account disabled"


class SubscriptionRefused(AccountError):
    code = "forbidden"
    status = 403
    default_message = "permission denied"


class UsernameUnavailable(AccountError):
    code = "username_taken"
    status = 409
    default_message = "username is taken"


class BodyTooLarge(AccountError):
    code = "body_too_large"
    status = 413
    default_message = "request body too large"


class BodyTimeout(AccountError):
    code = "request_timeout"
    status = 408
    default_message = "request body not received in time"


class UnsupportedMediaType(AccountError):
    code = "unsupported_media_type"
    status = 415
    default_message = "expected Content-Type: application/json"


class PolicyViolation(AccountError):
    """A username or password the policy refuses (``code`` says which rule family)."""

    code = "invalid_value"
    status = 422
    default_message = "invalid value"


class InvalidUsername(PolicyViolation):
    code = "invalid_username"


class WeakPassword(PolicyViolation):
    code = "weak_password"


class UnknownNamespace(PolicyViolation):
    code = "unknown_channel"


class TooManyAttempts(AccountError):
    code = "too_many_requests"
    status = 429
    default_message = "too many attempts, retry later"

    def __init__(self, retry_after_s: float, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AccountsUnavailable(AccountError):
    """The store, the broker or the hashing pool cannot serve now; retry later."""

    code = "unavailable"
    status = 503
    default_message = "temporarily unavailable, retry later"

    def __init__(self, message: str | None = None, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
