"""``JwtVerifier`` with a JWKS URL against a real HTTP key server on a loopback port.

Fetching, the refetch on an unknown ``kid`` and its rate limit, sharing one fetch among many
tokens, the background refresh, and an endpoint that fails or hangs. Waits are on the server's
request counter and on replies, never on sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.jwks_server import JwksServer, jwk_of
from wirehub.auth.jwks import JwksKeySet
from wirehub.auth.jwt import JwtVerifier
from wirehub.config import AuthSettings
from wirehub.errors import KeysUnavailable, TokenError

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
TIMEOUT_S = 10.0


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    jwks = JwksServer([jwk_of(RSA_KEY.public_key(), "rsa-1")])
    await jwks.start()
    yield jwks
    await jwks.close()


async def verifier_for(
    server: JwksServer, *, min_refresh_interval_s: float = 0.0, **settings: Any
) -> JwtVerifier:
    """A started verifier on ``server``'s key set (closed by the test)."""
    auth = dataclasses.replace(
        AuthSettings(),
        token_jwks_url=server.url,
        token_jwks_min_refresh_interval_s=min_refresh_interval_s,
        **settings,
    )
    return JwtVerifier(auth)


def signed(key: Any, kid: str, algorithm: str, **claims: Any) -> str:
    return jwt.encode({"sub": "alice"} | claims, key, algorithm=algorithm, headers={"kid": kid})


def hs256_by_hand(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT signed with any bytes as the secret, as an attacker would make it."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def test_jwks_verifier_accepts_rsa_ec_and_ed25519_keys_by_kid(server: JwksServer) -> None:
    """Each token is checked with the key its ``kid`` names, whatever the key's type."""
    server.set_keys(
        [
            jwk_of(RSA_KEY.public_key(), "rsa-1"),
            jwk_of(EC_KEY.public_key(), "ec-1"),
            jwk_of(ED_KEY.public_key(), "ed-1"),
        ]
    )
    verifier = await verifier_for(server)
    try:
        assert (await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS384"))).user == "alice"
        assert (await verifier.verify_connection(signed(EC_KEY, "ec-1", "ES256"))).user == "alice"
        sub = await verifier.verify_subscription(signed(ED_KEY, "ed-1", "EdDSA", channel="$c"))
        assert sub.channel == "$c"
    finally:
        await verifier.close()
    assert server.requests == 1


async def test_jwks_verifier_refuses_new_kid_without_fetch_when_set_fetched_recently(
    server: JwksServer,
) -> None:
    """Within the min refresh interval an unknown kid fails at once, even if the server has it now."""
    verifier = await verifier_for(server, min_refresh_interval_s=3600.0)
    try:
        assert (await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))).user == "alice"
        assert server.requests == 1
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        server.set_keys([jwk_of(RSA_KEY.public_key(), "rsa-1"), jwk_of(new_key.public_key(), "rsa-2")])
        with pytest.raises(TokenError, match="unknown key id"):
            await verifier.verify_connection(signed(new_key, "rsa-2", "RS256"))
        assert server.requests == 1
    finally:
        await verifier.close()


async def test_jwks_verifier_accepts_rotated_key_when_refetch_allowed(server: JwksServer) -> None:
    """After a rotation, the first token with the new kid refetches the set and verifies."""
    verifier = await verifier_for(server)
    try:
        assert (await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))).user == "alice"
        new_key = ed25519.Ed25519PrivateKey.generate()
        server.set_keys([jwk_of(new_key.public_key(), "ed-2")])
        assert (await verifier.verify_connection(signed(new_key, "ed-2", "EdDSA"))).user == "alice"
        assert server.requests == 2
        # The old key left the set with that fetch: its tokens now fail.
        with pytest.raises(TokenError, match="unknown key id"):
            await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))
    finally:
        await verifier.close()


async def test_jwks_verifier_rate_limits_refetches_for_unknown_kids(server: JwksServer) -> None:
    """Made-up kids cost at most one fetch per min interval: later ones fail without a request."""
    verifier = await verifier_for(server, min_refresh_interval_s=3600.0)
    try:
        for n in range(20):
            with pytest.raises(TokenError, match="unknown key id"):
                await verifier.verify_connection(signed(RSA_KEY, f"made-up-{n}", "RS256"))
    finally:
        await verifier.close()
    assert server.requests == 1


async def test_jwks_verifier_shares_one_fetch_among_concurrent_tokens(server: JwksServer) -> None:
    """Many tokens arriving while the set is being fetched wait for that one fetch."""
    server.gate.clear()
    verifier = await verifier_for(server)
    try:
        tokens = [signed(RSA_KEY, "rsa-1", "RS256", sub=f"u{n}") for n in range(20)]
        waiting = asyncio.gather(*(verifier.verify_connection(t) for t in tokens))
        await server.wait_for_requests(1)
        server.gate.set()
        async with asyncio.timeout(TIMEOUT_S):
            claims = await waiting
    finally:
        await verifier.close()
    assert [c.user for c in claims] == [f"u{n}" for n in range(20)]
    assert server.requests == 1


