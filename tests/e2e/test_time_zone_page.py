"""The time zone in a real browser: the dashboard shows exchange time (Chicago) until New York is
chosen on Settings, then New York, each time with its zone's name, in the calendar and the CSV
too; a loss that rounds to nothing shows "$0.00"; From after To shows one message and asks the
API nothing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import expect

from libs.common.storage import db
from libs.common.storage.models import Position
from tests.e2e.browser_support import log_in, shoot

# 03:30 UTC on Nov 3 2026 is 21:30 CST, 22:30 EST, both on Nov 2.
CLOSED = datetime(2026, 11, 3, 3, 30, tzinfo=UTC)


def closed_trade(sessions, recorder_id: int, closed_at: datetime, pnl: str) -> None:
    with db.transaction(sessions) as s:
        s.add(
            Position(
                recorder_id=recorder_id,
                symbol="MNQ",
                side="long",
                quantity=Decimal(1),
                avg_entry_price=Decimal("25640"),
                entry_cost=Decimal("25640"),
                status="closed",
                realized_pnl=Decimal(pnl),
                exit_price=Decimal("25640"),
                exit_reason="signal",
                opened_at=closed_at - timedelta(minutes=5),
                opened_ms=0,
                closed_at=closed_at,
            )
        )


def test_times_follow_the_zone_chosen_on_settings(stack, api, new_page, sessions):
    # Given a trade that lost less than a cent, closed late on Nov 2 in America, and a win later
    recorder = api.create_recorder(name="Zones")
    closed_trade(sessions, recorder["id"], CLOSED, "-0.004")
    closed_trade(sessions, recorder["id"], CLOSED + timedelta(days=2), "10")
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password)
    november = f"{base}/dashboard?from=2026-11-01&to=2026-11-30"

    # Then the dashboard shows it in exchange time, and "$0.00" without a sign or colour
    page.goto(november)
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    row = page.locator("#trades tbody tr[data-position-id]").last
    expect(row.locator("td.time")).to_have_text("2026-11-02 21:30:00 CST")
    expect(row.locator("td.pnl")).to_have_text("$0.00")
    expect(row.locator("td.pnl")).not_to_have_class("neg")
    avg_loss = page.locator("[data-metric=avg_loss] .card-value")
    expect(avg_loss).to_have_text("$0.00")
    expect(avg_loss).not_to_have_class("neg")
    expect(page.locator("[data-metric=net_pnl] .card-sub")).to_have_text("+$10.00 / $0.00")
    nov2 = page.locator("#calendar .day[data-date='2026-11-02']")
    expect(nov2.locator(".p")).to_have_text("$0.00")
    expect(page.locator(".calendar-foot")).to_contain_text("Days in America/Chicago")

    # When New York is chosen on Settings
    page.goto(base + "/settings")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    choices = page.locator("#time-zone option")
    expect(choices.filter(has_text="your browser's zone")).to_have_count(1)
    expect(page.locator("#time-zone-panel")).to_contain_text("always stay in UTC")
    page.select_option("#time-zone", label="New York")
    expect(page.locator("#zone-now")).to_contain_text(" E")  # EST or EDT, after the reload
    expect(page.locator("#time-zone")).to_have_value("America/New_York")
    assert api.ok("/api/me")["time_zone"] == "America/New_York"
    shoot(page, "settings-time-zone")

    # Then the dashboard shows New York time, named, and the calendar's day is still Nov 2
    page.goto(november)
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    expect(row.locator("td.time")).to_have_text("2026-11-02 22:30:00 EST")
    expect(nov2.locator(".t")).to_have_text("1 trade")
    shoot(page, "dashboard-new-york")

    # And the CSV has New York times with their offset, and names the zone
    with page.expect_download() as download:
        page.click("#export-csv")
    assert download.value.suggested_filename.endswith("-America-New_York.csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    first = next(r for r in rows if r["realized_pnl"] == "0")
    assert first["closed_at"] == "2026-11-02T22:30:00-05:00"
    assert first["time_zone"] == "America/New_York"


def test_from_after_to_shows_one_message_and_sends_nothing(stack, api, new_page):
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/dashboard/" in r.url else None)
    page.fill("#filters input[name=to]", "2026-11-01")
    expect(page.locator("#dates-error")).to_be_hidden()
    page.wait_for_timeout(300)
    assert asked, "a valid range asks the API"

    # When From is moved after To
    asked.clear()
    page.fill("#filters input[name=from]", "2026-11-20")

    # Then one message beside the dates, no toast, and no request
    expect(page.locator("#dates-error")).to_be_visible()
    expect(page.locator("[role=alert]:visible")).to_have_count(1)
    page.wait_for_timeout(500)
    expect(page.locator(".toast")).to_have_count(0)
    assert asked == []
    shoot(page, "dashboard-dates-reversed")

    # And putting From back before To clears it and loads again
    page.fill("#filters input[name=from]", "2026-10-25")
    expect(page.locator("#dates-error")).to_be_hidden()
    page.wait_for_timeout(300)
    assert asked
