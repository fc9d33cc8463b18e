"""Driving the chat example's page in a browser: open it, sign in, say something, see it once."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import PAGE_TIMEOUT_MS

PASSWORD = "correct horse battery staple"


def screenshot_dir(tmp_path: Path) -> Path:
    """Where the screenshots go: the test's own directory, or WIREHUB_TEST_SCREENSHOT_DIR (kept)."""
    directory = Path(os.environ.get("WIREHUB_TEST_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def open_page(browser: Browser, url: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1100, "height": 640})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(url)
    return context, page


async def sign_in(page: Page, username: str, action: str = "Register") -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name=action).click()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#room-title")).to_have_text("# lobby")


async def say(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_role("textbox", name="Message")).to_have_value("")  # the publish was accepted


async def sees_once(page: Page, *texts: str) -> None:
    for text in texts:
        await expect(
            page.locator("#messages li .text").filter(has_text=re.compile(f"^{re.escape(text)}$"))
        ).to_have_count(1)
