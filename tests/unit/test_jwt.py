"""Unit tests for wirehub.auth.jwt: algorithm pinning, time claims, claim mapping and issuing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wirehub.auth.base import ConnectionClaims, ServerSubscription, SubscriptionClaims, TokenVerifier
from wirehub.auth.jwt import JwtVerifier, issue_subscription_token, issue_token, load_signing_key
from wirehub.config import AuthSettings
from wirehub.errors import ConfigError, TokenError, TokenExpired

NOW = 1_700_000_000.0
SECRET = "s" * 64  # long enough for HS512 so PyJWT does not warn about key length
OTHER_SECRET = "o" * 64


def frozen_clock() -> float:
    return NOW


@pytest.fixture(scope="module")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_public_pem(rsa_private_key: rsa.RSAPrivateKey) -> str:
    return _public_pem(rsa_private_key.public_key())


@pytest.fixture(scope="module")
def ec_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ec_public_pem(ec_private_key: ec.EllipticCurvePrivateKey) -> str:
    return _public_pem(ec_private_key.public_key())


def _public_pem(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _verifier(leeway_s: float = 1.0, **settings: Any) -> JwtVerifier:
    settings.setdefault("token_hmac_secret", SECRET)
    auth = dataclasses.replace(AuthSettings(), **settings)
    return JwtVerifier(auth, leeway_s=leeway_s, clock=frozen_clock)


def _hs(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any] | bytes, hmac_key: bytes | None) -> str:
    """Build a token by hand, bypassing PyJWT's own refusal to sign dangerous tokens."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


# --------------------------------------------------------------------------- algorithms


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
async def test_verify_connection_accepts_hmac_algorithms(algorithm: str) -> None:
    """An HS256/384/512 token signed with the configured secret yields the user."""
    token = _hs({"sub": "alice", "exp": NOW + 60}, algorithm=algorithm)
    assert (await _verifier().verify_connection(token)).user == "alice"


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512"])
async def test_verify_connection_accepts_rsa_algorithms_when_rsa_key_configured(
    algorithm: str, rsa_private_key: rsa.RSAPrivateKey, rsa_public_pem: str
) -> None:
    """An RS* token signed by the private half of the configured PEM key is accepted."""
    token = jwt.encode({"sub": "bob"}, rsa_private_key, algorithm=algorithm)
    verifier = _verifier(token_hmac_secret="", token_rsa_public_key=rsa_public_pem)
    assert (await verifier.verify_connection(token)).user == "bob"


async def test_verify_connection_accepts_es256_when_ecdsa_key_configured(
    ec_private_key: ec.EllipticCurvePrivateKey, ec_public_pem: str
) -> None:
    """An ES256 token signed by the private half of the configured PEM key is accepted."""
    token = jwt.encode({"sub": "carol"}, ec_private_key, algorithm="ES256")
    verifier = _verifier(token_hmac_secret="", token_ecdsa_public_key=ec_public_pem)
    assert (await verifier.verify_connection(token)).user == "carol"


async def test_verifier_satisfies_token_verifier_protocol() -> None:
    """JwtVerifier can be used wherever a TokenVerifier is expected."""
    verifier: TokenVerifier = _verifier()
    assert isinstance(await verifier.verify_connection(_hs({"sub": "a"})), ConnectionClaims)


async def test_verify_connection_rejects_alg_none() -> None:
    """An unsigned ``alg: none`` token is refused even though a secret is configured."""
    token = _forge({"alg": "none", "typ": "JWT"}, {"sub": "mallory"}, None)
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


@pytest.mark.parametrize("algorithm", ["None", "NONE", "PS256", "EdDSA", "HS1", ""])
async def test_verify_connection_rejects_unknown_algorithm(algorithm: str) -> None:
    """A header naming any algorithm outside HS*/RS*/ES* is refused before any key is used."""
    token = _forge({"alg": algorithm}, {"sub": "mallory"}, SECRET.encode())
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


async def test_verify_connection_rejects_missing_alg_header() -> None:
    """A header without ``alg`` is refused."""
    token = _forge({"typ": "JWT"}, {"sub": "mallory"}, SECRET.encode())
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


