"""Exit plans in a real browser against the running services: a plan made in the recorder form
with its live preview, its legs and stop on the live position as ticks fill a leg and move the
stop, and the trade's detail with its fills, stop moves and excursions.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.browser_support import PHONE, log_in, send, send_tick, shoot


def fill_plan(page: Page) -> None:
    """Points; stop 10; targets 5 ×1, 10 ×1, 20 (the rest); break-even at 4, offset 1."""
    form = page.locator("#recorder-form")
    form.locator("input[name=name]").fill("MNQ legs")
    form.locator("input[name=default_qty]").fill("3")
    form.locator("input[name=exit_mode][value=plan]").check()
    expect(form.locator("input[name=tp_ticks]")).to_be_hidden()
    form.locator("select[name=plan_unit]").select_option("points")
    form.locator("input[name=plan_stop]").fill("10")
    legs = page.locator("#plan-legs li")
    expect(legs).to_have_count(2)  # a new plan starts with two legs
    page.locator("#plan-add-leg").click()
    expect(legs).to_have_count(3)
    expect(page.locator("#plan-add-leg")).to_be_hidden()  # three at most
    expect(legs.nth(2)).to_contain_text("the rest")
    expect(legs.nth(2).locator("input[data-role=qty]")).to_be_hidden()
    for leg, (distance, contracts) in enumerate((("5", "1"), ("10", "1"), ("20", None))):
        legs.nth(leg).locator("input[data-role=distance]").fill(distance)
        if contracts:
            legs.nth(leg).locator("input[data-role=qty]").fill(contracts)
        expect(legs.nth(leg).locator(".unit")).to_have_text("points")
    form.locator("input[name=plan_breakeven]").check()
    form.locator("input[name=plan_be_trigger]").fill("4")
    form.locator("input[name=plan_be_offset]").fill("1")
    form.locator("input[name=preview_qty]").fill("3")


def test_a_plan_made_in_the_form_runs_live_on_the_position_and_in_the_trade_detail(
    stack, new_page, redis_client
):
    base = stack.url("ui")
    page = new_page()
    log_in(page, base, stack.email, stack.password, "/recorders")
    page.locator("#first-recorder [data-action=new]").click()
    fill_plan(page)

    # The preview shows each leg's level and contracts for MNQ1! long 25000 × 3, from the API
    preview = page.locator("#plan-preview")
    expect(preview.locator("[data-level=target-1]")).to_have_text("25,005.00 × 1 contract")
    expect(preview.locator("[data-level=target-3]")).to_have_text("25,020.00 × 1 contract")
    expect(preview.locator("[data-level=stop]")).to_have_text("24,990.00")
    expect(preview.locator("[data-level=breakeven]")).to_have_text(
        "at 25,004.00 the stop moves to 25,001.00"
    )
    shoot(page, "exit-plan-form")
    # A leg out of order: the API's sentence shows beside the form, and the save is refused
    second = page.locator("#plan-legs li").nth(1).locator("input[data-role=distance]")
    second.fill("4")
    expect(page.locator("#plan-error")).to_have_text(
        "exits.targets[1]: legs must be in increasing distance."
    )
    expect(preview).to_be_hidden()
    page.locator("#recorder-save").click()
    expect(page.locator("#recorder-error")).to_contain_text("exits.targets[1]")
    # Fixed, the preview follows the side too
    second.fill("10")
    page.locator("select[name=preview_side]").select_option("short")
    expect(preview.locator("[data-level=target-1]")).to_have_text("24,995.00 × 1 contract")
    expect(page.locator("#plan-error")).to_be_hidden()

    # When saved, the recorder holds the plan and its row shows it
    page.locator("#recorder-save").click()
    webhook = page.locator("#webhook-url")
    expect(webhook).to_have_value(re.compile(r"/webhook/\w+$"))
    hook_url = webhook.input_value()
    page.locator("#webhook-dialog footer [data-close]").click()
    (recorder,) = stack.api.ok("/api/recorders")["recorders"]
    assert recorder["exits"] == {
        "stop": {"points": 10},
        "targets": [{"points": 5, "qty": 1}, {"points": 10, "qty": 1}, {"points": 20}],
        "breakeven": {"trigger": {"points": 4}, "offset": {"points": 1}},
    }
    assert (recorder["tp_ticks"], recorder["sl_ticks"]) == (None, None)
    row = page.locator(f"#recorders tr[data-recorder-id='{recorder['id']}']")
    expect(row).to_contain_text("5 points / 10 points / 20 points")
    expect(row).to_contain_text("10 points · BE")

    # Editing it loads the plan back into the editor
    row.locator("[data-action=edit]").click()
    expect(page.locator("input[name=exit_mode][value=plan]")).to_be_checked()
    expect(page.locator("select[name=plan_unit]")).to_have_value("points")
    expect(page.locator("#plan-legs li")).to_have_count(3)
    expect(page.locator("#plan-legs li").nth(1).locator("input[data-role=distance]")).to_have_value(
        "10"
    )
    expect(page.locator("input[name=plan_be_offset]")).to_have_value("1")
    expect(page.locator("#plan-preview [data-level=target-2]")).to_have_text(
        "25,010.00 × 1 contract"
    )
    page.locator("#recorder-dialog header [data-close]").click()

    # When the alert opens a position, its legs and its stop show on the live row
    send(hook_url, {"action": "buy", "ticker": "MNQ1!", "price": 25000})
    position = page.locator("#open-positions tbody tr[data-position-id]")
    expect(position).to_have_count(1)
    legs = position.locator("td.legs .leg")
    expect(legs).to_have_text(["25,005.00 × 1", "25,010.00 × 1", "25,020.00 × 1"])
    expect(position.locator("td.stop")).to_have_text("24,990.00 · stop-loss")

    # When a tick reaches target 1 (and the break-even trigger), the leg fills and the stop moves
    send_tick(redis_client, "25005.25")
    expect(legs.nth(0)).to_have_text("25,005.00 × 0 · filled 1")
    expect(legs.nth(0)).to_have_class(re.compile(r"\bfilled\b"))
    expect(position.locator("td.stop")).to_have_text("25,001.00 · break-even")
    expect(position.locator("td.num").nth(0)).to_have_text("2")  # quantity left
    shoot(page, "exit-plan-live")

    # The trade detail shows the fills by kind, the stop's move and the excursions
    position.locator("td.symbol").click()
    dialog = page.locator("#trade-dialog")
    expect(dialog).to_be_visible()
    fills = dialog.locator("#trade-fills tbody tr")
    expect(fills).to_have_count(2)
    expect(fills.nth(0)).to_contain_text("Entry")
    expect(fills.nth(1)).to_contain_text("Target")
    expect(fills.nth(1)).to_contain_text("25,005.00")
    expect(dialog.locator("#trade-stops tbody tr")).to_contain_text("25,001.00")
    expect(dialog.locator("#trade-stops tbody tr")).to_contain_text("break-even")
    mfe = dialog.locator("[data-excursion=max_favorable]")
    expect(mfe).to_contain_text("5.25 pts")
    expect(mfe).to_contain_text("21 ticks · $10.50 per contract")
    expect(dialog.locator("[data-held]")).to_have_text(re.compile(r"^\d+s$"))
    shoot(page, "trade-detail-open")

    # When the price comes back to the moved stop, the dialog follows the close live
    send_tick(redis_client, "25000.75")
    expect(dialog).to_have_attribute("data-status", "closed")
    expect(fills).to_have_count(3)
    expect(fills.nth(2)).to_contain_text("Exit")
    expect(fills.nth(2)).to_contain_text("25,001.00")
    dialog.locator("footer [data-close]").click()
    expect(position).to_have_count(0)

    # And the closed trade's row on the dashboard opens the same detail
    page.goto(base + "/dashboard")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    page.locator("#trades tbody tr[data-position-id] td.symbol").click()
    expect(page.locator("#trade-fills tbody tr")).to_have_count(3)
    expect(page.locator("#trade-facts")).to_contain_text("Closed")
    shoot(page, "trade-detail-closed")


def test_the_plan_editor_fits_a_phone(stack, new_page):
    base = stack.url("ui")
    page = new_page(PHONE)
    log_in(page, base, stack.email, stack.password, "/recorders")
    page.locator("#first-recorder [data-action=new]").click()
    fill_plan(page)
    expect(page.locator("#plan-preview [data-level=target-1]")).to_have_text(
        "25,005.00 × 1 contract"
    )
    # A trailing stop adds its trigger and distance to the preview
    page.locator("input[name=plan_trail]").check()
    page.locator("input[name=plan_trail_trigger]").fill("6")
    page.locator("input[name=plan_trail_distance]").fill("3")
    expect(page.locator("#plan-preview [data-level=trail]")).to_have_text(
        "from 25,006.00, 3 points behind the best price"
    )
    shoot(page, "exit-plan-form", "phone")
    # Nothing in the dialog is wider than the phone: no sideways scrolling to reach a field
    overflow = page.evaluate(
        "(() => { const d = document.getElementById('recorder-dialog');"
        " return d.scrollWidth - d.clientWidth; })()"
    )
    assert overflow <= 0
