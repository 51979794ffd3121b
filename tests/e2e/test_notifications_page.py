"""Notifications in a real browser against the running services and the notifier process: a
webhook added on Settings (its secret shown once), its test button, and a paper fill told to it
by the notifier within seconds, signed."""

from __future__ import annotations

import hashlib
import hmac

from playwright.sync_api import expect

from simulators.notify_receivers import NotifyReceiver
from tests.e2e.browser_support import PHONE, log_in, shoot


def signed(secret: str, received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return received.headers.get("X-Justtrades-Signature") == expected


def test_a_webhook_added_on_settings_is_tested_and_told_of_a_fill(
    stack, api, new_page, redis_client, eventually
):
    stack.start("notifier")
    stack.wait_healthy("notifier")

    def reading() -> bool:  # the notifier tells of what happens after its group exists
        groups = redis_client.xinfo_groups("jt:events") if redis_client.exists("jt:events") else []
        return any(g["name"] == "notifier" for g in groups)

    eventually(reading, "the notifier's consumer group on jt:events", timeout=45)
    with NotifyReceiver() as receiver:
        # Given the settings page, a webhook added for fills
        base = stack.url("ui")
        page = new_page()
        log_in(page, base, stack.email, stack.password, "/settings")
        expect(page.locator("#notifications-panel")).to_have_attribute("data-loaded", "true")
        page.select_option("#notify-form select[name=kind]", "webhook")
        page.fill("#notify-form input[name=url]", receiver.url + "/private-path-7f3")
        page.click("#notify-create")
        expect(page.locator("#new-secret")).to_be_visible()
        secret = page.input_value("#new-secret-value")
        row = page.locator("#notifications tbody tr", has_text="Webhook")
        expect(row).to_contain_text("none yet")
        assert "private-path-7f3" not in page.content()  # the list shows the host, not the path

        # When the test button is pressed, the receiver gets a signed test and the row says so
        row.locator("button[data-notify-action=test]").click()
        expect(row).to_contain_text("Delivered")
        assert [r.json()["type"] for r in receiver.received] == ["test"]
        assert signed(secret, receiver.received[0])
        shoot(page, "settings-notifications")

        # And a fill on a paper account reaches it through the notifier
        made = api.post("/api/accounts", {"broker": "paper", "name": "Practice"})
        sub_id = made.json()["subaccounts"][0]["id"]
        redis_client.hset("jt:last_price", "MNQ", "25640")
        trade = api.post(
            "/api/manual-trade", {"subaccount_id": sub_id, "action": "buy", "ticker": "MNQ1!"}
        )
        assert trade.status_code == 202, trade.text
        fill = eventually(
            lambda: next((r for r in receiver.received if r.json()["type"] == "fill"), None),
            "the fill at the webhook",
        )
        assert signed(secret, fill) and fill.json()["data"]["symbol"] == "MNQ"
        page.reload()
        expect(row).to_contain_text("fill")

    # And on a phone the list keeps the last delivery and the buttons
    phone = new_page(PHONE)
    log_in(phone, base, stack.email, stack.password, "/settings")
    phone_row = phone.locator("#notifications tbody tr", has_text="Webhook")
    expect(phone_row).to_contain_text("Delivered")
    expect(phone_row.locator("button[data-notify-action=test]")).to_be_visible()
    shoot(phone, "settings-notifications", "phone")
