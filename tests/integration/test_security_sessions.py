"""Browser logins that end: logout, a password change and "log out everywhere" make every
earlier cookie worthless (401 on /api, the login page for pages), and close its live sockets.
Also the password policy at `POST /api/password`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import socketio
from playwright.sync_api import expect
from sqlalchemy import select, update

from libs.common.storage import db
from libs.common.storage.models import LoginSession, User, utcnow
from services.ui import live, login_sessions
from tests.e2e.browser_support import browser, new_page  # noqa: F401 (browser fixtures)
from tests.e2e.browser_support import log_in as log_in_page
from tests.integration.live_support import (
    Browser,
    browser_factory,
    eventually,
    publish,
    quick_websocket_close,
    relaying,
    serving,
    wait_subscribed,
)

ALICE, ALICE_PASSWORD = "alice@example.com", "alice pass"
NEW_PASSWORD = "plum orchard lantern 47"


def log_in(client, password: str = ALICE_PASSWORD, agent: str = "laptop") -> str:
    """Log `client` in as alice; returns its CSRF token."""
    answer = client.post(
        "/login",
        json={"email": ALICE, "password": password},
        headers={"User-Agent": agent},
    )
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["csrf_token"]


def with_cookie(app, cookie: str):
    """Another browser that carries a copy of a saved session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def saved_cookie(client) -> str:
    return client.get_cookie("session").value


def assert_logged_out(client) -> None:
    api = client.get("/api/recorders")
    assert api.status_code == 401
    assert api.get_json()["ok"] is False
    page = client.get("/dashboard")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login?next=")


def change_password(client, csrf: str, current: str, new: str):
    return client.post(
        "/api/password",
        json={"current_password": current, "new_password": new},
        headers={"X-CSRFToken": csrf},
    )


def test_a_cookie_saved_before_logout_is_refused_after_it(app, client, alice):
    # Given a logged-in browser whose cookie someone copied
    csrf = log_in(client)
    copy = with_cookie(app, saved_cookie(client))
    assert copy.get("/api/recorders").status_code == 200

    # When the browser logs out
    assert client.post("/logout", headers={"X-CSRFToken": csrf}).status_code == 200

    # Then the copied cookie no longer opens the API nor the pages
    assert_logged_out(copy)
    assert_logged_out(client)


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(
    app, alice, sessions, make_api_key
):
    # Given alice logged in on a laptop and on a phone
    laptop, phone = app.test_client(), app.test_client()
    csrf = log_in(laptop, agent="laptop")
    log_in(phone, agent="phone")

    # When she changes her password on the laptop
    answer = change_password(laptop, csrf, ALICE_PASSWORD, NEW_PASSWORD)

    # Then the phone is logged out, the laptop stays in, and only the new password works
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["sessions_ended"] == 1
    assert_logged_out(phone)
    assert laptop.get("/api/recorders").status_code == 200
    assert laptop.get("/dashboard").status_code == 200
    fresh = app.test_client()
    assert (
        fresh.post("/login", json={"email": ALICE, "password": ALICE_PASSWORD}).status_code == 401
    )
    log_in(fresh, NEW_PASSWORD)
    with sessions() as s:
        assert s.get_one(User, alice[0].id).password_changed_at is not None


