"""Webhook checks on the Recorders page in a real browser against the running services: a
refused webhook is listed with its reason, the URL warning shows, and the test alert reaches the
engine (its timeline opens) without trading."""

from __future__ import annotations

import json

import requests
from playwright.sync_api import expect

from tests.e2e.browser_support import PHONE, log_in, shoot

PLACEHOLDER_BUY = {"action": "buy", "ticker": "MNQ1!", "price": "{{close}}"}


def test_a_refused_webhook_is_listed_and_a_test_alert_reaches_the_engine(stack, api, new_page):
    # Given a recorder whose alert sent a placeholder TradingView did not fill in
    recorder = api.create_recorder(name="MNQ trend", default_qty=1)
    refused = requests.post(
        recorder["webhook_url"],
        data=json.dumps(PLACEHOLDER_BUY),
        headers={"Content-Type": "text/plain"},
        timeout=5,
    )
    assert refused.status_code == 422

    # When the trader opens the Recorders page
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/recorders")

    # Then the webhook checks show the refusal with its reason and body, and warn about the URL
    panel = page.locator("#recorder-alerts")
    expect(panel).to_be_visible()
    expect(page.locator("#url-warning")).to_be_visible()
    expect(page.locator("#url-warning")).to_contain_text(
        "TradingView cannot reach this webhook URL"
    )
    row = page.locator("#refused-webhooks tbody tr").first
    expect(row).to_contain_text("422")
    expect(row).to_contain_text("The field price still holds the placeholder {{close}}")
    row.locator("summary").click()
    expect(row.locator("pre")).to_contain_text('"price": "{{close}}"')
    assert recorder["webhook_token"] not in page.content()

    # When the test alert is sent, the gateway's answer shows and the signal's timeline opens
    page.click("#send-test-alert")
    expect(page.locator("#test-alert-result")).to_contain_text("The gateway answered 202")
    timeline = page.locator("#timeline-dialog")
    expect(timeline).to_be_visible()
    expect(timeline).to_contain_text("nothing was traded")
    timeline.locator("button[data-close]").first.click()
    expect(timeline).to_be_hidden()
    shoot(page, "recorders-webhook-checks")

    # And the engine recorded it as ignored, with no position
    [test] = [
        s for s in api.ok("/api/signals", recorder_id=recorder["id"])["signals"] if s["ticker"]
    ]
    signal = api.settled_signal(test["id"])
    assert (signal["status"], signal["reason"]) == (
        "ignored",
        "a test alert: it reached the engine; nothing was traded",
    )
    expect(page.locator("#test-alert-result")).to_contain_text(test["id"])
    assert api.positions(recorder["id"]) == []

    # And Clear empties the list
    page.click("#clear-refused")
    page.click("dialog.confirm button[data-confirm]")
    expect(page.locator("#refused-webhooks tbody")).to_contain_text("None refused")

    # On a phone the checks keep the warning and the button
    phone = new_page(PHONE)
    log_in(phone, base, stack.email, stack.password, "/recorders")
    expect(phone.locator("#url-warning")).to_be_visible()
    expect(phone.locator("#send-test-alert")).to_be_visible()
    shoot(phone, "recorders-webhook-checks", "phone")