@pytest.mark.parametrize("hmac_secret", ["", SECRET])
async def test_verify_connection_rejects_hs256_signed_with_rsa_public_pem(
    hmac_secret: str, rsa_public_pem: str
) -> None:
    """An HS256 token using the RSA public key PEM as its secret is refused (no HS/RS confusion)."""
    token = _forge({"alg": "HS256", "typ": "JWT"}, {"sub": "mallory"}, rsa_public_pem.encode())
    verifier = _verifier(token_hmac_secret=hmac_secret, token_rsa_public_key=rsa_public_pem)
    with pytest.raises(TokenError):
        await verifier.verify_connection(token)


async def test_verify_connection_rejects_rs256_when_only_hmac_configured(
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    """A correctly signed RS256 token is refused when no RSA key is configured."""
    token = jwt.encode({"sub": "bob"}, rsa_private_key, algorithm="RS256")
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


async def test_verify_connection_rejects_es256_when_only_rsa_configured(
    ec_private_key: ec.EllipticCurvePrivateKey, rsa_public_pem: str
) -> None:
    """An ES256 token is refused when only an RSA key is configured."""
    token = jwt.encode({"sub": "carol"}, ec_private_key, algorithm="ES256")
    verifier = _verifier(token_hmac_secret="", token_rsa_public_key=rsa_public_pem)
    with pytest.raises(TokenError):
        await verifier.verify_connection(token)


async def test_verify_connection_rejects_tampered_payload() -> None:
    """Changing the payload of a signed token invalidates its signature."""
    header, _, signature = _hs({"sub": "alice"}).split(".")
    forged_payload = _b64(json.dumps({"sub": "admin"}).encode())
    with pytest.raises(TokenError):
        await _verifier().verify_connection(f"{header}.{forged_payload}.{signature}")


async def test_verify_connection_rejects_wrong_secret() -> None:
    """A token signed with a different secret is refused."""
    with pytest.raises(TokenError):
        await _verifier().verify_connection(_hs({"sub": "alice"}, secret=OTHER_SECRET))


@pytest.mark.parametrize("token", ["", "garbage", "a.b", "a.b.c", "...."])
async def test_verify_connection_rejects_malformed_token(token: str) -> None:
    """Strings that are not JWTs raise TokenError, not some other exception."""
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


async def test_verify_connection_rejects_everything_when_no_key_configured() -> None:
    """A verifier built with no key at all refuses every token."""
    verifier = JwtVerifier(AuthSettings(), clock=frozen_clock)
    with pytest.raises(TokenError):
        await verifier.verify_connection(_hs({"sub": "alice"}))
    with pytest.raises(TokenError):
        await verifier.verify_subscription(_hs({"sub": "alice", "channel": "chat:a"}))


def test_verifier_raises_config_error_when_rsa_pem_invalid() -> None:
    """An unparsable RSA PEM is reported at construction under its setting name."""
    with pytest.raises(ConfigError) as info:
        JwtVerifier(AuthSettings(token_rsa_public_key="-----BEGIN PUBLIC KEY-----\nnope\n"))
    assert info.value.problems[0].startswith("auth.token_rsa_public_key:")


def test_verifier_raises_config_error_when_ecdsa_pem_invalid() -> None:
    """An unparsable ECDSA PEM is reported at construction under its setting name."""
    with pytest.raises(ConfigError) as info:
        JwtVerifier(AuthSettings(token_ecdsa_public_key="not a pem"))
    assert info.value.problems[0].startswith("auth.token_ecdsa_public_key:")


def test_verifier_raises_config_error_when_key_families_swapped(
    rsa_public_pem: str, ec_public_pem: str
) -> None:
    """An EC key given as the RSA key (and vice versa) is a configuration error for both settings."""
    with pytest.raises(ConfigError) as info:
        JwtVerifier(AuthSettings(token_rsa_public_key=ec_public_pem, token_ecdsa_public_key=rsa_public_pem))
    assert [p.split(":")[0] for p in info.value.problems] == [
        "auth.token_rsa_public_key",
        "auth.token_ecdsa_public_key",
    ]


def test_verifier_config_error_when_pem_invalid_does_not_quote_key() -> None:
    """The ConfigError for a bad key never echoes the key material."""
    material = "-----BEGIN PRIVATE KEY-----\nSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError) as info:
        JwtVerifier(AuthSettings(token_rsa_public_key=material))
    assert "SECRETMATERIAL" not in str(info.value)


# --------------------------------------------------------------------------- time claims


async def test_verify_connection_raises_token_expired_when_exp_passed() -> None:
    """A token whose ``exp`` is past (beyond the leeway) raises TokenExpired."""
    with pytest.raises(TokenExpired):
        await _verifier().verify_connection(_hs({"sub": "alice", "exp": NOW - 5}))


async def test_verify_subscription_raises_token_expired_when_exp_passed() -> None:
    """An expired subscription token raises TokenExpired too."""
    with pytest.raises(TokenExpired):
        await _verifier().verify_subscription(_hs({"sub": "a", "channel": "chat:a", "exp": NOW - 5}))


async def test_verify_connection_raises_token_expired_when_nbf_in_future() -> None:
    """A token not valid yet raises TokenExpired (109, as Centrifugo): the client gets a fresh one."""
    with pytest.raises(TokenExpired, match="not valid yet"):
        await _verifier().verify_connection(_hs({"sub": "alice", "nbf": NOW + 30}))


async def test_verify_connection_accepts_nbf_in_past() -> None:
    """A past ``nbf`` does not stand in the way."""
    assert (await _verifier().verify_connection(_hs({"sub": "alice", "nbf": NOW - 30}))).user == "alice"


async def test_verify_connection_honours_leeway_for_exp_and_nbf() -> None:
    """Within the leeway an expired ``exp`` and an early ``nbf`` are tolerated; beyond it they are not."""
    verifier = _verifier(leeway_s=10)
    assert (await verifier.verify_connection(_hs({"sub": "a", "exp": NOW - 9}))).user == "a"
    assert (await verifier.verify_connection(_hs({"sub": "a", "nbf": NOW + 9}))).user == "a"
    with pytest.raises(TokenExpired):
        await verifier.verify_connection(_hs({"sub": "a", "exp": NOW - 11}))
    with pytest.raises(TokenExpired):
        await verifier.verify_connection(_hs({"sub": "a", "nbf": NOW + 11}))


async def test_verify_connection_uses_injected_clock_when_real_time_differs() -> None:
    """Time is judged by the injected clock, not the wall clock."""
    verifier = JwtVerifier(AuthSettings(token_hmac_secret=SECRET), clock=lambda: 100.0)
    assert (await verifier.verify_connection(_hs({"sub": "a", "exp": 200}))).expire_at == 200


async def test_verify_connection_ignores_iat_in_future() -> None:
    """``iat`` is informational (as in Centrifugo) and is not checked against the clock."""
    assert (await _verifier().verify_connection(_hs({"sub": "a", "iat": NOW + 3600}))).user == "a"


# --------------------------------------------------------------------------- aud / iss


async def test_verify_connection_ignores_aud_and_iss_when_not_configured() -> None:
    """Without a configured audience/issuer any ``aud`` / ``iss`` claim is accepted."""
    token = _hs({"sub": "a", "aud": "elsewhere", "iss": "someone"})
    assert (await _verifier().verify_connection(token)).user == "a"


async def test_verify_connection_accepts_matching_aud_and_iss_when_configured() -> None:
    """Matching ``aud`` and ``iss`` pass when both are configured."""
    verifier = _verifier(token_audience="wirehub", token_issuer="auth.example")
    token = _hs({"sub": "a", "aud": "wirehub", "iss": "auth.example"})
    assert (await verifier.verify_connection(token)).user == "a"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "a", "aud": "elsewhere", "iss": "auth.example"},
        {"sub": "a", "aud": "wirehub", "iss": "someone"},
        {"sub": "a", "iss": "auth.example"},
        {"sub": "a", "aud": "wirehub"},
    ],
)
async def test_verify_connection_rejects_aud_or_iss_mismatch_when_configured(claims: dict[str, Any]) -> None:
    """A wrong or missing ``aud`` / ``iss`` is refused once the server expects one."""
    verifier = _verifier(token_audience="wirehub", token_issuer="auth.example")
    with pytest.raises(TokenError):
        await verifier.verify_connection(_hs(claims))