def test_the_password_can_be_changed_with_an_api_key_and_every_browser_is_logged_out(
    app, client, alice
):
    log_in(client)
    answer = client.post(
        "/api/password",
        json={"current_password": ALICE_PASSWORD, "new_password": NEW_PASSWORD},
        headers=alice[1],
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["sessions_ended"] == 1
    assert_logged_out(client)


def test_log_out_everywhere_ends_every_session_including_this_one(app, alice, bob):
    # Given alice on two browsers, and bob on his own
    laptop, phone, bobs = app.test_client(), app.test_client(), app.test_client()
    csrf = log_in(laptop, agent="laptop")
    log_in(phone, agent="phone")
    assert bobs.post("/login", json={"email": "bob@example.com", "password": "correct horse"})
    listed = laptop.get("/api/sessions").get_json()["sessions"]
    assert sorted((s["user_agent"], s["current"]) for s in listed) == [
        ("laptop", True),
        ("phone", False),
    ]
    assert not {"id", "id_hash"} & set(listed[0])

    # When she logs out everywhere from the laptop
    answer = laptop.post("/api/sessions/end-all", headers={"X-CSRFToken": csrf})

    # Then both her browsers are logged out, and bob is not
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["sessions_ended"] == 2
    assert_logged_out(laptop)
    assert_logged_out(phone)
    assert bobs.get("/api/recorders").status_code == 200
    # And her API key still lists no session
    assert laptop.get("/api/sessions", headers=alice[1]).get_json()["sessions"] == []


@pytest.mark.parametrize(
    "change",
    [
        {"expires_at": utcnow() - timedelta(seconds=1)},
        {"ended_at": utcnow(), "ended_reason": "logout"},
    ],
    ids=["expired", "ended"],
)
def test_an_expired_or_ended_session_row_is_refused(client, alice, sessions, change):
    log_in(client)
    with sessions() as s:
        s.execute(update(LoginSession).where(LoginSession.user_id == alice[0].id).values(change))
        s.commit()
    assert_logged_out(client)


def test_a_login_keeps_only_a_hash_of_its_id_and_a_session_cookie_of_31_days(
    client, alice, sessions
):
    log_in(client, agent="Firefox on a laptop")
    with sessions() as s:
        [row] = s.scalars(select(LoginSession)).all()
    cookie = saved_cookie(client)
    assert row.id_hash not in cookie
    assert row.user_agent == "Firefox on a laptop"
    assert timedelta(days=30) < row.expires_at - row.created_at <= timedelta(days=31)


@pytest.mark.parametrize(
    ("new", "rule"),
    [
        ("12345678", "at least 12 characters"),
        ("short", "at least 12 characters"),
        ("password1234", "too common"),
        (ALICE, "must not be the email address"),
    ],
)
def test_the_policy_refuses_weak_passwords_naming_the_rule_and_changes_nothing(
    app, client, alice, sessions, new, rule
):
    # Given alice logged in on two browsers
    csrf = log_in(client)
    phone = app.test_client()
    log_in(phone, agent="phone")

    # When she tries a weak new password
    answer = change_password(client, csrf, ALICE_PASSWORD, new)

    # Then it is refused with the rule it breaks, and nothing changed
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error.startswith("new_password ") and rule in error
    assert phone.get("/api/recorders").status_code == 200
    log_in(app.test_client(), ALICE_PASSWORD)
    with sessions() as s:
        assert s.get_one(User, alice[0].id).password_changed_at is None


def test_a_wrong_current_password_is_403_and_changes_nothing(app, client, alice):
    csrf = log_in(client)
    answer = change_password(client, csrf, "not my password", NEW_PASSWORD)

    assert answer.status_code == 403
    assert answer.get_json()["error"].startswith("current_password is not your current password")
    log_in(app.test_client(), ALICE_PASSWORD)


# --- live sockets of an ended login ------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def quiet_queue_listeners() -> Iterator[None]:
    yield
    # The test apps' message-queue listeners outlive them (see test_live_events.py).
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)


@pytest.fixture
def browsers(app, monkeypatch) -> Iterator[Callable[[], Browser]]:
    quick_websocket_close(monkeypatch)
    with serving(app) as url, browser_factory(url) as make:
        yield make


@pytest.fixture
def relay(app, settings) -> Iterator[live.EventRelay]:
    with relaying(app, settings) as started:
        started.ensure_group()  # now, not whenever its thread gets to it: no event is missed
        yield started


def csrf_of(someone: Browser) -> dict[str, str]:
    token = someone.http.get(f"{someone.base_url}/api/csrf-token").json()["csrf_token"]
    return {"X-CSRFToken": token}


