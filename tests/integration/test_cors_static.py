"""CORS on ``/auth/*`` for allowed origins only, and ``http.static_dir`` on the public port.

Tests of the default origin policy share the module's gateway; the others configure their own.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import unique


async def preflight(gateway: GatewayProcess, path: str, origin: str) -> aiohttp.ClientResponse:
    async with (
        aiohttp.ClientSession() as http,
        http.options(
            gateway.http_url + path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        ) as response,
    ):
        await response.read()
        return response


async def test_auth_preflight_and_answers_carry_cors_headers_for_a_loopback_page(
    module_gateway: GatewayProcess,
) -> None:
    """On the loopback defaults a page on another loopback port may register and log in."""
    origin = "http://127.0.0.1:9000"
    response = await preflight(module_gateway, "/auth/login", origin)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    async with aiohttp.ClientSession() as http:
        body = {"username": unique("carol"), "password": "correct horse battery"}
        async with http.post(
            module_gateway.http_url + "/auth/register", json=body, headers={"Origin": origin}
        ) as reply:
            assert reply.status == 201
            assert reply.headers["Access-Control-Allow-Origin"] == origin
        async with http.post(
            module_gateway.http_url + "/auth/login", json={"username": 1}, headers={"Origin": origin}
        ) as bad:
            assert bad.status == 400  # errors too, or the page could not read why
            assert bad.headers["Access-Control-Allow-Origin"] == origin


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost.evil.example"])
async def test_auth_gives_no_cors_headers_to_other_origins(
    module_gateway: GatewayProcess, origin: str
) -> None:
    response = await preflight(module_gateway, "/auth/login", origin)
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    async with (
        aiohttp.ClientSession() as http,
        http.post(module_gateway.http_url + "/auth/login", json={}, headers={"Origin": origin}) as reply,
    ):
        assert "Access-Control-Allow-Origin" not in reply.headers


async def test_allowed_origins_replace_the_default_for_cors(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(env={"WIREHUB_SERVER_ALLOWED_ORIGINS": "https://app.example"})
    assert (await preflight(gateway, "/auth/login", "https://app.example")).status == 204
    assert (await preflight(gateway, "/auth/login", "http://127.0.0.1:9000")).status == 403


async def test_server_api_and_metrics_never_send_cors_headers(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(env={"WIREHUB_SERVER_ALLOWED_ORIGINS": "*"})
    headers = {"Origin": "http://127.0.0.1:9000", "Access-Control-Request-Method": "POST"}
    async with aiohttp.ClientSession() as http:
        for method, path in (("OPTIONS", "/api/publish"), ("POST", "/api/publish"), ("GET", "/metrics")):
            async with http.request(method, gateway.http_url + path, headers=headers) as reply:
                assert not [h for h in reply.headers if h.lower().startswith("access-control-")], path


async def test_static_dir_serves_files_and_nothing_outside(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    (site / "js").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>chat</title>", encoding="utf-8")
    (site / "js" / "app.js").write_text("export const x = 1;\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (site / "link").symlink_to(tmp_path / "secret.txt")
    gateway = await start_gateway(env={"WIREHUB_HTTP_STATIC_DIR": str(site)})
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.http_url + "/") as index:
            assert index.status == 200
            assert index.content_type == "text/html"
            assert "<title>chat</title>" in await index.text()
        async with http.get(gateway.http_url + "/js/app.js") as script:
            assert script.status == 200
            assert script.content_type == "text/javascript"  # module scripts need a JS type
        for path in (
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/js/..%2f..%2fsecret.txt",
            "/link",
            "/missing",
            "/js/",
        ):
            async with http.get(gateway.http_url + path) as missing:
                assert missing.status == 404, path
        async with http.get(gateway.http_url + "/health") as health:
            assert health.status == 200  # other routes come first


async def test_static_dir_must_be_a_directory(start_gateway: StartGateway, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"http\.static_dir"):
        await start_gateway(env={"WIREHUB_HTTP_STATIC_DIR": str(tmp_path / "nowhere")})