async def test_verify_subscription_rejects_aud_mismatch_when_configured() -> None:
    """Audience checks apply to subscription tokens as well."""
    verifier = _verifier(token_audience="wirehub")
    with pytest.raises(TokenError):
        await verifier.verify_subscription(_hs({"sub": "a", "channel": "chat:a", "aud": "x"}))


# --------------------------------------------------------------------------- connection claims


async def test_verify_connection_maps_claims() -> None:
    """``sub``, ``exp``, ``info`` and ``meta`` land in ConnectionClaims."""
    token = _hs({"sub": "alice", "exp": NOW + 60, "info": {"name": "Alice"}, "meta": {"tier": 2}})
    assert await _verifier().verify_connection(token) == ConnectionClaims(
        user="alice", expire_at=int(NOW + 60), info={"name": "Alice"}, meta={"tier": 2}
    )


async def test_verify_connection_returns_anonymous_when_sub_missing() -> None:
    """A token without ``sub`` (or with ``""``) is an anonymous connection with no expiry."""
    assert await _verifier().verify_connection(_hs({})) == ConnectionClaims(user="")
    assert (await _verifier().verify_connection(_hs({"sub": ""}))).user == ""


async def test_verify_connection_rejects_subscription_token() -> None:
    """A token with a ``channel`` claim cannot open a connection."""
    token = issue_subscription_token(SECRET, user="alice", channel="chat:a", now=NOW)
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


