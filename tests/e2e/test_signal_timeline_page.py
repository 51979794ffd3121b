"""A signal's timeline in a real browser against the whole stack (gateway, engine, executor, UI):
opened from the Recorders page's signal list and from a trade's fill, it shows every hop from the
gateway to the paper fill with its time and the ms since the hop before."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser_support import PHONE, log_in, send, shoot


def test_the_timeline_of_a_signal_shows_each_hop_to_the_fill(stack, api, new_page, redis_client):
    # Given a recorder linked to a paper account, and its alert fired once
    made = api.post("/api/accounts", {"broker": "paper", "name": "Practice"}).json()
    subaccount = made["subaccounts"][0]
    recorder = api.create_recorder(name="Trend", default_qty=1)
    linked = api.post(
        "/api/traders", {"recorder_id": recorder["id"], "subaccount_id": subaccount["id"]}
    )
    assert linked.status_code == 201, linked.text
    redis_client.hset("jt:last_price", "MNQ", "25010.25")
    send(recorder["webhook_url"], {"action": "buy", "ticker": "MNQ1!", "price": 25010})

    # When the trader opens the signal's timeline from the Recorders page
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/recorders")
    row = page.locator("#signals tbody tr[data-signal-id]")
    expect(row).to_have_count(1)
    row.locator("button[data-timeline]").click()

    # Then every hop shows, in words, from the gateway to the fill at the paper price
    dialog = page.locator("#timeline-dialog")
    expect(dialog).to_be_visible()
    hops = dialog.locator("#timeline-hops tbody tr")
    expect(hops.last).to_have_attribute("data-hop", "filled")  # the executor may still be busy
    expect(hops).to_have_text(
        [
            re.compile("Received by the gateway"),
            re.compile("Written to the stream"),
            re.compile("Applied by the engine"),
            re.compile(f"Order queued for Practice / {subaccount['name']}"),
            re.compile("Sent to the broker"),
            re.compile("Accepted by the broker"),
            re.compile("Filled at 25,010.25"),
        ]
    )
    # And each hop has its time, and every hop after the first the ms since the one before
    times = dialog.locator("#timeline-hops tbody td.time")
    for i in range(7):
        expect(times.nth(i)).to_have_text(re.compile(r"\d\d:\d\d:\d\d"))
    ms = dialog.locator("#timeline-hops tbody td.ms")
    expect(ms.first).to_have_text("")
    for i in range(1, 7):
        expect(ms.nth(i)).to_have_text(re.compile(r"^\+[\d,]+ ms$"))
    expect(dialog.locator("#timeline-summary")).to_contain_text("applied")
    shoot(page, "signal-timeline")
    dialog.locator("button[data-close]").last.click()
    expect(dialog).to_be_hidden()

    # When the same signal's timeline is opened from the trade's entry fill
    page.locator("#open-positions tbody tr[data-position-id]").first.click()
    trade = page.locator("#trade-dialog")
    expect(trade.locator("#trade-fills tbody tr[data-kind=entry]")).to_have_count(1)
    trade.locator("#trade-fills button[data-timeline]").click()

    # Then the timeline opens over the trade with the same hops
    expect(dialog).to_be_visible()
    expect(hops).to_have_count(7)
    expect(hops.nth(2)).to_contain_text("Applied by the engine")

    # And on a phone the dialog fits the screen
    phone = new_page(PHONE)
    log_in(phone, base, stack.email, stack.password, "/recorders")
    phone.locator("#signals tbody tr[data-signal-id] button[data-timeline]").click()
    expect(phone.locator("#timeline-hops tbody tr")).to_have_count(7)
    shoot(phone, "signal-timeline", "phone")
