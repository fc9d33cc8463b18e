"""Fixtures of the browser tests: the chat example served by a real gateway, and Debian's chromium.

The gateway runs ``examples/chat`` on its own configuration with fixed ports (free loopback ports
picked by the fixture), so that a restart comes back where the open pages reconnect to. Chromium
is the system's (``/usr/bin/chromium``, installed by scripts/test), driven by Playwright.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from wirehub.server.http_static import StaticFiles

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chat"
WEB = EXAMPLE / "web"
APP = "examples.chat.server:app"
CHROMIUM = "/usr/bin/chromium"
API_KEY = "e2e-server-api-key"
PAGE_TIMEOUT_MS = 15_000
"""The bound of every wait on the page: a state that has not appeared by then is a failure."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Chat:
    """The chat example's gateway, and the address a page on the gateway opens."""

    gateway: GatewayProcess

    def page_url(self, base: str | None = None, **extra: str) -> str:
        """The page on the gateway's HTTP port, or on ``base`` (another origin) calling it."""
        query = {"ws": self.gateway.ws_url, **extra}
        if base is not None:
            query["api"] = self.gateway.http_url
        return f"{base or self.gateway.http_url}/?{urlencode(query)}"


async def start_chat(start_gateway: StartGateway, env: Mapping[str, str] | None = None) -> Chat:
    if not (WEB / "node_modules" / "centrifuge").is_dir():
        raise RuntimeError(
            "examples/chat/web/node_modules is missing: run `npm ci` there (scripts/test does)"
        )
    gateway = await start_gateway(
        config=(EXAMPLE / "wirehub.toml").read_text(encoding="utf-8"),
        app=APP,
        args=["--log-format", "json"],
        env={
            "WIREHUB_SERVER_PORT": str(free_port()),
            "WIREHUB_HTTP_PORT": str(free_port()),
            "WIREHUB_API_KEY": API_KEY,
            "WIREHUB_ACCOUNTS_BCRYPT_COST": "4",  # a test's registrations, not a password store
            **(env or {}),
        },
    )
    return Chat(gateway)


@pytest.fixture
async def chat(start_gateway: StartGateway) -> Chat:
    return await start_chat(start_gateway)


@pytest_asyncio.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """One Chromium for the module's tests: each test works in browser contexts of its own."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The module's Chromium; the contexts (cookies, storage, pages) a test opened are closed
    when it ends, so the next test starts from none."""
    assert not chromium.contexts
    yield chromium
    for context in chromium.contexts:
        await context.close()


@pytest_asyncio.fixture
async def other_origin() -> AsyncIterator[str]:
    """The same page served by another server on another port: a cross-origin page."""
    app = web.Application()
    StaticFiles(str(WEB)).install(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
