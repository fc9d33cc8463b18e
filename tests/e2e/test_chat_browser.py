"""The chat example in real Chromium: two users in two browser contexts talk in one room, see
each other online and typing, one drops off the network and comes back to every missed message
exactly once, the gateway restarts mid-conversation, and the server API posts into the room."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, expect

from tests.e2e.chat_page import open_page, say, screenshot_dir, sees_once, sign_in, unique
from tests.e2e.conftest import API_KEY, Chat


async def test_two_users_talk_through_a_network_drop_and_a_gateway_restart(
    chat: Chat, browser: Browser, tmp_path: Path
) -> None:
    alice_name, bob_name = unique("alice"), unique("bob")
    alice_context, alice = await open_page(browser, chat.page_url())
    bob_context, bob = await open_page(browser, chat.page_url())
    await sign_in(alice, alice_name)
    await sign_in(bob, bob_name)

    # Presence: each sees both in the room; typing: bob sees alice typing, on a channel without history.
    for page in (alice, bob):
        await expect(page.locator("#online li")).to_have_text(sorted([alice_name, bob_name]))
    await alice.get_by_role("textbox", name="Message").press_sequentially("hel")
    await expect(bob.locator("#typing")).to_have_text(f"{alice_name} is typing…")
    await alice.get_by_role("textbox", name="Message").fill("")

    await say(alice, "hello bob")
    await sees_once(bob, "hello bob")
    await say(bob, "hi alice")
    await sees_once(alice, "hello bob", "hi alice")
    await bob.screenshot(path=str(screenshot_dir(tmp_path) / "chat-two-users.png"))

    # Bob's network goes away; alice goes on talking; bob comes back to every message, once.
    await bob.locator("#room").evaluate("(room) => { room.dataset.subscribed = '' }")
    await bob_context.set_offline(True)
    await expect(bob.locator("#connection")).not_to_have_attribute("data-state", "connected")
    missed = [f"while you were away {i}" for i in range(3)]
    for text in missed:
        await say(alice, text)
    await bob_context.set_offline(False)
    await expect(bob.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(bob.locator("#room")).to_have_attribute("data-subscribed", "recovered")  # by the SDK
    await sees_once(bob, "hello bob", "hi alice", *missed)

    # The gateway restarts mid-conversation: both pages reconnect and recover, nothing doubled.
    for page in (alice, bob):  # so that "recovered" below can only come from a new subscription
        await page.locator("#room").evaluate("(room) => { room.dataset.subscribed = '' }")
    await chat.gateway.restart()
    for page in (alice, bob):
        await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#room")).to_have_attribute("data-subscribed", "recovered")
    await say(bob, "still here after the restart")
    await say(alice, "me too")
    for page in (alice, bob):
        await sees_once(page, "hello bob", "hi alice", *missed, "still here after the restart", "me too")
        await expect(page.locator("#online li")).to_have_text(sorted([alice_name, bob_name]))

    # A backend posts through the server API: both pages show it live.
    async with aiohttp.ClientSession() as http:
        body = {
            "channel": "chat:lobby",
            "data": {
                "type": "message",
                "id": uuid.uuid4().hex,
                "user": "",
                "name": "server",
                "text": "from the backend",
                "at": int(time.time() * 1000),
            },
        }
        async with http.post(
            chat.gateway.http_url + "/api/publish", json=body, headers={"X-API-Key": API_KEY}
        ) as reply:
            assert reply.status == 200, await reply.text()
    for page in (alice, bob):
        await sees_once(page, "from the backend")
    await alice.screenshot(path=str(screenshot_dir(tmp_path) / "chat-after-restart.png"))
    await alice_context.close()
    await bob_context.close()


async def test_rooms_are_created_listed_and_keep_their_history(chat: Chat, browser: Browser) -> None:
    alice_name, bob_name = unique("alice"), unique("bob")
    _, alice = await open_page(browser, chat.page_url())
    await sign_in(alice, alice_name)
    await alice.get_by_label("New room").fill("pancakes")
    await alice.get_by_role("button", name="Create").click()
    await expect(alice.locator("#room-title")).to_have_text("# pancakes")
    await say(alice, "first!")

    _, bob = await open_page(browser, chat.page_url())
    await sign_in(bob, bob_name)
    await bob.get_by_role("button", name="# pancakes").click()
    await sees_once(bob, "first!")  # the room's history, loaded on entry
    await bob.get_by_role("textbox", name="Message").evaluate("(input) => input.removeAttribute('maxlength')")
    await bob.get_by_role("textbox", name="Message").fill("x" * 2001)
    await bob.get_by_role("button", name="Send").click()
    await expect(bob.locator("#message-error")).to_contain_text("2000")  # the handler's reason
