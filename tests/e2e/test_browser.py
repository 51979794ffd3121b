"""The pages in a real browser (Debian's headless Chromium driven by Playwright) against the
gateway, engine and UI running as processes: login, a recorder made on the page, a webhook whose
position opens and closes live, the dashboard's numbers, privacy between users, CSRF.

Every page is saved as a screenshot, desktop (1280 wide) and phone (390 wide), in var/screenshots/.
"""

from __future__ import annotations

import csv
import io
import re
import time
from decimal import Decimal
from pathlib import Path

import requests
from playwright.sync_api import expect

from tests.e2e.browser_support import (
    CENT,
    PAGES,
    PHONE,
    amount,
    log_in,
    send,
    send_tick,
    shoot,
)


def test_a_trader_logs_in_and_watches_a_position_open_and_close_live(
    stack, browser, new_page, redis_client
):
    base = stack.url("ui")
    page = new_page()
    # Given the login page: a wrong password gets the same page with a plain error
    page.goto(base + "/recorders")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Frecorders|/login\?next=/recorders"))
    shoot(page, "login")
    page.fill("input[name=email]", stack.email)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".form-error")).to_have_text("The email or password is incorrect.")
    # When the right one is entered, the page asked for opens
    page.fill("input[name=password]", stack.password)
    page.click("button[type=submit]")
    expect(page).to_have_url(base + "/recorders")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    assert page.evaluate("document.body.dataset.transport") == "websocket"  # through gunicorn
    # A newcomer is told what to do first
    expect(page.locator("#first-recorder")).to_be_visible()
    expect(page.locator("#first-recorder")).to_contain_text("Webhook URL")
    shoot(page, "recorders-empty")

    # When a recorder is made on the page, its webhook URL and templates are shown
    page.locator("#first-recorder [data-action=new]").click()
    form = page.locator("#recorder-form")
    form.locator("input[name=name]").fill("MNQ browser")
    form.locator("input[name=tp_ticks]").fill("20")
    form.locator("input[name=sl_ticks]").fill("40")
    shoot(page, "recorder-form")
    form.locator("button[type=submit]").click()
    webhook = page.locator("#webhook-url")
    expect(webhook).to_have_value(re.compile(rf"^{re.escape(stack.url('gateway'))}/webhook/\w+$"))
    expect(page.locator("#template-strategy")).to_have_value(re.compile(r"strategy\.position_size"))
    shoot(page, "recorder-webhook")
    hook_url = webhook.input_value()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.locator("#webhook-dialog [data-copy='#webhook-url']").click()
    expect(page.locator(".toast.success").last).to_contain_text("Webhook URL copied")
    assert page.evaluate("navigator.clipboard.readText()") == hook_url
    page.locator("#webhook-dialog footer [data-close]").click()
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

    # When TradingView fires the alert, the position appears without a reload
    send(hook_url, {"action": "buy", "ticker": "MNQ1!", "price": 25640})
    row = page.locator("#open-positions tbody tr[data-position-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("MNQ browser")
    expect(row.locator(".side")).to_have_text("long")
    expect(page.locator("#recorders tbody tr")).to_contain_text("long 1 MNQ @ 25,640.00")
    # And ticks mark it: long 1 MNQ @ 25640 (TP 25645, SL 25630), tick 25634 → −6 points × $2
    send_tick(redis_client, "25634")
    expect(row.locator(".unrealized")).to_have_text("-$12.00")
    shoot(page, "recorders-live")
    # When a tick goes through the take-profit (25645), it closes there, live
    send_tick(redis_client, "25646")
    expect(page.locator("#open-positions tbody tr[data-position-id]")).to_have_count(0)
    closed = page.locator("#closed-positions tbody tr[data-position-id]")
    expect(closed).to_have_count(1)
    expect(closed.locator(".pnl")).to_have_text("+$10.00")
    expect(closed).to_contain_text("Take profit")
    expect(page.locator("#signals tbody tr[data-signal-id] .pill")).to_have_text("applied")
    assert page.evaluate("window.__sameDocument") is True

    # The dashboard's cards follow closed trades live and equal the API's numbers to the cent
    page.goto(base + "/dashboard")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    for entry, exit_price in ((25650, 25660.25), (25600, 25601.75), (25700, 25699.25)):
        side = "sell" if entry == 25650 else "buy"
        send(hook_url, {"action": side, "ticker": "MNQ1!", "price": entry})
        send(hook_url, {"action": "close", "ticker": "MNQ1!", "price": exit_price})
    expect(page.locator("[data-metric=trades] .card-value")).to_have_text("4")
    expect(page.locator("#trades tbody tr[data-position-id]")).to_have_count(4)
    metrics = stack.api.ok("/api/dashboard/metrics")
    assert metrics["trades"] == 4 and metrics["expectancy"] == -2.13  # -8.50 / 4, half up
    for key in (
        "net_pnl",
        "avg_win",
        "avg_loss",
        "expectancy",
        "max_drawdown",
        "win_rate",
        "profit_factor",
    ):
        shown = page.locator(f"[data-metric={key}] .card-value").inner_text()
        assert amount(shown) == Decimal(str(metrics[key])).quantize(CENT), (
            key,
            shown,
            metrics[key],
        )
    assert page.locator("[data-metric=net_pnl] .card-value").inner_text() == "-$8.50"
    today = page.locator("#calendar .day.loss")
    expect(today).to_have_count(1)
    expect(today.locator(".p")).to_have_text("-$8.50")
    assert page.evaluate("document.querySelector('#chart canvas') !== null")
    # And the CSV export holds every trade with the API's own numbers
    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    history = stack.api.ok("/api/dashboard/trade-history")["trades"]
    assert [Decimal(r["realized_pnl"]) for r in rows] == [
        Decimal(str(t["realized_pnl"])) for t in history
    ]

    # Every page, desktop and phone
    for name in PAGES:
        page.goto(f"{base}/{name}")
        expect(page.locator(f"#nav-{name.replace('-', '_')}")).to_have_attribute(
            "aria-current", "page"
        )
        if name in ("dashboard", "recorders"):
            expect(page.locator("body")).to_have_attribute("data-loaded", "true")
            page.wait_for_timeout(300)  # the chart's first paint
        shoot(page, name)
    phone = new_page(PHONE)
    phone.goto(base + "/login")
    shoot(phone, "login", "phone")
    log_in(phone, base, stack.email, stack.password)
    for name in PAGES:
        phone.goto(f"{base}/{name}")
        if name in ("dashboard", "recorders"):
            expect(phone.locator("body")).to_have_attribute("data-loaded", "true")
            phone.wait_for_timeout(300)
        shoot(phone, name, "phone")


def test_a_second_user_sees_none_of_the_first_users_data(stack, new_page):
    base = stack.url("ui")
    first = stack.api
    recorder = first.create_recorder(name="First's secret", tp_ticks=20)
    send(recorder["webhook_url"], {"action": "buy", "ticker": "ES1!", "price": 6000})
    send(recorder["webhook_url"], {"action": "close", "ticker": "ES1!", "price": 6001})
    send(recorder["webhook_url"], {"action": "buy", "ticker": "MNQ1!", "price": 25000})
    stack.user_api("second@example.com")

    mine = new_page()
    log_in(mine, base, stack.email, stack.password, "/recorders")
    expect(mine.locator("#open-positions tbody tr[data-position-id]")).to_have_count(1)
    theirs = new_page()
    log_in(theirs, base, "second@example.com", stack.password, "/recorders")
    expect(theirs.locator("#first-recorder")).to_be_visible()
    for table in ("#recorders", "#open-positions", "#closed-positions", "#signals"):
        expect(
            theirs.locator(
                f"{table} tbody tr[data-position-id], {table} tbody tr[data-signal-id], "
                f"{table} tbody tr[data-recorder-id]"
            )
        ).to_have_count(0)
    expect(theirs.locator("main")).not_to_contain_text("First's secret")

    # When the first user's position changes live, only the first user's page hears of it
    send(recorder["webhook_url"], {"action": "buy", "ticker": "MNQ1!", "price": 25010})
    expect(mine.locator("#open-positions tbody tr[data-position-id] td.num").nth(0)).to_have_text(
        "2"
    )
    theirs.wait_for_timeout(500)
    expect(theirs.locator("#open-positions tbody tr[data-position-id]")).to_have_count(0)
    shoot(theirs, "recorders-second-user")

    theirs.goto(base + "/dashboard")
    expect(theirs.locator("body")).to_have_attribute("data-loaded", "true")
    expect(theirs.locator("#onboarding")).to_be_visible()
    expect(theirs.locator("[data-metric=trades] .card-value")).to_have_text("0")
    expect(theirs.locator("#trades tbody tr[data-position-id]")).to_have_count(0)
    expect(theirs.locator("#calendar .day.win, #calendar .day.loss")).to_have_count(0)
    expect(theirs.locator("#filters select option")).to_have_count(1)  # "All recorders" only
    shoot(theirs, "dashboard-empty")


def test_a_recorder_is_edited_and_its_reset_and_delete_ask_first(stack, new_page):
    base = stack.url("ui")
    recorder = stack.api.create_recorder(name="Edit me", tp_ticks=20)
    send(recorder["webhook_url"], {"action": "buy", "ticker": "MNQ1!", "price": 25000})
    send(recorder["webhook_url"], {"action": "close", "ticker": "MNQ1!", "price": 25001})
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/recorders")
    closed = page.locator("#closed-positions tbody tr[data-position-id]")
    expect(closed).to_have_count(1)
    row = page.locator(f"#recorders tr[data-recorder-id='{recorder['id']}']")

    # Edit: the API's sentence shows in the form until the value is right
    row.locator("[data-action=edit]").click()
    form = page.locator("#recorder-form")
    expect(form.locator("input[name=tp_ticks]")).to_have_value("20")
    form.locator("input[name=default_qty]").fill("0")
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for=default_qty]")).to_have_text(
        "Contracts per signal must be a positive number."
    )
    form.locator("input[name=default_qty]").fill("2")
    form.locator("input[name=name]").fill("Edited")
    form.locator("input[name=tp_ticks]").fill("")
    form.locator("input[name=sl_ticks]").fill("12")
    form.locator("button[type=submit]").click()
    expect(row.locator("td").first).to_have_text("Edited")
    saved = stack.api.ok(f"/api/recorders/{recorder['id']}")
    assert (saved["name"], saved["default_qty"], saved["tp_ticks"], saved["sl_ticks"]) == (
        "Edited",
        2,
        None,
        12,
    )

    # Reset history asks first; Cancel keeps everything
    row.locator("[data-action=reset]").click()
    confirm = page.locator("dialog.confirm")
    expect(confirm).to_contain_text("Reset the history of Edited?")
    shoot(page, "recorder-reset-confirm")
    confirm.locator("button[value=cancel]").click()
    expect(closed).to_have_count(1)
    row.locator("[data-action=reset]").click()
    page.locator("dialog.confirm [data-confirm]").click()
    expect(closed).to_have_count(0)
    expect(page.locator("#signals tbody tr[data-signal-id]")).to_have_count(0)
    assert stack.api.positions(recorder["id"]) == []

    # Delete asks first too, then the recorder and its webhook are gone
    row.locator("[data-action=delete]").click()
    expect(page.locator("dialog.confirm")).to_contain_text("Its webhook URL stops working")
    page.locator("dialog.confirm [data-confirm]").click()
    expect(row).to_have_count(0)
    expect(page.locator("#first-recorder")).to_be_visible()
    assert stack.api.get(f"/api/recorders/{recorder['id']}").status_code == 404