@pytest.mark.parametrize("channel", ["", None])
async def test_verify_connection_rejects_channel_claim_when_empty_or_null(channel: str | None) -> None:
    """Even an empty or null ``channel`` marks a token as not a connection token."""
    with pytest.raises(TokenError):
        await _verifier().verify_connection(_hs({"sub": "a", "channel": channel}))


async def test_verify_connection_uses_expire_at_over_exp() -> None:
    """``expire_at`` replaces ``exp`` as the connection expiry."""
    token = _hs({"sub": "a", "exp": NOW + 60, "expire_at": NOW + 600})
    assert (await _verifier().verify_connection(token)).expire_at == int(NOW + 600)


async def test_verify_connection_never_expires_when_expire_at_zero() -> None:
    """``expire_at: 0`` means the connection never expires, even with an ``exp``."""
    assert (
        await _verifier().verify_connection(_hs({"sub": "a", "exp": NOW + 60, "expire_at": 0}))
    ).expire_at is None


async def test_verify_connection_still_checks_exp_when_expire_at_set() -> None:
    """``exp`` keeps guarding the token itself when ``expire_at`` is present."""
    with pytest.raises(TokenExpired):
        await _verifier().verify_connection(_hs({"sub": "a", "exp": NOW - 60, "expire_at": NOW + 600}))


async def test_verify_connection_has_no_expiry_when_exp_and_expire_at_absent() -> None:
    """Without ``exp`` or ``expire_at`` the connection does not expire."""
    assert (await _verifier().verify_connection(_hs({"sub": "a"}))).expire_at is None


async def test_verify_connection_truncates_float_exp_to_int() -> None:
    """A fractional NumericDate is accepted and reported as whole seconds."""
    assert (await _verifier().verify_connection(_hs({"sub": "a", "exp": NOW + 60.7}))).expire_at == int(
        NOW + 60
    )


async def test_verify_connection_maps_channels_to_server_subscriptions() -> None:
    """``channels`` becomes one ServerSubscription each, in order, without duplicates."""
    token = _hs({"sub": "a", "channels": ["news", "chat:a", "news"]})
    assert (await _verifier().verify_connection(token)).subs == (
        ServerSubscription("news"),
        ServerSubscription("chat:a"),
    )


async def test_verify_connection_prefers_subs_over_channels() -> None:
    """When ``subs`` is present it wins over ``channels`` and carries info/data."""
    token = _hs(
        {
            "sub": "a",
            "channels": ["ignored"],
            "subs": {"news": {"info": {"role": "reader"}, "data": [1]}, "chat:a": {}},
        }
    )
    assert (await _verifier().verify_connection(token)).subs == (
        ServerSubscription("news", info={"role": "reader"}, data=[1]),
        ServerSubscription("chat:a"),
    )