def test_logging_out_closes_that_sessions_socket_and_refuses_its_reconnect(
    browsers, relay, settings, redis_client, alice
):
    # Given alice with live updates open in two browsers
    leaving = browsers().login(ALICE, ALICE_PASSWORD).connect()
    staying = browsers().login(ALICE, ALICE_PASSWORD).connect("polling")
    wait_subscribed(redis_client, settings)

    saved = leaving.http.cookies.copy()

    # When one of them logs out
    answer = leaving.http.post(f"{leaving.base_url}/logout", headers=csrf_of(leaving))
    assert answer.status_code == 200

    # Then its socket is closed by the server, and its saved cookie cannot open another
    eventually(lambda: not leaving.sio.connected, "the logged-out socket to close")
    assert staying.sio.connected
    replay = browsers()
    replay.http.cookies.update(saved)
    with pytest.raises(socketio.exceptions.ConnectionError):
        replay.connect()
    assert replay.refusals == [{"message": "Log in first."}]
    # And the other browser still gets her events
    publish(redis_client, "position.opened", {"id": 7, "user_id": alice[0].id})
    eventually(lambda: staying.events, "the event on the browser still logged in")
    assert relay.sent == 1
    assert leaving.events == []


def test_a_password_change_closes_the_sockets_of_the_other_sessions(
    browsers, settings, redis_client, alice
):
    laptop = browsers().login(ALICE, ALICE_PASSWORD).connect()
    phone = browsers().login(ALICE, ALICE_PASSWORD).connect()
    wait_subscribed(redis_client, settings)

    answer = laptop.http.post(
        f"{laptop.base_url}/api/password",
        json={"current_password": ALICE_PASSWORD, "new_password": NEW_PASSWORD},
        headers=csrf_of(laptop),
    )

    assert answer.status_code == 200, answer.text
    eventually(lambda: not phone.sio.connected, "the phone's socket to close")
    assert laptop.sio.connected


def test_sessions_ended_outside_the_ui_have_their_sockets_closed_too(
    browsers, settings, sessions, redis_client, alice
):
    # Given alice's live updates open in a browser
    open_page = browsers().login(ALICE, ALICE_PASSWORD).connect()
    wait_subscribed(redis_client, settings)

    # When her logins are ended by another process, as `justtrades user password` does
    with db.transaction(sessions) as s:
        ended = login_sessions.end_logins(s, alice[0].id, login_sessions.PASSWORD_RESET, utcnow())
    asked = live.close_login_sockets_from_outside(settings, redis_client, ended)

    # Then the UI process holding the socket closes it
    assert asked == 1
    eventually(lambda: not open_page.sio.connected, "the socket to close")


# --- the Settings page, in a real browser ------------------------------------------------------


def test_the_settings_page_changes_the_password_and_logs_out_everywhere(
    app,
    alice,
    new_page,  # noqa: F811 (the fixture imported above)
):
    with serving(app) as base:
        page = new_page()
        log_in_page(page, base, ALICE, ALICE_PASSWORD, "/settings")
        expect(page.locator("#sessions tbody tr[data-current=true]")).to_contain_text(
            "This browser"
        )
        form = page.locator("#password-form")

        def submit(current: str, new: str, repeat: str) -> None:
            form.locator("input[name=current_password]").fill(current)
            form.locator("input[name=new_password]").fill(new)
            form.locator("input[name=repeat_password]").fill(repeat)
            page.click("#password-change")

        # A weak password, a repeat that differs, a wrong current one: each said beside its field
        submit(ALICE_PASSWORD, "12345678", "12345678")
        expect(form.locator("[data-error-for=new_password]")).to_contain_text(
            "at least 12 characters"
        )
        submit(ALICE_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x")
        expect(form.locator("[data-error-for=repeat_password]")).to_contain_text("does not match")
        submit("not my password", NEW_PASSWORD, NEW_PASSWORD)
        expect(form.locator("[data-error-for=current_password]")).to_contain_text(
            "not your current password"
        )
        expect(form.locator("[data-error-for=new_password]")).to_be_hidden()

        # The right one changes it, and this browser stays in
        submit(ALICE_PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
        expect(page.locator("#toasts")).to_contain_text("Password changed")
        expect(form.locator("input[name=current_password]")).to_have_value("")

        # "Log out everywhere" asks first, then lands on the login page
        page.click("#end-all")
        page.locator("dialog.confirm button[data-confirm]").click()
        expect(page).to_have_url(re.compile(r"/login"))
        page.goto(base + "/settings")
        expect(page).to_have_url(re.compile(r"/login\?next="))