async def test_jwks_verifier_refuses_key_of_another_family(server: JwksServer) -> None:
    """HS/RS confusion: an HS256 token signed with the RSA key's public PEM, naming its kid, fails."""
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # PyJWT refuses to use a PEM key as an HMAC secret, so the attacker's token is built by hand.
    token = hs256_by_hand({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, {"sub": "mallory"}, public_pem)
    verifier = await verifier_for(server, token_hmac_secret="some-hmac-secret-0123456789abcdef")
    try:
        with pytest.raises(TokenError, match="does not fit"):
            await verifier.verify_connection(token)
    finally:
        await verifier.close()


async def test_jwks_verifier_refuses_algorithm_other_than_jwk_alg(server: JwksServer) -> None:
    """A JWK that names its ``alg`` verifies only that algorithm, even within the family."""
    server.set_keys([jwk_of(RSA_KEY.public_key(), "rsa-1", alg="RS256")])
    verifier = await verifier_for(server)
    try:
        assert (await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))).user == "alice"
        with pytest.raises(TokenError, match="does not fit"):
            await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS512"))
    finally:
        await verifier.close()


async def test_jwks_verifier_uses_configured_keys_when_token_has_no_kid(server: JwksServer) -> None:
    """Tokens without a ``kid`` are checked with the configured PEM keys or secret, not the set."""
    secret = "hmac-beside-jwks-0123456789abcdef0123"
    verifier = await verifier_for(server, token_hmac_secret=secret)
    try:
        token = jwt.encode({"sub": "hs"}, secret, algorithm="HS256")
        assert (await verifier.verify_connection(token)).user == "hs"
        with pytest.raises(TokenError, match="no key"):
            await verifier.verify_connection(jwt.encode({"sub": "rs"}, RSA_KEY, algorithm="RS256"))
    finally:
        await verifier.close()
    assert server.requests == 0


async def test_jwks_verifier_raises_keys_unavailable_when_endpoint_fails(server: JwksServer) -> None:
    """An endpoint answering 500 is a temporary failure, also for lookups within the min interval."""
    server.status = 500
    verifier = await verifier_for(server, min_refresh_interval_s=3600.0)
    try:
        with pytest.raises(KeysUnavailable):
            await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))
        with pytest.raises(KeysUnavailable):
            await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))
    finally:
        await verifier.close()
    assert server.requests == 1


async def test_jwks_verifier_keeps_last_good_keys_when_endpoint_fails(server: JwksServer) -> None:
    """A failed refresh does not drop the keys fetched before it."""
    verifier = await verifier_for(server)
    try:
        assert (await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))).user == "alice"
        server.status = 503
        with pytest.raises(KeysUnavailable):
            await verifier.verify_connection(signed(RSA_KEY, "unknown", "RS256"))
        assert (await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))).user == "alice"
    finally:
        await verifier.close()


async def test_jwks_verifier_raises_keys_unavailable_when_fetch_times_out(server: JwksServer) -> None:
    """A key server that never answers fails the token after the fetch timeout, temporarily."""
    server.gate.clear()
    verifier = await verifier_for(server, token_jwks_timeout_s=0.2)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            with pytest.raises(KeysUnavailable):
                await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))
    finally:
        await verifier.close()


async def test_jwks_verifier_raises_keys_unavailable_when_nothing_listens() -> None:
    """A JWKS URL on a closed port is a temporary failure, not an invalid token."""
    server = JwksServer()
    await server.start()
    url = server.url
    await server.close()
    verifier = JwtVerifier(AuthSettings(token_jwks_url=url))
    try:
        with pytest.raises(KeysUnavailable):
            await verifier.verify_connection(signed(RSA_KEY, "rsa-1", "RS256"))
    finally:
        await verifier.close()


async def test_jwks_key_set_refreshes_in_background_after_start(server: JwksServer) -> None:
    """``start()`` fetches the set at once, then again every refresh interval, with no token needed."""
    keys = JwksKeySet(server.url, refresh_interval_s=0.05, min_refresh_interval_s=3600.0)
    await keys.start()
    try:
        await server.wait_for_requests(1)
        ed = ed25519.Ed25519PrivateKey.generate()
        server.set_keys([jwk_of(ed.public_key(), "ed-9")])
        async with asyncio.timeout(TIMEOUT_S):
            while keys.get("ed-9") is None:
                await server.wait_for_requests(server.requests + 1)
        assert keys.get("rsa-1") is None
    finally:
        await keys.close()


async def test_jwks_key_set_close_stops_background_fetches(server: JwksServer) -> None:
    """After ``close()`` neither the refresh loop nor a fetch it started is left running."""
    server.gate.clear()  # the loop's next fetch hangs: close() must cancel it, not wait for it
    keys = JwksKeySet(server.url, refresh_interval_s=0.01)
    await keys.start()
    await server.wait_for_requests(1)
    async with asyncio.timeout(TIMEOUT_S):
        await keys.close()
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert not names & {"jwks-refresh", "jwks-fetch"}
