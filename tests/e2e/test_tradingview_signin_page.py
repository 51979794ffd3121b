"""The TradingView sign-in on the Accounts page in a real browser: an operator saves it beside the
cookies, a bad key is named beside its input and nothing is stored, the secrets never come back
to the page, and Forget removes it."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select, update

from libs.common.storage import db
from libs.common.storage.models import TradingViewCredentials, User
from tests.e2e.browser_support import log_in, shoot

PASSWORD = "tv-password-shown-nowhere-41"
SECRET = "jbsw y3dp ehpk 3pxp krug s4tf"


def saved_rows(sessions) -> list[TradingViewCredentials]:
    with sessions() as s:
        return list(s.scalars(select(TradingViewCredentials)).all())


def test_an_operator_saves_the_sign_in_beside_the_cookies_and_forgets_it(stack, new_page, sessions):
    # Given the operator on the Accounts page
    with db.transaction(sessions) as s:
        s.execute(update(User).where(User.email == stack.email).values(is_admin=True))
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/accounts")
    form = page.locator("#tv-credentials-form")
    expect(form).to_be_visible()
    expect(page.locator("#tv-secret-help")).to_contain_text("Can't scan? Enter this key")
    expect(page.locator("#tv-kept")).to_contain_text("encrypted")
    expect(page.locator("#tv-kept")).to_contain_text("never shown again")

    # When a key that is not base32 is saved, the error stands beside the key and nothing is kept
    form.locator("input[name=username]").fill("trader7@example.com")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=totp_secret]").fill("this is not a key 0189")
    form.locator("button[type=submit]").click()
    expect(form).to_contain_text("base32")
    expect(form.locator("input[name=totp_secret]")).to_have_attribute("aria-invalid", "true")
    assert saved_rows(sessions) == []

    # When the real key is saved (as the app shows it, grouped in lower case)
    form.locator("input[name=totp_secret]").fill(SECRET)
    form.locator("button[type=submit]").click()

    # Then the page says a sign-in is saved, by a hint only, and the form is emptied
    facts = page.locator("#tv-facts")
    expect(facts).to_contain_text("(tr…)")
    expect(form.locator("input[name=password]")).to_have_value("")
    assert len(saved_rows(sessions)) == 1
    html = page.content()
    assert PASSWORD not in html
    assert "JBSW" not in html.upper()
    assert "trader7@" not in html
    shoot(page, "accounts-tradingview-sign-in")

    # And Forget removes it after a confirmation
    page.locator("#tv-credentials-forget").click()
    page.locator("dialog.confirm button[value=ok]").click()
    expect(facts).to_contain_text("not saved")
    expect(page.locator("#tv-credentials-forget")).to_be_hidden()
    assert saved_rows(sessions) == []
