"""The ``wirehub`` command: ``token``, ``check`` and the generated secret shared with ``serve``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jwt

from tests.cli_helpers import run_cli, run_cold
from tests.gateway_process import GatewayProcess
from tests.raw_client import RawClient


def test_check_accepts_a_valid_config(tmp_path: Path) -> None:
    """``wirehub check`` exits 0 for a valid file: ``python -m wirehub.cli`` started afresh, as
    the other tests' warm processes are not (``tests/warm_gateway.py``)."""
    config = tmp_path / "ok.toml"
    config.write_text("[server]\nport = 9000\n[namespaces.game]\npresence = true\n")
    result = run_cold("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_names_every_wrong_key(tmp_path: Path) -> None:
    """``wirehub check`` exits 2 and names each offending key of a bad file."""
    config = tmp_path / "bad.toml"
    config.write_text(
        '[server]\nport = "eighty"\n[client]\nping_intervall_s = 3\n[namespaces.chat]\nhistory_size = 10\n'
    )
    result = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "client.ping_intervall_s: unknown key" in result.stderr
    assert "namespaces.chat.history_ttl_s" in result.stderr


def test_token_prints_a_jwt_with_the_requested_claims(tmp_path: Path) -> None:
    """``wirehub token`` signs sub, exp, info and channels with the configured secret."""
    secret = "cli-test-secret-0123456789abcdef0123"
    result = run_cli(
        "token",
        "--user",
        "alice",
        "--ttl",
        "60",
        "--info",
        '{"name": "Alice"}',
        "--channels",
        "news,chat:a",
        cwd=tmp_path,
        env={"WIREHUB_AUTH_TOKEN_HMAC_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["info"] == {"name": "Alice"}
    assert claims["channels"] == ["news", "chat:a"]
    assert 0 < claims["exp"] - claims.get("iat", claims["exp"] - 60) <= 60


def test_token_rejects_info_that_is_not_json(tmp_path: Path) -> None:
    """A malformed ``--info`` is reported instead of signed."""
    result = run_cli(
        "token",
        "--user",
        "a",
        "--info",
        "{nope",
        cwd=tmp_path,
        env={"WIREHUB_AUTH_TOKEN_HMAC_SECRET": "s" * 32},
    )
    assert result.returncode == 2
    assert "--info" in result.stderr


async def test_serve_and_token_share_the_generated_secret(tmp_path: Path) -> None:
    """With no secret configured, ``serve`` generates one and ``token`` signs with the same."""
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    gw = GatewayProcess(
        workdir, env={"WIREHUB_STORE_URL": "sqlite:///wirehub.db", "WIREHUB_AUTH_TOKEN_HMAC_SECRET": ""}
    )
    await gw.start()
    try:
        assert (workdir / "wirehub.secret").exists()
        result = await asyncio.to_thread(run_cli, "token", "--user", "zoe", cwd=workdir)
        assert result.returncode == 0, result.stderr
        raw = await RawClient.open(gw.ws_url)
        reply = await raw.connect(result.stdout.strip())
        await raw.close()
        assert "client" in reply["connect"], reply
    finally:
        await gw.kill()