async def test_verify_connection_falls_back_to_channels_when_subs_empty() -> None:
    """An empty ``subs`` object leaves ``channels`` in charge (as Centrifugo does)."""
    token = _hs({"sub": "a", "channels": ["news"], "subs": {}})
    assert (await _verifier().verify_connection(token)).subs == (ServerSubscription("news"),)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": 42},
        {"sub": ["a"]},
        {"sub": "a", "channels": "news"},
        {"sub": "a", "channels": ["news", 3]},
        {"sub": "a", "channels": [""]},
        {"sub": "a", "channels": {"news": {}}},
        {"sub": "a", "subs": ["news"]},
        {"sub": "a", "subs": {"news": "yes"}},
        {"sub": "a", "subs": {"": {}}},
        {"sub": "a", "exp": "tomorrow"},
        {"sub": "a", "exp": True},
        {"sub": "a", "exp": None},
        {"sub": "a", "nbf": "yesterday"},
        {"sub": "a", "expire_at": "never"},
        {"sub": "a", "expire_at": -1},
    ],
)
async def test_verify_connection_rejects_claims_with_wrong_types(claims: dict[str, Any]) -> None:
    """Claims of the wrong JSON type are refused with TokenError."""
    with pytest.raises(TokenError):
        await _verifier().verify_connection(_hs(claims))


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN"])
async def test_verify_connection_rejects_non_finite_exp(literal: str) -> None:
    """Python's JSON parser accepts Infinity/NaN; such an ``exp`` must not mean "never expires"."""
    token = _forge({"alg": "HS256"}, f'{{"sub": "a", "exp": {literal}}}'.encode(), SECRET.encode())
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


async def test_verify_connection_rejects_non_object_payload() -> None:
    """A signed payload that is a JSON array rather than an object is refused."""
    token = _forge({"alg": "HS256"}, b"[1, 2]", SECRET.encode())
    with pytest.raises(TokenError):
        await _verifier().verify_connection(token)


# --------------------------------------------------------------------------- subscription claims


async def test_verify_subscription_maps_claims() -> None:
    """All subscription claims land in SubscriptionClaims."""
    token = _hs(
        {
            "sub": "alice",
            "channel": "chat:a",
            "client": "c-1",
            "exp": NOW + 60,
            "info": {"role": "mod"},
            "data": {"welcome": True},
            "override": {"presence": {"value": False}, "join_leave": {"value": True}},
        }
    )
    assert await _verifier().verify_subscription(token) == SubscriptionClaims(
        user="alice",
        channel="chat:a",
        client="c-1",
        expire_at=int(NOW + 60),
        info={"role": "mod"},
        data={"welcome": True},
        override={"presence": False, "join_leave": True},
    )


async def test_verify_subscription_rejects_connection_token() -> None:
    """A token without ``channel`` cannot authorise a subscription."""
    token = issue_token(SECRET, user="alice", now=NOW)
    with pytest.raises(TokenError):
        await _verifier().verify_subscription(token)


@pytest.mark.parametrize("channel", ["", 5, None, ["chat:a"]])
async def test_verify_subscription_rejects_channel_when_not_non_empty_string(channel: object) -> None:
    """``channel`` must be a non-empty string."""
    with pytest.raises(TokenError):
        await _verifier().verify_subscription(_hs({"sub": "a", "channel": channel}))


async def test_verify_subscription_uses_expire_at_over_exp() -> None:
    """``expire_at`` replaces ``exp`` as the subscription expiry, and 0 means never."""
    base = {"sub": "a", "channel": "chat:a", "exp": NOW + 60}
    assert (await _verifier().verify_subscription(_hs(base | {"expire_at": NOW + 900}))).expire_at == int(
        NOW + 900
    )
    assert (await _verifier().verify_subscription(_hs(base | {"expire_at": 0}))).expire_at is None
    assert (await _verifier().verify_subscription(_hs(base))).expire_at == int(NOW + 60)


async def test_verify_subscription_ignores_malformed_override_entries() -> None:
    """Override entries that are not ``{"value": bool}`` are dropped, the rest kept."""
    token = _hs(
        {
            "sub": "a",
            "channel": "chat:a",
            "override": {
                "presence": {"value": True},
                "join_leave": True,
                "force_recovery": {"value": "yes"},
                "force_positioning": {},
            },
        }
    )
    assert (await _verifier().verify_subscription(token)).override == {"presence": True}


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": 1, "channel": "chat:a"},
        {"sub": "a", "channel": "chat:a", "client": 7},
        {"sub": "a", "channel": "chat:a", "exp": "soon"},
        {"sub": "a", "channel": "chat:a", "override": ["presence"]},
    ],
)
async def test_verify_subscription_rejects_claims_with_wrong_types(claims: dict[str, Any]) -> None:
    """Subscription claims of the wrong JSON type are refused with TokenError."""
    with pytest.raises(TokenError):
        await _verifier().verify_subscription(_hs(claims))


