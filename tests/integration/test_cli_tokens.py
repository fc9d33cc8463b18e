"""``wirehub token`` makes tokens that a real gateway and the real centrifuge-python SDK accept.

With ``aud``/``iss`` checks configured, with ``--channel`` for subscription tokens, and with
``--private-key``/``--kid`` for gateways that trust an Ed25519 key through a JWKS.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import jwt
import pytest
from centrifuge import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.cli_helpers import AUTH_ENV, cli_token, run_cli
from tests.conftest import StartGateway
from tests.gateway_process import SECRET, GatewayProcess
from tests.jwks_server import JwksServer, jwk_of
from tests.raw_client import RawClient

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
async def auth_gateway(start_module_gateway: StartGateway) -> GatewayProcess:
    """A gateway that checks the ``aud`` and ``iss`` of ``AUTH_ENV``, shared by the module."""
    return await start_module_gateway(env=AUTH_ENV)


async def test_token_connects_when_gateway_checks_audience_and_issuer(
    auth_gateway: GatewayProcess, tmp_path: Path
) -> None:
    """The CLI adds the configured ``aud`` and ``iss``, so its tokens pass the gateway's checks."""
    token = await cli_token(tmp_path, "--user", "ann", env=AUTH_ENV)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="chat-app")
    assert claims["iss"] == "https://auth.example"
    client = await RawClient.open(auth_gateway.ws_url)
    try:
        assert "client" in (await client.connect(token))["connect"]
    finally:
        await client.close()


async def test_token_with_channel_opens_private_channel_for_the_sdk(
    auth_gateway: GatewayProcess, tmp_path: Path
) -> None:
    """centrifuge-python connects with a CLI token and subscribes with a CLI ``--channel`` token."""
    channel = "$chat:cli-private"
    token, sub_token = await asyncio.gather(
        cli_token(tmp_path, "--user", "ann", env=AUTH_ENV),
        cli_token(tmp_path, "--user", "ann", "--channel", channel, env=AUTH_ENV),
    )
    assert jwt.decode(sub_token, options={"verify_signature": False})["channel"] == channel
    client = Client(auth_gateway.ws_url, token=token)
    sub = client.new_subscription(channel, token=sub_token)
    try:
        await client.connect()
        await sub.subscribe()
        async with asyncio.timeout(TIMEOUT_S):
            await client.ready()
            await sub.ready()
        await sub.publish({"text": "from the cli token"})
    finally:
        await client.disconnect()


async def test_token_with_private_key_and_kid_is_accepted_through_jwks(tmp_path: Path) -> None:
    """``--private-key`` with ``--kid`` signs EdDSA tokens a gateway verifies with its JWKS."""
    key = ed25519.Ed25519PrivateKey.generate()
    key_path = tmp_path / "signing.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    jwks = JwksServer([jwk_of(key.public_key(), "cli-ed")])
    await jwks.start()
    env = {"WIREHUB_AUTH_TOKEN_HMAC_SECRET": "", "WIREHUB_AUTH_TOKEN_JWKS_URL": jwks.url}
    gw = GatewayProcess(tmp_path, env=env)
    await gw.start()
    try:
        token = await cli_token(
            tmp_path, "--user", "kim", "--private-key", str(key_path), "--kid", "cli-ed", env=env
        )
        assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
        client = await RawClient.open(gw.ws_url)
        try:
            assert "client" in (await client.connect(token))["connect"]
        finally:
            await client.close()
        # With only a JWKS configured, no HMAC secret is generated: HMAC tokens are refused.
        assert not (tmp_path / "wirehub.secret").exists()
    finally:
        await gw.kill()
        await jwks.close()


def test_token_refuses_private_key_file_holding_a_public_key(tmp_path: Path) -> None:
    """A public key given as ``--private-key`` is reported, not quoted."""
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "public.pem"
    path.write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = run_cli("token", "--user", "u", "--private-key", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "--private-key" in result.stderr
    assert "BEGIN" not in result.stderr


def test_token_refuses_algorithm_that_does_not_fit_the_secret(tmp_path: Path) -> None:
    """An HMAC secret cannot sign RS256; the CLI says so and exits 2."""
    result = run_cli(
        "token",
        "--user",
        "u",
        "--algorithm",
        "RS256",
        cwd=tmp_path,
        env={"WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET},
    )
    assert result.returncode == 2
    assert "RS256" in result.stderr


def test_token_refuses_when_only_jwks_is_configured_and_no_private_key_given(tmp_path: Path) -> None:
    """Without a secret to sign with, the CLI asks for ``--private-key`` instead of inventing one."""
    result = run_cli(
        "token", "--user", "u", cwd=tmp_path, env={"WIREHUB_AUTH_TOKEN_JWKS_URL": "https://keys.example/jwks"}
    )
    assert result.returncode == 2
    assert "--private-key" in result.stderr
