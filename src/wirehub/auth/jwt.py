"""JWT verification and issuing for connection and subscription tokens (PROTOCOL.md §9).

This module owns the mapping from a signed token to ``ConnectionClaims`` / ``SubscriptionClaims``:
which algorithms and keys are accepted, how ``exp`` / ``nbf`` / ``expire_at`` / ``aud`` / ``iss``
are judged, and how each claim's type is checked. It also issues HMAC tokens, for tests, the CLI
and applications that embed wirehub.

Every failure raises ``TokenExpired`` (an expired ``exp``) or ``TokenError`` (anything else).
Tokens are never logged and never appear in exception messages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from wirehub.auth.base import ConnectionClaims, ServerSubscription, SubscriptionClaims
from wirehub.config import AuthSettings
from wirehub.errors import ConfigError, TokenError, TokenExpired
from wirehub.types import JSON

__all__ = ["JwtVerifier", "issue_subscription_token", "issue_token"]

_HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512"})
_ECDSA_ALGORITHMS: Final = frozenset({"ES256", "ES384", "ES512"})

_VerifyKey: TypeAlias = str | RSAPublicKey | EllipticCurvePublicKey

_MISSING: Final = object()


class JwtVerifier:
    """A ``TokenVerifier`` for HS*/RS*/ES* JWTs, keyed by ``AuthSettings``.

    Each algorithm family is only accepted when its key is configured, and the key is chosen by
    family, so an RS256 public key can never be used as an HS256 secret. Time checks use the
    injected ``clock`` so they can be frozen in tests.
    """

    def __init__(
        self,
        settings: AuthSettings,
        *,
        leeway_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hmac_secret: str | None = settings.token_hmac_secret or None
        self._rsa_key: RSAPublicKey | None = None
        self._ecdsa_key: EllipticCurvePublicKey | None = None
        problems: list[str] = []
        if settings.token_rsa_public_key:
            setting = "auth.token_rsa_public_key"
            key = _load_public_key(settings.token_rsa_public_key, setting, problems)
            if isinstance(key, RSAPublicKey):
                self._rsa_key = key
            elif key is not None:
                problems.append(f"{setting}: the PEM key is not an RSA public key")
        if settings.token_ecdsa_public_key:
            setting = "auth.token_ecdsa_public_key"
            key = _load_public_key(settings.token_ecdsa_public_key, setting, problems)
            if isinstance(key, EllipticCurvePublicKey):
                self._ecdsa_key = key
            elif key is not None:
                problems.append(f"{setting}: the PEM key is not an ECDSA public key")
        if problems:
            raise ConfigError(problems)
        self._audience = settings.token_audience or None
        self._issuer = settings.token_issuer or None
        self._leeway_s = leeway_s
        self._clock = clock

    def verify_connection(self, token: str) -> ConnectionClaims:
        """Verify a connection token and return what it grants."""
        payload = self._decode(token)
        # A subscription token carries ``channel``; accepting it here would let a token meant for
        # one channel open a whole connection. Presence alone is enough to refuse.
        if "channel" in payload:
            raise TokenError("a subscription token cannot be used to connect")
        user = _optional_str(payload, "sub")
        expire_at = self._expiry(payload)
        return ConnectionClaims(
            user=user,
            expire_at=expire_at,
            info=payload.get("info"),
            meta=payload.get("meta"),
            subs=_server_subscriptions(payload),
        )

    def verify_subscription(self, token: str) -> SubscriptionClaims:
        """Verify a subscription token and return what it grants."""
        payload = self._decode(token)
        channel = payload.get("channel")
        if not isinstance(channel, str) or not channel:
            raise TokenError("a subscription token needs a non-empty channel claim")
        return SubscriptionClaims(
            user=_optional_str(payload, "sub"),
            channel=channel,
            client=_optional_str(payload, "client"),
            expire_at=self._expiry(payload),
            info=payload.get("info"),
            data=payload.get("data"),
            override=_overrides(payload),
        )

    # ----------------------------------------------------------------------- internals

    def _decode(self, token: str) -> dict[str, Any]:
        """Check the signature, ``aud``, ``iss``, ``nbf`` and ``exp``; return the payload."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise TokenError("token has no algorithm")
        key = self._key_for(algorithm)
        try:
            payload = jwt.decode(
                token,
                key,
                # Pinned to the one algorithm whose family matched the key: PyJWT then refuses
                # any token whose header names another algorithm.
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    # Time claims are judged below against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                    # Types of ``sub`` / ``jti`` are checked by the claim readers below.
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # PyJWT messages never quote the token, but name the failing check; keep it.
            raise TokenError(f"invalid token: {exc}") from exc
        self._check_time(payload)
        return payload

    def _key_for(self, algorithm: str) -> _VerifyKey:
        key: _VerifyKey | None
        if algorithm in _HMAC_ALGORITHMS:
            key = self._hmac_secret
        elif algorithm in _RSA_ALGORITHMS:
            key = self._rsa_key
        elif algorithm in _ECDSA_ALGORITHMS:
            key = self._ecdsa_key
        else:
            # ``none``, EdDSA, PS*, and anything invented: never accepted.
            raise TokenError("token algorithm not allowed")
        if key is None:
            raise TokenError("no key configured for the token's algorithm")
        return key

    def _check_time(self, payload: Mapping[str, Any]) -> None:
        now = self._clock()
        nbf = _optional_time(payload, "nbf")
        if nbf is not None and nbf > now + self._leeway_s:
            raise TokenError("token not valid yet")
        exp = _optional_time(payload, "exp")
        if exp is not None and exp <= now - self._leeway_s:
            raise TokenExpired()

    def _expiry(self, payload: Mapping[str, Any]) -> int | None:
        """``expire_at`` (0 = never) when present, else ``exp``, else no expiry."""
        expire_at = _optional_time(payload, "expire_at")
        if expire_at is not None:
            if expire_at < 0:
                # Centrifugo reads any value <= 0 as "never"; a negative one is more likely an
                # issuer bug than a wish for eternity, so fail closed.
                raise TokenError("claim expire_at cannot be negative")
            return int(expire_at) or None
        exp = _optional_time(payload, "exp")
        return None if exp is None else int(exp)


# --------------------------------------------------------------------------- claim readers


def _load_public_key(pem: str, setting: str, problems: list[str]) -> object | None:
    """Parse a PEM public key, or record why not under ``setting`` and return None."""
    try:
        return serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # Name the setting, never the key material: a misplaced private key must not reach logs.
        problems.append(f"{setting}: cannot load a PEM public key ({type(exc).__name__})")
        return None


def _optional_str(payload: Mapping[str, Any], name: str) -> str:
    """A string claim; a missing or null one reads as ``""``."""
    value = payload.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TokenError(f"claim {name} must be a string")
    return value


def _optional_time(payload: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim: present means a finite number (``null`` included is refused)."""
    value = payload.get(name, _MISSING)
    if value is _MISSING:
        return None
    # bool is an int subclass; JSON ``true`` is not a time. Python's json also parses
    # ``Infinity`` / ``NaN``, which would otherwise slip past every comparison.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError(f"claim {name} must be a number")
    return value


def _server_subscriptions(payload: Mapping[str, Any]) -> tuple[ServerSubscription, ...]:
    """``subs`` when non-empty, else ``channels``; both are type-checked whichever wins."""
    channels = payload.get("channels")
    if channels is None:
        channels = []
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        raise TokenError("claim channels must be a list of non-empty strings")
    subs = payload.get("subs")
    if subs is None:
        subs = {}
    if not isinstance(subs, dict):
        raise TokenError("claim subs must be an object")
    result: list[ServerSubscription] = []
    for channel, options in subs.items():
        if not channel:
            raise TokenError("claim subs cannot name an empty channel")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise TokenError("claim subs must map each channel to an object")
        result.append(ServerSubscription(channel, info=options.get("info"), data=options.get("data")))
    if result:
        return tuple(result)
    # Duplicates would make the server subscribe twice; keep the first of each.
    return tuple(ServerSubscription(channel) for channel in dict.fromkeys(channels))


def _overrides(payload: Mapping[str, Any]) -> dict[str, bool]:
    """``override``: ``{name: {"value": bool}}`` → ``{name: bool}``; malformed entries dropped."""
    raw = payload.get("override")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TokenError("claim override must be an object")
    result: dict[str, bool] = {}
    for name, entry in raw.items():
        if isinstance(entry, dict) and isinstance(entry.get("value"), bool):
            result[name] = entry["value"]
    return result


# --------------------------------------------------------------------------- issuing


def issue_token(
    secret: str,
    *,
    user: str,
    ttl_s: int | None = 3600,
    info: JSON = None,
    channels: Sequence[str] = (),
    algorithm: str = "HS256",
    now: float | None = None,
    extra: Mapping[str, JSON] | None = None,
) -> str:
    """Sign an HMAC connection token for ``user``; ``ttl_s=None`` issues one without ``exp``."""
    claims: dict[str, JSON] = {"sub": user}
    if ttl_s is not None:
        claims["exp"] = int((time.time() if now is None else now) + ttl_s)
    if info is not None:
        claims["info"] = info
    if channels:
        claims["channels"] = list(channels)
    if extra:
        claims.update(extra)
    return _sign(secret, claims, algorithm)


def issue_subscription_token(
    secret: str,
    *,
    user: str,
    channel: str,
    ttl_s: int | None = 3600,
    client: str = "",
    info: JSON = None,
    data: JSON = None,
    now: float | None = None,
) -> str:
    """Sign an HS256 subscription token granting ``user`` the ``channel``."""
    claims: dict[str, JSON] = {"sub": user, "channel": channel}
    if ttl_s is not None:
        claims["exp"] = int((time.time() if now is None else now) + ttl_s)
    if client:
        claims["client"] = client
    if info is not None:
        claims["info"] = info
    if data is not None:
        claims["data"] = data
    return _sign(secret, claims, "HS256")


def _sign(secret: str, claims: dict[str, JSON], algorithm: str) -> str:
    if algorithm not in _HMAC_ALGORITHMS:
        raise ValueError(f"issuing supports HS256, HS384 and HS512, not {algorithm!r}")
    if not secret:
        # PyJWT would happily sign with an empty key; such a token proves nothing.
        raise ValueError("an empty secret cannot sign tokens")
    return jwt.encode(claims, secret, algorithm=algorithm)