async def test_verify_subscription_raises_token_expired_when_nbf_in_future() -> None:
    """A subscription token not valid yet raises TokenExpired."""
    with pytest.raises(TokenExpired):
        await _verifier().verify_subscription(_hs({"sub": "a", "channel": "chat:a", "nbf": NOW + 60}))


# --------------------------------------------------------------------------- issuing


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
async def test_issue_token_round_trips_through_verifier(algorithm: str) -> None:
    """A token from issue_token verifies back to the same user, expiry, info and channels."""
    token = issue_token(
        SECRET,
        user="alice",
        ttl_s=120,
        info={"name": "Alice"},
        channels=["news", "chat:a"],
        algorithm=algorithm,
        now=NOW,
        extra={"meta": {"tier": 1}},
    )
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert await _verifier().verify_connection(token) == ConnectionClaims(
        user="alice",
        expire_at=int(NOW + 120),
        info={"name": "Alice"},
        meta={"tier": 1},
        subs=(ServerSubscription("news"), ServerSubscription("chat:a")),
    )


async def test_issue_token_omits_exp_when_ttl_none() -> None:
    """``ttl_s=None`` issues a token with no ``exp`` and thus no expiry."""
    token = issue_token(SECRET, user="alice", ttl_s=None, now=NOW)
    assert "exp" not in jwt.decode(token, SECRET, algorithms=["HS256"])
    assert (await _verifier().verify_connection(token)).expire_at is None


async def test_issue_token_produces_expired_token_when_now_in_past() -> None:
    """A token issued long ago with a short ttl is reported as expired."""
    token = issue_token(SECRET, user="alice", ttl_s=10, now=NOW - 3600)
    with pytest.raises(TokenExpired):
        await _verifier().verify_connection(token)


def test_issue_token_rejects_non_hmac_algorithm() -> None:
    """issue_token only signs HS* tokens."""
    with pytest.raises(ValueError, match="HS256"):
        issue_token(SECRET, user="alice", algorithm="RS256")


def test_issue_token_rejects_empty_secret() -> None:
    """An empty secret cannot sign tokens."""
    with pytest.raises(ValueError, match="empty"):
        issue_token("", user="alice")


async def test_issue_subscription_token_round_trips_through_verifier() -> None:
    """A token from issue_subscription_token verifies back to its claims."""
    token = issue_subscription_token(
        SECRET,
        user="alice",
        channel="chat:a",
        ttl_s=60,
        client="c-1",
        info={"role": "mod"},
        data={"hello": "world"},
        now=NOW,
    )
    assert await _verifier().verify_subscription(token) == SubscriptionClaims(
        user="alice",
        channel="chat:a",
        client="c-1",
        expire_at=int(NOW + 60),
        info={"role": "mod"},
        data={"hello": "world"},
    )


# --------------------------------------------------------------------------- EdDSA, curves, rotation


