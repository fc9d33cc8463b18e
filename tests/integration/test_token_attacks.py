"""Forged, misused and stale tokens against a real ``wirehub serve`` process, codes asserted exactly.

The gateway trusts every kind of key at once: the HMAC secret and a previous one (rotation), an
RSA and an Ed25519 PEM key, and a JWKS served by a real HTTP server on a loopback port; it
checks ``aud`` and ``iss``. Every attack must fail with the code a Centrifugo SDK expects:
3500 (invalid token, no reconnect) for anything forged or misused, error 109 for a token that
is expired or not valid yet (the SDK fetches a new one), 103 for a bad subscription token, and
the temporary error 100 when the key server is down (the SDK retries later).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from websockets.exceptions import ConnectionClosed

from tests.gateway_process import SECRET, GatewayProcess
from tests.helpers import running_gateway
from tests.jwks_server import JwksServer, jwk_of
from tests.raw_client import RawClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

AUDIENCE = "wirehub-tests"
ISSUER = "https://issuer.example"
PREVIOUS_SECRET = "previous-secret-being-rotated-out-0123456789-long-enough-for-hs512"
RETIRED_SECRET = "retired-secret-no-longer-trusted-0123456789"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()
JWKS_EC_KEY = ec.generate_private_key(ec.SECP256R1())
JWKS_ED_KEY = ed25519.Ed25519PrivateKey.generate()
JWKS_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

CONFIG = """
[namespaces.open]
allow_subscribe_for_client = true

