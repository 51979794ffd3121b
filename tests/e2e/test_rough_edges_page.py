"""The pages' rough edges in a real browser against the running services: a wrong value said beside
its input in the label's words, long names cut with an ellipsis, the chart's tooltip and legend,
the PnL column kept on a phone, and a simulated feed never called real-time."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from libs.common.storage.embedded import free_port
from tests.e2e.browser_support import PHONE, log_in, send, shoot

LONG_NAME = "Mean reversion on the micro Nasdaq, London open, two targets"  # 60 characters


def test_a_wrong_value_is_said_beside_its_input_and_a_long_name_is_cut(stack, api, new_page):
    assert len(LONG_NAME) == 60
    api.create_recorder(name=LONG_NAME)
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/recorders")

    # A 60-character name is cut with an ellipsis in the list, the whole name in its title
    name = page.locator("#recorders tbody tr[data-recorder-id] .name-cut").first
    expect(name).to_have_attribute("title", LONG_NAME)
    page.wait_for_function(  # fails after LIVE_S when the name is shown whole
        """() => {
          const n = document.querySelector("#recorders tbody tr[data-recorder-id] .name-cut");
          return n !== null && n.clientWidth > 0 && n.scrollWidth > n.clientWidth;
        }"""
    )
    table_width = page.locator("#recorders").evaluate("t => t.getBoundingClientRect().width")
    assert table_width <= page.viewport_size["width"]

    # Given a new recorder with a take-profit of 0 ticks
    page.locator(".page-head [data-action=new]").click()
    form = page.locator("#recorder-form")
    form.locator("input[name=name]").fill("Zero TP")
    form.locator("input[name=tp_ticks]").fill("0")
    form.locator("button[type=submit]").click()

    # Then the API's sentence shows beside the input, in the label's words, not the API's
    message = form.locator("[data-error-for=tp_ticks]")
    expect(message).to_be_visible()
    expect(message).to_have_text(re.compile(r"^Take-profit \(ticks\) must be "))
    assert "tp_ticks" not in message.inner_text()
    tp = form.locator("input[name=tp_ticks]")
    expect(tp).to_have_attribute("aria-invalid", "true")
    expect(tp).to_have_attribute("aria-describedby", message.get_attribute("id"))
    expect(page.locator("#recorder-error")).to_be_hidden()  # nothing left over for the top line
    assert api.ok("/api/recorders")["recorders"][0]["name"] == LONG_NAME  # nothing was made
    shoot(page, "recorder-field-error")

    # When the value is changed the message goes, and the recorder is made
    tp.fill("8")
    expect(message).to_be_hidden()
    expect(tp).not_to_have_attribute("aria-invalid", "true")
    form.locator("button[type=submit]").click()
    expect(page.locator("#webhook-dialog")).to_be_visible()
    assert {r["name"] for r in api.ok("/api/recorders")["recorders"]} == {LONG_NAME, "Zero TP"}


def test_the_chart_tooltip_follows_the_crosshair_and_a_phone_keeps_the_pnl(
    stack, api, new_page, eventually
):
    # Given two closed trades, +$20 then -$20, and an open one
    recorder = api.create_recorder(name="Chart")
    for action, price in (
        ("buy", 25000),
        ("close", 25010),
        ("buy", 25010),
        ("close", 25000),
        ("buy", 25000),
    ):
        send(recorder["webhook_url"], {"action": action, "ticker": "MNQ1!", "price": price})
    eventually(
        lambda: (
            len(api.positions(recorder["id"], status="closed")) == 2
            and len(api.positions(recorder["id"], status="open")) == 1
        ),
        "two closed trades and an open one",
    )
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/dashboard")

    # The legend names both lines
    legend = page.locator("#chart-legend")
    expect(legend).to_contain_text("Cumulative PnL")
    expect(legend).to_contain_text("Drawdown")

    # When the pointer is over the chart, the tooltip shows the time and each series' value
    chart = page.locator("#chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None
    tooltip = page.locator("#chart .chart-tooltip")
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    expect(tooltip).to_be_visible()
    expect(tooltip.locator("[data-series=pnl]")).to_contain_text("Cumulative PnL")
    expect(tooltip.locator("[data-series=drawdown]")).to_contain_text("Drawdown")
    expect(tooltip.locator(".chart-tooltip-time")).to_have_text(re.compile(r"\d{2}:\d{2}:\d{2}"))
    # Right edge: the last trade, back to $0.00 with a $20.00 drawdown
    page.mouse.move(box["x"] + box["width"] - 80, box["y"] + box["height"] / 2)
    expect(tooltip.locator("[data-series=pnl] b")).to_have_text("$0.00")
    expect(tooltip.locator("[data-series=drawdown] b")).to_have_text("-$20.00")
    shoot(page, "chart-tooltip")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] + 60)  # off the chart
    expect(tooltip).to_be_hidden()

    # And on a phone (390 px) the trade history keeps its PnL column, in view
    phone = new_page(PHONE)
    log_in(phone, stack.url("ui"), stack.email, stack.password, "/dashboard")
    header = phone.locator("#trades thead th", has_text=re.compile(r"^PnL$"))
    expect(header).to_be_visible()
    cells = phone.locator("#trades tbody td.pnl")
    expect(cells).to_have_count(2)
    for i in range(2):
        cell = cells.nth(i)
        expect(cell).to_be_visible()
        right = cell.evaluate("c => c.getBoundingClientRect().right")
        assert right <= PHONE["width"], f"the PnL cell ends at {right}px, off a 390 px screen"
    expect(cells.first).to_have_text(re.compile(r"\$20\.00"))
    # and the open positions their unrealized PnL
    unrealized = phone.locator("#open-positions thead th", has_text="Unrealized")
    expect(unrealized).to_be_visible()
    right = unrealized.evaluate("c => c.getBoundingClientRect().right")
    assert right <= PHONE["width"], f"Unrealized ends at {right}px, off a 390 px screen"
    expect(phone.locator("#open-positions tbody td.unrealized")).to_be_visible()
    shoot(phone, "dashboard-trades", "phone")


def test_a_simulated_feed_is_called_simulated_never_real_time(stack, new_page, redis_client):
    # Given the price feed running the simulator
    stack.env.update(PRICE_SOURCE="sim", PRICE_FEED_PORT=str(free_port()), PRICE_WATCHLIST="MNQ")
    stack.start("price-feed")
    stack.wait_healthy("price-feed")
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/accounts")

    # Then the feed's symbols and the session's quotes say Simulated, and nothing says real-time
    symbol = page.locator("#feed-symbols tbody tr", has_text="MNQ")
    expect(symbol).to_contain_text("Simulated", timeout=20_000)
    expect(page.locator("#tv-facts")).to_contain_text("simulated")
    expect(page.locator("#feed-facts")).to_contain_text("Simulated")
    text = page.locator("body").inner_text()
    assert not re.search(r"real[- ]time", text, re.IGNORECASE), text
    shoot(page, "accounts-simulated-feed")
