"""Origins in real Chromium: a page on another loopback port logs in (CORS on /auth/*) and
connects on the default policy while the gateway listens on loopback; with ``allowed_origins``
set to something else the same page can neither log in nor open the WebSocket (403)."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.conftest import StartGateway
from tests.e2e.chat_page import open_page, say, sees_once, sign_in, unique
from tests.e2e.conftest import Chat, start_chat
from tests.log_helpers import json_entry


async def test_a_page_on_another_loopback_port_logs_in_and_chats_on_the_defaults(
    chat: Chat, browser: Browser, other_origin: str
) -> None:
    _, page = await open_page(browser, chat.page_url(other_origin))
    await sign_in(page, unique("carol"))
    await say(page, "from another origin")
    await sees_once(page, "from another origin")


async def test_a_page_on_an_origin_not_allowed_is_refused(
    start_gateway: StartGateway, browser: Browser, other_origin: str
) -> None:
    chat = await start_chat(start_gateway, env={"WIREHUB_SERVER_ALLOWED_ORIGINS": "https://chat.example"})
    _, page = await open_page(browser, chat.page_url(other_origin))
    await page.get_by_label("Username").fill(unique("mallory"))
    await page.get_by_label("Password").fill("correct horse battery staple")
    await page.get_by_role("button", name="Register").click()
    # The browser keeps the answer from the page: no Access-Control-Allow-Origin for this origin.
    await expect(page.locator("#account-error")).to_have_text("cannot reach the server")

    closed = await page.evaluate(
        """(url) => new Promise((resolve) => {
            const socket = new WebSocket(url);
            socket.onopen = () => resolve("open");
            socket.onclose = (event) => resolve(`closed ${event.code}`);
        })""",
        chat.gateway.ws_url,
    )
    assert closed == "closed 1006"  # what a page learns of a refused handshake
    entry = await json_entry(chat.gateway, "connect refused", origin=other_origin)
    assert entry["code"] == 403
    assert "server.allowed_origins" in entry["reason"]
