"""The execution pages in a real browser against the whole stack (gateway, engine, UI, executor):
a paper account added on Accounts, a trader linked on Traders whose order fills live, an API key
made and revoked on Settings, and the kill switch on the Control Center.

Each page is saved as a screenshot, desktop and phone, in var/screenshots/.
"""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from libs.common.streams import publish_event
from tests.e2e.browser_support import PHONE, log_in, send, shoot

NEW_PAGES = ["traders", "accounts", "manual-trader", "control-center", "settings"]


def test_a_paper_account_and_a_trader_made_on_the_pages_fill_a_webhook_order_live(
    stack, new_page, redis_client
):
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/accounts")
    # Given a newcomer on Accounts: told to add an account
    expect(page.locator("#first-account")).to_be_visible()
    shoot(page, "accounts-empty")
    # When a paper account is added through the page, its subaccount shows
    page.locator("#first-account [data-action=paper]").click()
    page.fill("#paper-form input[name=name]", "Sim")
    page.click("#paper-save")
    card = page.locator("section.account", has_text="Sim")
    expect(card.locator("td.symbol")).to_contain_text("PAPER")
    subaccount = card.locator("td.symbol").inner_text()
    expect(page.locator("#first-account")).to_be_hidden()

    # And a recorder made with the API key, linked on Traders through the dialog
    recorder = stack.api.create_recorder(name="Trend", default_qty=1)
    page.goto(base + "/traders")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    expect(page.locator("#first-trader")).to_be_visible()
    shoot(page, "traders-empty")
    page.locator("#first-trader [data-action=new]").click()
    page.select_option("#trader-form select[name=recorder_id]", str(recorder["id"]))
    page.select_option(
        "#trader-form select[name=subaccount_id]", label=f"{subaccount} · Sim (paper)"
    )
    page.fill("#trader-form input[name=multiplier]", "2")
    page.fill("#trader-form input[name=max_contracts]", "5")
    page.click("#trader-save")
    row = page.locator("#traders tbody tr").first
    expect(row).to_contain_text("Trend")
    expect(row).to_contain_text(subaccount)
    expect(row.locator("input[data-action=toggle]")).to_be_checked()

    # When the recorder's alert fires (with a last price for the paper fill)
    redis_client.hset("jt:last_price", "MNQ", "25000")
    send(recorder["webhook_url"], {"action": "buy", "ticker": "MNQ1!", "price": 25000})
    # Then the order appears live, filled, for 2 contracts
    order = page.locator("#orders tbody tr[data-status=filled]").first
    expect(order).to_contain_text("buy MNQ")
    expect(order.locator("td.num").first).to_have_text("2")
    shoot(page, "traders")

    # The Manual Trader shows the subaccount's fill and the recorder's position
    page.goto(base + "/manual-trader")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    expect(page.locator(".account-card")).to_contain_text("buy MNQ")
    expect(page.locator("#open-positions tbody tr[data-position-id]")).to_have_count(1)
    shoot(page, "manual-trader")

    # The kill switch needs FLATTEN typed, then every trader is off
    page.goto(base + "/control-center")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    expect(page.locator("#signals tbody tr[data-signal-id]")).to_have_count(1)
    expect(page.locator(".health-card[data-service=postgres]")).to_contain_text("OK")
    shoot(page, "control-center")
    # A reconciliation difference the executor reports shows among the alerts, row by row
    owner = stack.api.ok("/api/orders")["orders"][0]["user_id"]
    gap = {"subaccount_id": 9, "symbol": "MNQ", "expected": 0, "actual": 1, "since": "x"}
    mismatch = {"user_id": owner, "account_id": 4, "checked_at": "x", "pending": []}
    publish_event(redis_client, "jt:events", "account.mismatch", {**mismatch, "mismatches": [gap]})
    expect(page.locator("#alerts")).to_contain_text("subaccount #9 MNQ: expected 0, broker 1")
    page.click("#kill-switch")
    expect(page.locator("#kill-confirm")).to_be_disabled()
    page.fill("#kill-form input[name=typed]", "flatten")
    expect(page.locator("#kill-confirm")).to_be_disabled()
    page.fill("#kill-form input[name=typed]", "FLATTEN")
    page.click("#kill-confirm")
    expect(page.locator("#alerts")).to_contain_text("Kill switch used: 1 trader(s) off")
    trader = stack.api.ok("/api/traders")["traders"][0]
    assert trader["enabled"] is False
    page.goto(base + "/traders")
    row = page.locator("#traders tbody tr").first
    expect(row.locator("input[data-action=toggle]")).not_to_be_checked()
    expect(row).to_contain_text("Off")
    expect(page.locator("#orders tbody")).to_contain_text("buy MNQ")
    page.goto(base + "/accounts")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    shoot(page, "accounts")

    # Every new page on a phone
    phone = new_page(PHONE)
    log_in(phone, base, stack.email, stack.password)
    for name in NEW_PAGES:
        phone.goto(f"{base}/{name}")
        expect(phone.locator("body")).to_have_attribute("data-loaded", "true")
        shoot(phone, name, "phone")


def test_an_api_key_made_on_settings_works_once_read_and_stops_when_revoked(stack, new_page):
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/settings")
    expect(page.locator("#api-keys tbody")).to_contain_text(
        "cli"
    )  # the stack's own key, made by the CLI
    page.fill("#key-form input[name=name]", "my bot")
    page.click("#key-create")
    expect(page.locator("#new-key")).to_be_visible()
    key = page.input_value("#new-key-value")
    assert key
    shoot(page, "settings")
    bearer = {"Authorization": f"Bearer {key}"}
    assert requests.get(base + "/api/recorders", headers=bearer, timeout=5).status_code == 200
    # The key is never shown again: after Done, and in the list only its first characters
    page.click("#hide-key")
    expect(page.locator("#new-key")).to_be_hidden()
    row = page.locator("#api-keys tbody tr", has_text="my bot")
    expect(row).to_contain_text(key[:10])
    assert key not in page.content()
    # Revoking asks first, then the key stops working at once
    row.locator("button[data-action=revoke]").click()
    page.locator("dialog.confirm button[data-confirm]").click()
    expect(row).to_contain_text("Revoked")
    assert requests.get(base + "/api/recorders", headers=bearer, timeout=5).status_code == 401
