"""Login throttling, session cookie flags and the security headers on pages."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.ui.app import create_app

ALICE = {"email": "alice@example.com", "password": "alice pass"}
WRONG = {**ALICE, "password": "guess"}


def login(client, body: dict, address: str = "203.0.113.7"):
    return client.post("/login", json=body, environ_base={"REMOTE_ADDR": address})


def test_five_wrong_passwords_lock_that_email_from_that_address_even_for_the_right_one(
    client, alice
):
    # Given five wrong passwords for alice from one address
    assert [login(client, WRONG).status_code for _ in range(5)] == [401] * 5

    # When the right password comes next from the same address
    locked = login(client, ALICE)

    # Then it is refused with 429, a plain sentence and when to come back
    assert locked.status_code == 429
    assert locked.get_json()["ok"] is False
    assert "Too many failed logins" in locked.get_json()["error"]
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    # And alice from another address, or another user from this one, is not affected
    assert login(client, ALICE, address="198.51.100.9").status_code == 200


def test_a_successful_login_clears_the_count(client, alice):
    for _ in range(4):
        assert login(client, WRONG).status_code == 401
    assert login(client, ALICE).status_code == 200
    # Four more failures after the success are not a lockout yet
    assert [login(client, WRONG).status_code for _ in range(4)] == [401] * 4
    assert login(client, ALICE).status_code == 200


def test_many_emails_from_one_address_hit_the_address_limit(
    settings, sessions, redis_client, make_user
):
    # Given a UI allowing 3 failures per address, whatever the email
    app = create_app(
        replace(settings, login_max_failures_per_address=3),
        sessions=sessions,
        redis_client=redis_client,
    )
    make_user(email="carol@example.com", password="carol pass")
    client = app.test_client()
    for n in range(3):
        assert (
            login(client, {"email": f"nobody{n}@example.com", "password": "x"}).status_code == 401
        )

    # When a real user logs in from that address
    refused = login(client, {"email": "carol@example.com", "password": "carol pass"})

    # Then the address is refused until its window ends
    assert refused.status_code == 429
    assert (
        login(
            client, {"email": "carol@example.com", "password": "carol pass"}, "192.0.2.1"
        ).status_code
        == 200
    )


def test_the_login_form_shows_the_lockout_on_the_page(client, alice):
    for _ in range(5):
        login(client, WRONG)
    page = client.get("/login", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    form = {**ALICE, "csrf_token": token, "next": "/"}
    answer = client.post("/login", data=form, environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert answer.status_code == 429
    assert "Too many failed logins" in answer.get_data(as_text=True)
    assert answer.headers["Retry-After"]


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [("http://localhost:8082", False), ("https://trade.example.com", True)],
)
def test_session_cookie_is_httponly_samesite_and_secure_over_https(
    settings, sessions, redis_client, alice, public_url, secure
):
    app = create_app(
        replace(settings, ui_public_url=public_url), sessions=sessions, redis_client=redis_client
    )
    answer = login(app.test_client(), ALICE)
    assert answer.status_code == 200
    [cookie] = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session=")]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite"} <= attributes
    assert "SameSite=Lax" in cookie
    assert ("secure" in attributes) is secure


def test_pages_carry_security_headers(client):
    page = client.get("/login")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert (
        "default-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
        and "object-src 'none'" in csp
    )
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert (
        "Strict-Transport-Security" not in page.headers
    )  # plain http: HSTS would be ignored anyway


def test_https_pages_add_strict_transport_security(settings, sessions, redis_client):
    app = create_app(
        replace(settings, ui_public_url="https://trade.example.com"),
        sessions=sessions,
        redis_client=redis_client,
    )
    page = app.test_client().get("/login")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.com",  # a tab browsers drop: "//evil.com"
        "/%0a/evil.com",
        "/%0d%0a/evil.com",
        "/\\evil.com",
        "//evil.com",
        "https://evil.com/",
        "/%2F%2Fevil.com",  # "///evil.com" once decoded again by a proxy
        "javascript:alert(1)",
    ],
)
def test_after_login_the_redirect_stays_on_this_site(client, alice, target):
    assert login(client, ALICE).status_code == 200  # logged in: GET /login redirects at once
    answer = client.get(f"/login?next={target}")
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "evil.com" not in location and "javascript" not in location, location


def test_a_plain_path_after_login_is_kept(client, alice):
    login(client, ALICE)
    answer = client.get("/login?next=/recorders?recorder_id=3")
    assert answer.headers["Location"] == "/recorders?recorder_id=3"


def test_answers_with_a_new_api_key_or_webhook_token_are_never_cached(client, alice):
    key = client.post("/api/api-keys", json={"name": "cli"}, headers=alice[1])
    recorder = client.post("/api/recorders", json={"name": "MNQ"}, headers=alice[1])
    rotated = client.post(
        f"/api/recorders/{recorder.get_json()['id']}/rotate-token", headers=alice[1]
    )
    for answer in (key, recorder, rotated, client.get("/api/recorders", headers=alice[1])):
        assert answer.headers["Cache-Control"] == "no-store"


def test_guesses_spread_over_many_addresses_still_lock_the_account(client, alice, bob):
    # Given 20 wrong passwords for alice, each from another address (none reaches its own limit)
    for n in range(20):
        assert login(client, WRONG, address=f"198.51.100.{n}").status_code == 401
    # Then the right password from yet another address waits too: the account has a limit
    answer = login(client, ALICE, address="192.0.2.44")
    assert answer.status_code == 429 and answer.headers["Retry-After"]
    # ... while another user's login from that address is not held back
    bob_login = {"email": "bob@example.com", "password": "correct horse"}
    assert login(client, bob_login, address="192.0.2.44").status_code == 200
