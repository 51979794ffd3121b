"""Browser support for the e2e tests: Debian's headless Chromium through Playwright, page
helpers, and screenshots of every page in var/screenshots/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from libs.common.config import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--headless",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "var" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGES = [
    "dashboard",
    "recorders",
    "traders",
    "accounts",
    "manual-trader",
    "control-center",
    "settings",
]
LIVE_S = 10_000  # ms a live update may take to show
CENT = Decimal("0.01")
expect.set_options(timeout=LIVE_S)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser) -> Iterator:
    contexts = []
    refused: list[str] = []  # what the Content-Security-Policy blocked, from the browser's console

    def make(viewport: dict = DESKTOP) -> Page:
        context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE)
        context.set_default_timeout(LIVE_S)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        return page

    yield make
    for context in contexts:  # closes the sockets before the stack stops
        context.close()
    assert refused == [], f"the pages broke their own Content-Security-Policy: {refused}"


def shoot(page: Page, name: str, viewport: str = "desktop") -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}-{viewport}.png", full_page=True)


def log_in(page: Page, base: str, email: str, password: str, next_page: str = "/dashboard") -> None:
    page.goto(base + next_page)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(base + next_page)
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")


def send(url: str, body: dict) -> None:
    """What TradingView does: POST the alert message to the webhook URL."""
    answer = requests.post(
        url, data=json.dumps(body), headers={"Content-Type": "text/plain"}, timeout=5
    )
    assert answer.status_code == 202, answer.text


def send_tick(redis_client, price: str, symbol: str = "MNQ") -> None:
    now_ms = str(time.time_ns() // 1_000_000)
    redis_client.xadd(
        "jt:ticks", {"symbol": symbol, "price": price, "ts": now_ms, "source": "test"}
    )


def amount(text: str) -> Decimal:
    """A card's text as a number: "+$1,234.50" → 1234.50, "-$2.13" → -2.13, "50.00%" → 50.00."""
    return Decimal(re.sub(r"[+$,%\s]", "", text))
