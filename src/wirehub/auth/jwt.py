"""JWT verification and issuing for connection and subscription tokens (docs/protocol.md, "Tokens").

This module owns the mapping from a signed token to ``ConnectionClaims`` / ``SubscriptionClaims``:
which algorithms and keys are accepted, how ``exp`` / ``nbf`` / ``expire_at`` / ``aud`` / ``iss``
are judged, and how each claim's type is checked. It also issues tokens, for tests, the CLI and
applications that embed wirehub.

Keys, and the algorithms each may verify (never anything else: ``none``, ``PS*``, ``ES256K``…):

* ``auth.token_hmac_secret`` (and ``auth.token_hmac_previous_secret`` during a rotation): HS256/384/512;
* ``auth.token_rsa_public_key``: RS256/384/512; ``auth.token_ecdsa_public_key``: the ES* of its curve;
* ``auth.token_ed25519_public_key``: EdDSA;
* ``auth.token_jwks_url``: a token whose header has a ``kid`` is checked with that key of the set,
  and only with an algorithm of the key's family (RSA → RS*, EC → the ES* of its curve,
  Ed25519 → EdDSA, the JWK's own ``alg`` when it has one).

The key is chosen by the token's algorithm family, so a public key can never serve as an HMAC
secret. Every failure raises ``TokenExpired`` (``exp`` passed, or ``nbf`` not reached: the client
fetches a fresh token, as with Centrifugo), ``KeysUnavailable`` (the key set cannot be fetched
now) or ``TokenError`` (anything else). Tokens are never logged and never appear in exception
messages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from wirehub.auth.base import ConnectionClaims, ServerSubscription, SubscriptionClaims
from wirehub.auth.jwks import Jwk, JwksKeySet
from wirehub.config import AuthSettings
from wirehub.errors import ConfigError, TokenError, TokenExpired
from wirehub.types import JSON

__all__ = [
    "JwtVerifier",
    "SigningKey",
    "issue_subscription_token",
    "issue_token",
    "load_signing_key",
]

_HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512"})
_ECDSA_ALGORITHMS: Final = frozenset({"ES256", "ES384", "ES512"})
_EDDSA_ALGORITHMS: Final = frozenset({"EdDSA"})
_ECDSA_CURVES: Final = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_ALLOWED_ALGORITHMS: Final = _HMAC_ALGORITHMS | _RSA_ALGORITHMS | _ECDSA_ALGORITHMS | _EDDSA_ALGORITHMS

_VerifyKey: TypeAlias = str | RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey
SigningKey: TypeAlias = str | RSAPrivateKey | EllipticCurvePrivateKey | Ed25519PrivateKey
"""An HMAC secret or a private key that ``issue_token`` can sign with."""

_MISSING: Final = object()


class JwtVerifier:
    """A ``TokenVerifier`` for HS*/RS*/ES*/EdDSA JWTs, keyed by ``AuthSettings``.

    Each algorithm family is only accepted when its key is configured. Time checks use the
    injected ``clock`` so they can be frozen in tests. With ``auth.token_jwks_url`` set, ``start()``
    begins refreshing the key set in the background and ``close()`` stops it.
    """

    def __init__(
        self,
        settings: AuthSettings,
        *,
        leeway_s: float | None = None,
        clock: Callable[[], float] = time.time,
        jwks: JwksKeySet | None = None,
    ) -> None:
        # The current secret first: the previous one is only tried when the signature fails.
        self._hmac_secrets: tuple[str, ...] = tuple(
            secret for secret in (settings.token_hmac_secret, settings.token_hmac_previous_secret) if secret
        )
        keys = _public_keys(settings)
        rsa, ecdsa, ed25519 = (keys.get(name) for name, _, _ in _PUBLIC_KEY_SETTINGS)
        self._rsa_key = rsa if isinstance(rsa, RSAPublicKey) else None
        self._ecdsa_key = ecdsa if isinstance(ecdsa, EllipticCurvePublicKey) else None
        self._ed25519_key = ed25519 if isinstance(ed25519, Ed25519PublicKey) else None
        if jwks is None and settings.token_jwks_url:
            jwks = JwksKeySet(
                settings.token_jwks_url,
                refresh_interval_s=settings.token_jwks_refresh_interval_s,
                min_refresh_interval_s=settings.token_jwks_min_refresh_interval_s,
                timeout_s=settings.token_jwks_timeout_s,
            )
        self._jwks = jwks
        self._audience = settings.token_audience or None
        self._issuer = settings.token_issuer or None
        self._leeway_s = settings.token_leeway_s if leeway_s is None else leeway_s
        self._clock = clock

    async def start(self) -> None:
        if self._jwks is not None:
            await self._jwks.start()

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()

    async def verify_connection(self, token: str) -> ConnectionClaims:
        """Verify a connection token and return what it grants."""
        payload = await self._decode(token)
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

    async def verify_subscription(self, token: str) -> SubscriptionClaims:
        """Verify a subscription token and return what it grants."""
        payload = await self._decode(token)
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

    async def _decode(self, token: str) -> dict[str, Any]:
        """Check the signature, ``aud``, ``iss``, ``nbf`` and ``exp``; return the payload."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise TokenError("token has no algorithm")
        if algorithm not in _ALLOWED_ALGORITHMS:
            # ``none``, PS*, ES256K, and anything invented: never accepted.
            raise TokenError("token algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("token kid must be a string")
        if kid and self._jwks is not None:
            keys: Sequence[_VerifyKey] = (_jwk_key_for(await self._jwks.key(kid), algorithm),)
        else:
            keys = self._keys_for(algorithm)
        payload = self._verified_payload(token, algorithm, keys)
        self._check_time(payload)
        return payload

    def _verified_payload(self, token: str, algorithm: str, keys: Sequence[_VerifyKey]) -> dict[str, Any]:
        """Try each key in turn (several only for HMAC rotation); claims are checked after."""
        for i, key in enumerate(keys):
            try:
                return jwt.decode(
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
            except jwt.InvalidSignatureError as exc:
                if i + 1 < len(keys):
                    continue
                raise TokenError(f"invalid token: {exc}") from exc
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                # PyJWT messages never quote the token, but name the failing check; keep it.
                raise TokenError(f"invalid token: {exc}") from exc
        raise TokenError("no key configured for the token's algorithm")

    def _keys_for(self, algorithm: str) -> Sequence[_VerifyKey]:
        keys: Sequence[_VerifyKey]
        if algorithm in _HMAC_ALGORITHMS:
            keys = self._hmac_secrets
        elif algorithm in _RSA_ALGORITHMS:
            keys = (self._rsa_key,) if self._rsa_key is not None else ()
        elif algorithm in _ECDSA_ALGORITHMS:
            ecdsa = self._ecdsa_key
            keys = (ecdsa,) if ecdsa is not None and ecdsa.curve.name == _ECDSA_CURVES[algorithm] else ()
        else:
            keys = (self._ed25519_key,) if self._ed25519_key is not None else ()
        if not keys:
            raise TokenError("no key configured for the token's algorithm")
        return keys

    def _check_time(self, payload: Mapping[str, Any]) -> None:
        now = self._clock()
        nbf = _optional_time(payload, "nbf")
        if nbf is not None and nbf > now + self._leeway_s:
            # Centrifugo answers a token that is not valid yet like an expired one (109): the
            # client fetches a fresh token, instead of being refused for good by 3500.
            raise TokenExpired("token not valid yet")
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


def _jwk_key_for(jwk: Jwk, algorithm: str) -> _VerifyKey:
    """The JWK's key if it may verify ``algorithm``: same family, same curve, same ``alg``."""
    key = jwk.key
    if isinstance(key, RSAPublicKey):
        fits = algorithm in _RSA_ALGORITHMS
    elif isinstance(key, EllipticCurvePublicKey):
        fits = _ECDSA_CURVES.get(algorithm) == key.curve.name
    else:
        fits = algorithm in _EDDSA_ALGORITHMS
    if not fits or (jwk.algorithm is not None and jwk.algorithm != algorithm):
        raise TokenError("the key named by kid does not fit the token's algorithm")
    return key


# --------------------------------------------------------------------------- claim readers


def _is_ecdsa_key(key: object) -> bool:
    return isinstance(key, EllipticCurvePublicKey) and key.curve.name in _ECDSA_CURVES.values()


_PUBLIC_KEY_SETTINGS: Final[tuple[tuple[str, Callable[[object], bool], str], ...]] = (
    # (AuthSettings field, whether a loaded key is of the right kind, what it must be)
    ("token_rsa_public_key", lambda key: isinstance(key, RSAPublicKey), "an RSA public key"),
    ("token_ecdsa_public_key", _is_ecdsa_key, "an ECDSA P-256, P-384 or P-521 public key"),
    ("token_ed25519_public_key", lambda key: isinstance(key, Ed25519PublicKey), "an Ed25519 public key"),
)


def _public_keys(settings: AuthSettings) -> dict[str, object]:
    """The configured PEM public keys by setting name; ``ConfigError`` naming every bad one."""
    keys: dict[str, object] = {}
    problems: list[str] = []
    for name, fits, wanted in _PUBLIC_KEY_SETTINGS:
        pem = getattr(settings, name)
        if not pem:
            continue
        setting = f"auth.{name}"
        try:
            key = serialization.load_pem_public_key(pem.strip().encode())
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # Name the setting, never the key material: a misplaced private key must not reach logs.
            problems.append(f"{setting}: cannot load a PEM public key ({type(exc).__name__})")
            continue
        if fits(key):
            keys[name] = key
        else:
            problems.append(f"{setting}: the PEM key is not {wanted}")
    if problems:
        raise ConfigError(problems)
    return keys


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
    key: SigningKey,
    *,
    user: str,
    ttl_s: int | None = 3600,
    info: JSON = None,
    channels: Sequence[str] = (),
    algorithm: str | None = None,
    now: float | None = None,
    extra: Mapping[str, JSON] | None = None,
    kid: str = "",
) -> str:
    """Sign a connection token for ``user``; ``ttl_s=None`` issues one without ``exp``.

    ``key`` is an HMAC secret (HS256 unless ``algorithm`` says HS384/HS512) or a private key
    (RS256 for RSA, the ES* of an EC key's curve, EdDSA for Ed25519 unless ``algorithm`` says
    otherwise). ``kid`` names the key in the header, for verifiers that pick keys from a JWKS.
    """
    claims: dict[str, JSON] = {"sub": user}
    if ttl_s is not None:
        claims["exp"] = int((time.time() if now is None else now) + ttl_s)
    if info is not None:
        claims["info"] = info
    if channels:
        claims["channels"] = list(channels)
    if extra:
        claims.update(extra)
    return _sign(key, claims, algorithm, kid)


def issue_subscription_token(
    key: SigningKey,
    *,
    user: str,
    channel: str,
    ttl_s: int | None = 3600,
    client: str = "",
    info: JSON = None,
    data: JSON = None,
    now: float | None = None,
    algorithm: str | None = None,
    extra: Mapping[str, JSON] | None = None,
    kid: str = "",
) -> str:
    """Sign a subscription token granting ``user`` the ``channel`` (keys as for ``issue_token``)."""
    claims: dict[str, JSON] = {"sub": user, "channel": channel}
    if ttl_s is not None:
        claims["exp"] = int((time.time() if now is None else now) + ttl_s)
    if client:
        claims["client"] = client
    if info is not None:
        claims["info"] = info
    if data is not None:
        claims["data"] = data
    if extra:
        claims.update(extra)
    return _sign(key, claims, algorithm, kid)


def load_signing_key(pem: bytes) -> SigningKey:
    """A private key from PEM (unencrypted PKCS#8 or traditional), for ``issue_token``.

    Raises ``ValueError`` naming what is wrong, never quoting the key.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
    if isinstance(key, RSAPrivateKey | EllipticCurvePrivateKey | Ed25519PrivateKey):
        return key
    raise ValueError("only RSA, ECDSA (P-256, P-384, P-521) and Ed25519 private keys can sign tokens")


def _default_algorithm(key: SigningKey) -> str:
    if isinstance(key, str):
        return "HS256"
    if isinstance(key, RSAPrivateKey):
        return "RS256"
    if isinstance(key, EllipticCurvePrivateKey):
        for algorithm, curve in _ECDSA_CURVES.items():
            if key.curve.name == curve:
                return algorithm
        raise ValueError(f"no JWT algorithm signs with the {key.curve.name} curve")
    return "EdDSA"


def _sign(key: SigningKey, claims: dict[str, JSON], algorithm: str | None, kid: str) -> str:
    algorithm = algorithm or _default_algorithm(key)
    if isinstance(key, str):
        if algorithm not in _HMAC_ALGORITHMS:
            raise ValueError(f"an HMAC secret signs HS256, HS384 and HS512, not {algorithm!r}")
        if not key:
            # PyJWT would happily sign with an empty key; such a token proves nothing.
            raise ValueError("an empty secret cannot sign tokens")
    elif algorithm != _default_algorithm(key) and not (
        isinstance(key, RSAPrivateKey) and algorithm in _RSA_ALGORITHMS
    ):
        raise ValueError(f"this {type(key).__name__} cannot sign {algorithm!r}")
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)