@pytest.fixture(scope="module")
def ed25519_private_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _ed25519_public_pem(key: ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def test_verify_connection_accepts_eddsa_when_ed25519_key_configured(
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    """An EdDSA token signed by the private half of the configured Ed25519 PEM key is accepted."""
    token = jwt.encode({"sub": "dora"}, ed25519_private_key, algorithm="EdDSA")
    verifier = _verifier(
        token_hmac_secret="", token_ed25519_public_key=_ed25519_public_pem(ed25519_private_key)
    )
    assert (await verifier.verify_connection(token)).user == "dora"


async def test_verify_connection_rejects_eddsa_when_only_hmac_configured(
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    """An EdDSA token is refused when no Ed25519 key is configured."""
    token = jwt.encode({"sub": "dora"}, ed25519_private_key, algorithm="EdDSA")
    with pytest.raises(TokenError, match="no key"):
        await _verifier().verify_connection(token)


async def test_verify_connection_rejects_eddsa_signed_by_another_key(
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    """An EdDSA token signed by a different Ed25519 key fails the signature check."""
    token = jwt.encode({"sub": "dora"}, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA")
    verifier = _verifier(
        token_hmac_secret="", token_ed25519_public_key=_ed25519_public_pem(ed25519_private_key)
    )
    with pytest.raises(TokenError):
        await verifier.verify_connection(token)


def test_verifier_raises_config_error_when_ed25519_pem_is_not_ed25519(rsa_public_pem: str) -> None:
    """An RSA key given as the Ed25519 key is a configuration error naming the setting."""
    with pytest.raises(ConfigError, match=r"auth\.token_ed25519_public_key"):
        _verifier(token_ed25519_public_key=rsa_public_pem)


def test_verifier_raises_config_error_when_ecdsa_curve_has_no_jwt_algorithm() -> None:
    """An ECDSA key on a curve no ES* algorithm uses (secp256k1) is refused at startup."""
    pem = _public_pem(ec.generate_private_key(ec.SECP256K1()).public_key())
    with pytest.raises(ConfigError, match=r"auth\.token_ecdsa_public_key"):
        _verifier(token_ecdsa_public_key=pem)


@pytest.mark.parametrize(("curve", "algorithm"), [(ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")])
async def test_verify_connection_accepts_es_algorithm_of_the_key_curve(
    curve: ec.EllipticCurve, algorithm: str
) -> None:
    """ES384 verifies with a P-384 key and ES512 with a P-521 key."""
    private = ec.generate_private_key(curve)
    token = jwt.encode({"sub": "erin"}, private, algorithm=algorithm)
    verifier = _verifier(token_hmac_secret="", token_ecdsa_public_key=_public_pem(private.public_key()))
    assert (await verifier.verify_connection(token)).user == "erin"


async def test_verify_connection_rejects_es_algorithm_of_another_curve(
    ec_private_key: ec.EllipticCurvePrivateKey, ec_public_pem: str
) -> None:
    """A token claiming ES512 is refused by a P-256 key: each curve verifies its own algorithm only."""
    es256 = jwt.encode({"sub": "erin"}, ec_private_key, algorithm="ES256")
    # PyJWT refuses to sign ES512 with a P-256 key, so relabel an ES256 token by hand.
    token = _b64(json.dumps({"alg": "ES512", "typ": "JWT"}).encode()) + es256[es256.index(".") :]
    verifier = _verifier(token_hmac_secret="", token_ecdsa_public_key=ec_public_pem)
    with pytest.raises(TokenError, match="no key"):
        await verifier.verify_connection(token)


async def test_verify_connection_accepts_previous_hmac_secret_during_rotation() -> None:
    """While a previous secret is configured, tokens signed with it still verify."""
    verifier = _verifier(token_hmac_secret=SECRET, token_hmac_previous_secret=OTHER_SECRET)
    assert (await verifier.verify_connection(_hs({"sub": "old"}, secret=OTHER_SECRET))).user == "old"
    assert (await verifier.verify_connection(_hs({"sub": "new"}, secret=SECRET))).user == "new"


async def test_verify_connection_rejects_previous_hmac_secret_when_not_configured() -> None:
    """Once the previous secret is removed, tokens signed with it fail."""
    with pytest.raises(TokenError):
        await _verifier().verify_connection(_hs({"sub": "old"}, secret=OTHER_SECRET))


async def test_verify_connection_rejects_third_hmac_secret_when_rotating() -> None:
    """Only the current and the previous secret verify: any other secret fails."""
    verifier = _verifier(token_hmac_secret=SECRET, token_hmac_previous_secret=OTHER_SECRET)
    with pytest.raises(TokenError):
        await verifier.verify_connection(_hs({"sub": "m"}, secret="x" * 64))


async def test_verify_connection_checks_audience_of_token_signed_with_previous_secret() -> None:
    """A token signed with the previous secret still has its ``aud`` checked."""
    verifier = _verifier(token_hmac_previous_secret=OTHER_SECRET, token_audience="gw")
    with pytest.raises(TokenError, match=r"(?i)audience"):
        await verifier.verify_connection(_hs({"sub": "a", "aud": "other"}, secret=OTHER_SECRET))


async def test_verify_connection_ignores_kid_when_no_jwks_configured() -> None:
    """Without a JWKS, a ``kid`` header is irrelevant: the configured keys decide."""
    token = jwt.encode({"sub": "k"}, SECRET, algorithm="HS256", headers={"kid": "whatever"})
    assert (await _verifier().verify_connection(token)).user == "k"


async def test_verify_connection_rejects_non_string_kid() -> None:
    """A ``kid`` header that is not a string is a malformed token."""
    token = _forge({"alg": "HS256", "kid": 7}, {"sub": "k"}, SECRET.encode())
    with pytest.raises(TokenError, match="malformed"):
        await _verifier().verify_connection(token)


@pytest.mark.parametrize("algorithm", ["ES256K", "PS256", "ES521", "EdDSA448", "HS1", "hs256"])
async def test_verify_connection_rejects_algorithms_outside_the_families(algorithm: str) -> None:
    """Algorithms PyJWT knows but Centrifugo does not (PS*, ES256K…) are never accepted."""
    token = _forge({"alg": algorithm, "typ": "JWT"}, {"sub": "m"}, SECRET.encode())
    with pytest.raises(TokenError, match="not allowed"):
        await _verifier().verify_connection(token)


def test_verifier_leeway_defaults_to_setting() -> None:
    """Without an explicit leeway the verifier uses ``auth.token_leeway_s``."""
    verifier = JwtVerifier(AuthSettings(token_hmac_secret=SECRET, token_leeway_s=30.0), clock=frozen_clock)
    assert verifier._leeway_s == 30.0


async def test_verifier_start_and_close_are_noops_without_jwks() -> None:
    """A verifier without a key set starts and closes without any background work."""
    verifier = _verifier()
    await verifier.start()
    await verifier.close()
    assert (await verifier.verify_connection(_hs({"sub": "a"}))).user == "a"


# --------------------------------------------------------------------------- issuing with keys


async def test_issue_token_signs_with_rsa_private_key_and_kid(
    rsa_private_key: rsa.RSAPrivateKey, rsa_public_pem: str
) -> None:
    """A private RSA key signs RS256 by default, with the ``kid`` header when given."""
    token = issue_token(rsa_private_key, user="rob", kid="k1", now=NOW)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": "k1", "typ": "JWT"}
    verifier = _verifier(token_hmac_secret="", token_rsa_public_key=rsa_public_pem)
    assert (await verifier.verify_connection(token)).user == "rob"


@pytest.mark.parametrize(("curve", "algorithm"), [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384")])
def test_issue_token_picks_es_algorithm_from_curve(curve: ec.EllipticCurve, algorithm: str) -> None:
    """An EC private key signs with the ES* algorithm of its curve."""
    token = issue_token(ec.generate_private_key(curve), user="e")
    assert jwt.get_unverified_header(token)["alg"] == algorithm


async def test_issue_subscription_token_signs_eddsa_with_ed25519_key(
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    """An Ed25519 private key signs EdDSA subscription tokens the verifier accepts."""
    token = issue_subscription_token(ed25519_private_key, user="u", channel="$c:1", now=NOW)
    verifier = _verifier(
        token_hmac_secret="", token_ed25519_public_key=_ed25519_public_pem(ed25519_private_key)
    )
    claims = await verifier.verify_subscription(token)
    assert (claims.user, claims.channel) == ("u", "$c:1")


def test_issue_token_rejects_algorithm_that_does_not_fit_the_key(
    ed25519_private_key: ed25519.Ed25519PrivateKey, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    """A key only signs the algorithms of its own family."""
    with pytest.raises(ValueError, match="cannot sign"):
        issue_token(ed25519_private_key, user="u", algorithm="RS256")
    with pytest.raises(ValueError, match="cannot sign"):
        issue_token(rsa_private_key, user="u", algorithm="HS256")
    assert (
        jwt.get_unverified_header(issue_token(rsa_private_key, user="u", algorithm="RS512"))["alg"] == "RS512"
    )


def test_load_signing_key_reads_pkcs8_pem(ed25519_private_key: ed25519.Ed25519PrivateKey) -> None:
    """An unencrypted PKCS#8 PEM private key loads as a signing key."""
    pem = ed25519_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert isinstance(load_signing_key(pem), ed25519.Ed25519PrivateKey)


def test_load_signing_key_refuses_public_key_without_quoting_it(rsa_public_pem: str) -> None:
    """A public key is not a signing key; the error never repeats the key material."""
    with pytest.raises(ValueError, match="private key") as excinfo:
        load_signing_key(rsa_public_pem.encode())
    assert "BEGIN" not in str(excinfo.value)