[namespaces.locked]
"""


def public_pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# --------------------------------------------------------------------------- fixtures and helpers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer(
        [
            jwk_of(JWKS_EC_KEY.public_key(), "ec-1"),
            jwk_of(JWKS_ED_KEY.public_key(), "ed-1"),
            jwk_of(JWKS_RSA_KEY.public_key(), "rsa-1"),
        ]
    )
    await server.start()
    yield server
    await server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory, jwks: JwksServer) -> AsyncIterator[GatewayProcess]:
    env = {
        "WIREHUB_AUTH_TOKEN_HMAC_PREVIOUS_SECRET": PREVIOUS_SECRET,
        "WIREHUB_AUTH_TOKEN_RSA_PUBLIC_KEY": public_pem(RSA_KEY),
        "WIREHUB_AUTH_TOKEN_ED25519_PUBLIC_KEY": public_pem(ED_KEY),
        "WIREHUB_AUTH_TOKEN_JWKS_URL": jwks.url,
        # Every unknown kid refetches the set, so rotation and outages are seen at once.
        "WIREHUB_AUTH_TOKEN_JWKS_MIN_REFRESH_INTERVAL_S": "0",
        "WIREHUB_AUTH_TOKEN_AUDIENCE": AUDIENCE,
        "WIREHUB_AUTH_TOKEN_ISSUER": ISSUER,
    }
    async with running_gateway(tmp_path_factory.mktemp("tokens"), config=CONFIG, env=env) as gateway:
        yield gateway


def claims(user: str = "alice", **extra: Any) -> dict[str, Any]:
    """Valid connection claims: the right audience and issuer, an hour to live."""
    return {"sub": user, "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 3600} | extra


def token(key: Any = SECRET, algorithm: str = "HS256", kid: str = "", **extra: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**extra), key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def by_hand(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token built without PyJWT, which refuses to make the dangerous ones."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    return f"{signing_input}.{b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())}"


async def connect_outcome(gw: GatewayProcess, credential: str) -> dict[str, Any] | int:
    """The connect reply, or the close code if the gateway closed the connection instead."""
    client = await RawClient.open(gw.ws_url)
    try:
        reply = await client.connect(credential)
    except ConnectionClosed:
        code, _ = await client.closed()
        return code
    finally:
        await client.close()
    return reply


async def assert_connects(gw: GatewayProcess, credential: str) -> None:
    outcome = await connect_outcome(gw, credential)
    assert isinstance(outcome, dict), outcome
    assert "client" in outcome["connect"], outcome


async def assert_closed_with(gw: GatewayProcess, credential: str, code: int) -> None:
    assert await connect_outcome(gw, credential) == code


async def assert_error(gw: GatewayProcess, credential: str, code: int, *, temporary: bool = False) -> None:
    outcome = await connect_outcome(gw, credential)
    assert isinstance(outcome, dict), outcome
    error = outcome.get("error")
    assert error is not None, outcome
    assert error["code"] == code, outcome
    assert error.get("temporary", False) is temporary, outcome


# --------------------------------------------------------------------------- every key kind works


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param(lambda: token(SECRET, "HS256"), id="hs256-current-secret"),
        pytest.param(lambda: token(PREVIOUS_SECRET, "HS512"), id="hs512-previous-secret"),
        pytest.param(lambda: token(RSA_KEY, "RS256"), id="rs256-pem"),
        pytest.param(lambda: token(ED_KEY, "EdDSA"), id="eddsa-pem"),
        pytest.param(lambda: token(JWKS_EC_KEY, "ES256", kid="ec-1"), id="es256-jwks"),
        pytest.param(lambda: token(JWKS_ED_KEY, "EdDSA", kid="ed-1"), id="eddsa-jwks"),
        pytest.param(lambda: token(JWKS_RSA_KEY, "RS512", kid="rsa-1"), id="rs512-jwks"),
    ],
)
async def test_connect_succeeds_with_every_configured_kind_of_key(
    gw: GatewayProcess, credential: Any
) -> None:
    """HMAC (current and previous), RSA and Ed25519 PEM keys, and JWKS keys by kid all verify."""
    await assert_connects(gw, credential())


async def test_connect_succeeds_with_key_added_to_jwks_after_start(
    gw: GatewayProcess, jwks: JwksServer
) -> None:
    """A key published after the gateway fetched the set works on first use (rotation)."""
    kid = f"new-{uuid.uuid4().hex[:8]}"
    new_key = ed25519.Ed25519PrivateKey.generate()
    jwks.set_keys([*jwks.document["keys"], jwk_of(new_key.public_key(), kid)])
    await assert_connects(gw, token(new_key, "EdDSA", kid=kid))


# --------------------------------------------------------------------------- forged tokens: 3500


async def test_connect_closes_with_3500_when_alg_is_none(gw: GatewayProcess) -> None:
    """An unsigned ``alg: none`` token is refused."""
    await assert_closed_with(gw, by_hand({"alg": "none", "typ": "JWT"}, claims(), None), 3500)


@pytest.mark.parametrize("alg", ["None", "NONE", "nOnE"])
async def test_connect_closes_with_3500_when_alg_is_none_in_any_case(gw: GatewayProcess, alg: str) -> None:
    """Case variants of ``none`` are refused too."""
    await assert_closed_with(gw, by_hand({"alg": alg, "typ": "JWT"}, claims(), None), 3500)


async def test_connect_closes_with_3500_when_rsa_public_key_is_used_as_hmac_secret(
    gw: GatewayProcess,
) -> None:
    """HS/RS confusion: an HS256 token signed with the configured RSA public PEM is refused."""
    forged = by_hand({"alg": "HS256", "typ": "JWT"}, claims("mallory"), public_pem(RSA_KEY).encode())
    await assert_closed_with(gw, forged, 3500)


async def test_connect_closes_with_3500_when_jwks_key_is_used_as_hmac_secret(gw: GatewayProcess) -> None:
    """HS/RS confusion through the key set: HS256 naming an RSA kid, signed with its public PEM."""
    forged = by_hand(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims("mallory"), public_pem(JWKS_RSA_KEY).encode()
    )
    await assert_closed_with(gw, forged, 3500)


async def test_connect_closes_with_3500_when_payload_is_tampered(gw: GatewayProcess) -> None:
    """Changing the payload of a validly signed token breaks its signature."""
    header, _, signature = token(RSA_KEY, "RS256", user="alice").split(".")
    tampered = b64(json.dumps(claims("admin")).encode())
    await assert_closed_with(gw, f"{header}.{tampered}.{signature}", 3500)


async def test_connect_closes_with_3500_when_signed_with_retired_secret(gw: GatewayProcess) -> None:
    """Only the current and the previous secret verify; an older one is refused."""
    await assert_closed_with(gw, token(RETIRED_SECRET, "HS256"), 3500)


async def test_connect_closes_with_3500_when_kid_is_unknown(gw: GatewayProcess) -> None:
    """A kid the key set does not have, even after a refetch, is refused."""
    await assert_closed_with(gw, token(JWKS_RSA_KEY, "RS256", kid="no-such-kid"), 3500)


async def test_connect_closes_with_3500_when_kid_names_key_of_another_signer(gw: GatewayProcess) -> None:
    """A token naming a real kid but signed by an attacker's key of the same type is refused."""
    await assert_closed_with(gw, token(ec.generate_private_key(ec.SECP256R1()), "ES256", kid="ec-1"), 3500)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"aud": "another-service"}, id="wrong-aud"),
        pytest.param({"aud": None}, id="no-aud"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-iss"),
        pytest.param({"iss": None}, id="no-iss"),
    ],
)
async def test_connect_closes_with_3500_when_audience_or_issuer_wrong(
    gw: GatewayProcess, extra: dict[str, Any]
) -> None:
    """With ``aud`` and ``iss`` configured, a token for another audience or issuer is refused."""
    payload = {k: v for k, v in (claims() | extra).items() if v is not None}
    await assert_closed_with(gw, jwt.encode(payload, SECRET, algorithm="HS256"), 3500)


