"""The Traders page in a real browser hears the engine's notes about a trader (skipped, paused,
flattened at its window's end) under the names the engine publishes them on `jt:events`."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from libs.common import events, streams
from libs.common.storage.models import User
from tests.e2e.browser_support import log_in


def test_the_traders_page_toasts_every_note_the_engine_sends_about_a_trader(
    stack, new_page, redis_client, sessions, settings
):
    with sessions() as s:
        user_id = s.scalar(select(User.id).where(User.email == stack.email))
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/traders")

    # When the engine tells the user about one of their traders, as it does (engine.py
    # publishes `events.trader_event(note.kind)` with the trader, its owner and a sentence)
    for kind, style, message in (
        ("flattened", "error", "flattened MNQ at the end of the trading window"),
        ("paused", "error", "the daily loss limit was reached"),
        ("skipped", "info", "outside the trader's trading window"),
    ):
        streams.publish_event(
            redis_client,
            settings.stream(streams.EVENTS),
            events.trader_event(kind),
            {"trader_id": 1, "user_id": user_id, "message": message},
        )
        # Then the page shows it at once
        expect(page.locator(f"#toasts .toast.{style}", has_text=message)).to_be_visible()
