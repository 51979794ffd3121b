"""The account view in a real browser against the running services: a paper subaccount's position
on the Accounts page with its open PnL following the feed's last price, and the same panel with
the working bracket on the Manual Trader page, on a phone too; a Tradovate subaccount's panel with
the broker's own cash balance beside our figures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from playwright.sync_api import expect

from libs.common.futures.exchange_calendar import trade_date
from libs.common.storage import db
from libs.common.storage.models import Account, PaperOrder, PaperPosition, Subaccount
from tests.e2e.browser_support import PHONE, log_in, shoot


def set_last_price(redis_client, price: str) -> None:
    redis_client.hset("jt:last_price", "MNQ", price)  # what the engine keeps from the feed


def paper_long_with_bracket(api, sessions) -> int:
    """A paper subaccount long 1 MNQZ6 at 25000 with its target and stop working."""
    made = api.post("/api/accounts", {"broker": "paper", "name": "Practice"})
    assert made.status_code == 201, made.text
    sub_id = made.json()["subaccounts"][0]["id"]
    with db.transaction(sessions) as s:
        s.add(
            PaperPosition(
                subaccount_id=sub_id,
                contract="MNQZ6",
                symbol="MNQ",
                net_qty=Decimal(1),
                avg_price=Decimal("25000"),
            )
        )
        for role, order_type, price in (("target", "limit", "25020"), ("stop", "stop", "24990")):
            s.add(
                PaperOrder(
                    subaccount_id=sub_id,
                    contract="MNQZ6",
                    symbol="MNQ",
                    role=role,
                    side="sell",
                    quantity=Decimal(1),
                    order_type=order_type,
                    price=Decimal(price),
                    oco_group="bracket-1",
                    status="working",
                )
            )
    return sub_id


def test_the_account_panel_shows_the_position_and_its_open_pnl_moves_with_the_price(
    stack, api, new_page, redis_client, sessions
):
    sub_id = paper_long_with_bracket(api, sessions)
    set_last_price(redis_client, "25010")
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/accounts")

    page.locator(f"tr[data-subaccount-id='{sub_id}'] [data-action=view]").click()
    panel = page.locator(f".account-view[data-subaccount-id='{sub_id}']")
    row = panel.locator("tr[data-contract=MNQZ6]")
    expect(row).to_contain_text("long 1")
    expect(row.locator("[data-field=open_pnl]")).to_have_text("+$20.00")  # 10 points × $2
    expect(panel.locator("[data-figure=open_pnl]")).to_have_text("+$20.00")
    expect(panel.locator("[data-figure=trades_today]")).to_have_text("0")
    expect(panel.locator(".av-orders tr[data-role=stop] [data-field=price]")).to_have_text(
        "24,990.00"
    )
    shoot(page, "account-panel")

    set_last_price(redis_client, "24995.5")  # the feed moves; the panel follows within seconds
    expect(row.locator("[data-field=open_pnl]")).to_have_text("-$9.00")
    expect(row.locator("[data-field=open_pnl]")).to_have_class("num neg")
    expect(panel.locator("[data-figure=open_pnl]")).to_have_text("-$9.00")

    page.locator(f"tr[data-subaccount-id='{sub_id}'] [data-action=view]").click()  # Hide
    expect(panel).to_have_count(0)


def test_the_manual_trader_shows_the_chosen_subaccount_with_its_bracket_on_a_phone(
    stack, api, new_page, redis_client, sessions
):
    paper_long_with_bracket(api, sessions)
    set_last_price(redis_client, "25002.25")
    base = stack.url("ui")
    page = new_page(PHONE)
    log_in(page, base, stack.email, stack.password, "/manual-trader")

    panel = page.locator("#account-view")
    expect(panel.locator("[data-figure=open_pnl]")).to_have_text("+$4.50")
    orders = panel.locator(".av-orders tbody tr")
    expect(orders).to_have_count(2)
    expect(panel.locator(".av-orders tr[data-role=target]")).to_contain_text("sell Target")
    expect(panel.locator(".av-orders tr[data-role=target]")).to_contain_text("manual")
    set_last_price(redis_client, "25003.25")
    expect(panel.locator("[data-figure=open_pnl]")).to_have_text("+$6.50")
    shoot(page, "account-panel-manual-trader", "phone")


def test_limits_set_in_the_panel_lock_and_flatten_the_account_when_the_open_loss_reaches_them(
    stack, api, new_page, redis_client, sessions
):
    sub_id = paper_long_with_bracket(api, sessions)
    set_last_price(redis_client, "25010")
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/accounts")
    page.locator(f"tr[data-subaccount-id='{sub_id}'] [data-action=view]").click()
    panel = page.locator(f".account-view[data-subaccount-id='{sub_id}']")
    expect(panel.locator("[data-figure=open_pnl]")).to_have_text("+$20.00")

    # Given a daily loss limit of $30 set in the panel: $50 of room while $20 up
    panel.locator(".av-risk-edit summary").click()
    panel.locator("input[name=daily_loss_limit]").fill("30")
    panel.locator(".av-risk-form button[type=submit]").click()
    limit = panel.locator("tr[data-limit=daily_loss_limit]")
    expect(limit).to_contain_text("$30.00")
    expect(limit.locator("[data-field=room]")).to_have_text("$50.00 left")

    # When the feed falls to 24985 (15 points under the entry: -$30 open, no signal at all), the
    # executor's risk desk locks the account and flattens it; the page shows it live
    set_last_price(redis_client, "24985")
    banner = panel.locator("[data-role=lock]")
    expect(banner).to_contain_text("Locked until", timeout=15_000)
    expect(banner).to_contain_text("daily loss limit of $30.00")
    expect(page.locator(".toast").first).to_contain_text("is locked until")
    expect(panel.locator(".av-positions")).to_contain_text("Flat", timeout=15_000)
    expect(panel.locator(".av-orders")).to_contain_text("No working orders.")
    shoot(page, "account-panel-locked")
    unlock = api.post(f"/api/subaccounts/{sub_id}/unlock", {})
    assert unlock.status_code == 409


def test_the_ticket_asks_before_an_order_above_the_users_size(
    stack, api, new_page, redis_client, sessions
):
    made = api.post("/api/accounts", {"broker": "paper", "name": "Practice"})
    assert made.status_code == 201, made.text
    sub_id = made.json()["subaccounts"][0]["id"]
    set_last_price(redis_client, "25000")
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/manual-trader")
    ticket = page.locator("#ticket")
    expect(ticket.locator("input[name=confirm_above]")).to_have_value("5")

    # Given a size of 3 set beside the ticket, and an order for 4
    ticket.locator("input[name=confirm_above]").fill("3")
    ticket.locator("input[name=confirm_above]").dispatch_event("change")
    expect(page.locator(".toast").last).to_contain_text("more than 3 contracts")
    ticket.locator("select[name=subaccount_id]").select_option(str(sub_id))
    ticket.locator("input[name=quantity]").fill("4")

    # When it is placed and the question is answered "Cancel", nothing is sent
    page.locator("#place").click()
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_contain_text("This order is for 4 contracts, more than the 3")
    dialog.locator("button[value=cancel]").click()
    assert api.ok("/api/orders")["orders"] == []

    # And answered yes, the order goes, for 4
    page.locator("#place").click()
    page.locator("dialog.confirm button[value=ok]").click()
    expect(page.locator("#orders")).to_contain_text("4")
    assert [o["quantity"] for o in api.ok("/api/orders")["orders"]] == [4]
    assert api.ok("/api/me")["manual_confirm_above"] == 3


def test_a_tradovate_panel_shows_the_brokers_cash_and_realized_pnl_beside_ours(
    stack, api, new_page, redis_client, sessions
):
    # Given a Tradovate subaccount whose account socket snapshot (what the executor keeps in
    # Redis) has the broker's cash balance of today with fees our figure leaves out. The account
    # is in error, so the stack's executor does not dial it and the snapshot stays as written.
    user_id = api.ok("/api/me")["id"]
    with db.transaction(sessions) as s:
        account = Account(
            user_id=user_id, broker="tradovate", name="Funded", environment="demo", status="error"
        )
        account.subaccounts.append(Subaccount(name="DEMO1234567", broker_account_id=7_654_321))
        s.add(account)
        s.flush()
        sub_id = account.subaccounts[0].id
    today = trade_date(datetime.now(UTC)).isoformat()
    view = {
        "subaccount_id": sub_id,
        "trade_date": today,
        "positions": [],
        "working_orders": [],
        "fills": [],
        "realized_pnl_today": 10.0,
        "trades_today": 1,
        "broker_cash": {"amount": 49_975.0, "realized_pnl": -25.0, "as_of": today},
        "updated_at": datetime.now(UTC).isoformat(),
    }
    redis_client.set(f"jt:broker_view:{sub_id}", json.dumps(view), ex=300)

    # When the trader opens its panel, then the broker's word shows beside ours
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/accounts")
    page.locator(f"tr[data-subaccount-id='{sub_id}'] [data-action=view]").click()
    panel = page.locator(f".account-view[data-subaccount-id='{sub_id}']")
    expect(panel.locator("[data-figure=realized_pnl_today]")).to_have_text("+$10.00")
    broker = panel.locator("[data-role=broker-cash]")
    expect(broker).to_contain_text("Cash balance (broker)")
    expect(broker.locator("[data-figure=broker_cash_amount]")).to_have_text("$49,975.00")
    expect(broker).to_contain_text("Realized today (broker)")
    expect(broker.locator("[data-figure=broker_realized_pnl]")).to_have_text("-$25.00")
    shoot(page, "account-panel-broker-cash")