async def test_connect_closes_with_3500_when_subscription_token_is_used(gw: GatewayProcess) -> None:
    """A validly signed subscription token (it has ``channel``) cannot open a connection."""
    await assert_closed_with(gw, token(SECRET, "HS256", channel="open:room"), 3500)


# --------------------------------------------------------------------------- stale tokens: 109


async def test_connect_fails_with_109_when_token_expired(gw: GatewayProcess) -> None:
    """An expired token is answered with 109 so the SDK fetches a fresh one."""
    await assert_error(gw, token(SECRET, "HS256", exp=int(time.time()) - 60), 109)


async def test_connect_fails_with_109_when_token_not_valid_yet(gw: GatewayProcess) -> None:
    """A token whose ``nbf`` is in the future is answered like an expired one (109), as Centrifugo does."""
    await assert_error(gw, token(RSA_KEY, "RS256", nbf=int(time.time()) + 600), 109)


# --------------------------------------------------------------------------- key server down: 100


async def test_connect_fails_with_temporary_100_when_key_server_is_down(
    gw: GatewayProcess, jwks: JwksServer
) -> None:
    """While the JWKS endpoint fails, a token with a new kid gets a temporary error, not 3500."""
    jwks.status = 503
    try:
        await assert_error(gw, token(JWKS_RSA_KEY, "RS256", kid="rsa-next"), 100, temporary=True)
    finally:
        jwks.status = 200
    # Keys fetched before the outage keep working all along.
    await assert_connects(gw, token(JWKS_RSA_KEY, "RS256", kid="rsa-1"))


# --------------------------------------------------------------------------- subscription tokens


async def subscribe_outcome(gw: GatewayProcess, channel: str, sub_token: str) -> dict[str, Any] | int:
    client = await RawClient.open(gw.ws_url)
    try:
        assert "connect" in await client.connect(token(SECRET, "HS256", user="alice"))
        try:
            return await client.call("subscribe", {"channel": channel, "token": sub_token})
        except ConnectionClosed:
            code, _ = await client.closed()
            return code
    finally:
        await client.close()


async def test_subscribe_succeeds_with_subscription_token_from_jwks_key(gw: GatewayProcess) -> None:
    """A subscription token signed by a key-set key opens a locked ``$`` channel."""
    sub = token(JWKS_ED_KEY, "EdDSA", kid="ed-1", channel="$locked:vault")
    reply = await subscribe_outcome(gw, "$locked:vault", sub)
    assert isinstance(reply, dict), reply
    assert "subscribe" in reply, reply


async def test_subscribe_fails_with_103_when_connection_token_is_used(gw: GatewayProcess) -> None:
    """A connection token (no ``channel`` claim) is not a subscription token: 103."""
    reply = await subscribe_outcome(gw, "$locked:vault", token(SECRET, "HS256"))
    assert isinstance(reply, dict), reply
    assert reply["error"]["code"] == 103, reply


async def test_subscribe_fails_with_103_when_subscription_token_is_forged(gw: GatewayProcess) -> None:
    """A subscription token signed with the RSA public key as HMAC secret is refused with 103."""
    forged = by_hand(
        {"alg": "HS256", "typ": "JWT"}, claims(channel="$locked:vault"), public_pem(RSA_KEY).encode()
    )
    reply = await subscribe_outcome(gw, "$locked:vault", forged)
    assert isinstance(reply, dict), reply
    assert reply["error"]["code"] == 103, reply


async def test_subscribe_fails_with_109_when_subscription_token_not_valid_yet(gw: GatewayProcess) -> None:
    """A subscription token whose ``nbf`` is in the future gets 109, so the SDK asks for a new one."""
    sub = token(SECRET, "HS256", channel="$locked:vault", nbf=int(time.time()) + 600)
    reply = await subscribe_outcome(gw, "$locked:vault", sub)
    assert isinstance(reply, dict), reply
    assert reply["error"]["code"] == 109, reply