def test_a_page_reloads_its_state_when_its_socket_reconnects(stack, new_page, redis_client):
    base = stack.url("ui")
    recorder = stack.api.create_recorder(name="Through a restart")
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/recorders")
    page.evaluate("window.__sameDocument = true")

    # Given the UI is stopped while a signal opens a position
    stack.stop("ui")
    expect(page.locator("body")).to_have_attribute("data-live", "reconnecting")
    send(recorder["webhook_url"], {"action": "sell", "ticker": "MNQ1!", "price": 25500})
    deadline = time.monotonic() + 10
    while (
        redis_client.xlen("jt:events") == 0
        or redis_client.xpending("jt:signals", "position_engine")["pending"]
    ):
        assert time.monotonic() < deadline, "the engine did not apply the signal"
        time.sleep(0.05)
    redis_client.xtrim("jt:events", maxlen=0)  # nothing left to relay: only a reload can tell

    # When the UI is back, the socket reconnects and the page reloads from the API, in place
    stack.start("ui")
    stack.wait_healthy("ui")
    expect(page.locator("body")).to_have_attribute("data-live", "connected", timeout=15_000)
    row = page.locator("#open-positions tbody tr[data-position-id]")
    expect(row.locator(".side")).to_have_text("short")
    assert page.evaluate("window.__sameDocument") is True


def test_a_form_post_without_its_csrf_token_is_refused(stack):
    base = stack.url("ui")
    browser = requests.Session()
    page = browser.get(base + "/login", timeout=5).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"email": stack.email, "password": stack.password, "next": "/dashboard"}

    refused = browser.post(base + "/login", data=form, allow_redirects=False, timeout=5)
    assert refused.status_code == 403
    assert browser.get(base + "/dashboard", allow_redirects=False, timeout=5).status_code == 302

    logged_in = browser.post(
        base + "/login", data={**form, "csrf_token": token}, allow_redirects=False, timeout=5
    )
    assert (logged_in.status_code, logged_in.headers["Location"]) == (302, "/dashboard")
    # The logout form is a form too: without its token the session survives
    assert browser.post(base + "/logout", data={}, timeout=5).status_code == 403
    assert browser.get(base + "/dashboard", allow_redirects=False, timeout=5).status_code == 200
    # So is every JSON write made with the session cookie
    write = browser.post(base + "/api/recorders", json={"name": "forged"}, timeout=5)
    assert write.status_code == 403 and write.json()["ok"] is False
