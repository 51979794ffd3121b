"""The `justtrades` command as a user runs it: a real process, URLs from the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select

from libs.common.config import PROJECT_ROOT
from libs.common.storage.models import ApiKey, User
from services.ui.app import create_app
from tests.e2e.conftest import service_env

STRONG = "a long enough passphrase"
NEW = "plum orchard lantern 47"


def test_creating_the_same_user_twice_fails_with_a_clear_message(run_cli, sessions):
    # Given a user made with the CLI
    first = run_cli("user", "create", "trader@example.com", "--password", STRONG)
    assert first.returncode == 0, first.stderr
    assert "Created user trader@example.com." in first.stdout

    # When the same email is used again, in another case
    second = run_cli("user", "create", "Trader@Example.com", "--password", STRONG)

    # Then the command fails with one sentence on stderr, and there is still one user
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        "justtrades: a user trader@example.com already exists"
    )
    with sessions() as s:
        assert s.scalars(select(User.email)).all() == ["trader@example.com"]


def test_a_short_password_is_refused_and_no_user_is_made(run_cli, sessions):
    result = run_cli("user", "create", "trader@example.com", "--password", "short")

    assert result.returncode == 1
    assert "the password must have at least 12 characters; nothing changed" in result.stderr
    assert "Traceback" not in result.stderr
    with sessions() as s:
        assert s.scalars(select(User)).all() == []


def test_an_api_key_for_an_unknown_email_is_refused(run_cli, sessions):
    result = run_cli("apikey", "create", "nobody@example.com")

    assert result.returncode == 1
    assert "no user nobody@example.com" in result.stderr
    assert "Traceback" not in result.stderr
    with sessions() as s:
        assert s.scalars(select(ApiKey)).all() == []


def test_the_printed_api_key_authenticates_against_the_api(
    run_cli, settings, sessions, redis_client
):
    # Given a user made with the CLI
    made = run_cli("user", "create", "trader@example.com", "--password", STRONG)
    assert made.returncode == 0, made.stderr

    # When an API key is made for them
    result = run_cli("apikey", "create", "trader@example.com")

    # Then the last line of stdout is the key, and the API knows who sends it
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    client = create_app(settings, sessions=sessions, redis_client=redis_client).test_client()
    answer = client.get("/api/recorders", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"ok": True, "recorders": []}
    # And the key is stored only as a hash
    with sessions() as s:
        [stored] = s.scalars(select(ApiKey)).all()
    assert key not in (stored.key_hash, stored.prefix)
    wrong = client.get("/api/recorders", headers={"Authorization": f"Bearer {key}x"})
    assert wrong.status_code == 401


def test_db_upgrade_succeeds_on_a_migrated_database(run_cli):
    result = run_cli("db", "upgrade")

    assert result.returncode == 0, result.stderr
    assert "Database is at the latest migration." in result.stdout


def logged_in_browser(app, email: str, password: str):
    browser = app.test_client()
    answer = browser.post("/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.get_json()
    return browser


def test_user_password_sets_the_password_and_ends_every_browser_session(
    run_cli, settings, sessions, redis_client
):
    # Given a user logged in on two browsers
    assert run_cli("user", "create", "trader@example.com", "--password", STRONG).returncode == 0
    app = create_app(settings, sessions=sessions, redis_client=redis_client)
    browsers = [logged_in_browser(app, "trader@example.com", STRONG) for _ in range(2)]

    # When the operator sets a new password with the CLI
    result = run_cli("user", "password", "Trader@Example.com", "--password", NEW)

    # Then it says so, both browsers are logged out, and only the new password logs in
    assert result.returncode == 0, result.stderr
    assert "Changed the password of trader@example.com and ended 2 browser session(s)" in (
        result.stdout
    )
    for browser in browsers:
        assert browser.get("/api/recorders").status_code == 401
    refused = app.test_client().post(
        "/login", json={"email": "trader@example.com", "password": STRONG}
    )
    assert refused.status_code == 401
    logged_in_browser(app, "trader@example.com", NEW)
    with sessions() as s:
        assert s.scalar(select(User.password_changed_at)) is not None


def test_user_password_asks_twice_when_no_password_is_given(settings, sessions, tmp_path):
    env = service_env(settings, tmp_path / "cli-var")

    def cli(*args: str, typed: str) -> subprocess.CompletedProcess[str]:
        # A new session has no terminal, so getpass reads what is "typed" on stdin.
        return subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            cwd=PROJECT_ROOT,
            env=env,
            input=typed,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )

    assert (
        cli("user", "create", "trader@example.com", "--password", STRONG, typed="").returncode == 0
    )
    with sessions() as s:
        before = s.scalar(select(User.password_hash))

    differ = cli("user", "password", "trader@example.com", typed=f"{NEW}\n{NEW}x\n")
    assert differ.returncode == 1
    assert "the two passwords differ; nothing changed" in differ.stderr

    same = cli("user", "password", "trader@example.com", typed=f"{NEW}\n{NEW}\n")
    assert same.returncode == 0, same.stderr
    with sessions() as s:
        assert s.scalar(select(User.password_hash)) != before


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("12345678", "the password must have at least 12 characters"),
        ("password1234", "the password is too common or too easy to guess"),
        ("trader@example.com", "the password must not be the email address of the account"),
    ],
)
def test_user_password_refuses_a_weak_password_and_changes_nothing(
    run_cli, sessions, password, message
):
    assert run_cli("user", "create", "trader@example.com", "--password", STRONG).returncode == 0
    with sessions() as s:
        before = s.scalar(select(User.password_hash))

    result = run_cli("user", "password", "trader@example.com", "--password", password)

    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    with sessions() as s:
        assert s.scalar(select(User.password_hash)) == before


def test_user_admin_makes_an_operator_and_revoke_takes_it_back(run_cli, sessions):
    assert run_cli("user", "create", "ops@example.com", "--password", STRONG).returncode == 0

    made = run_cli("user", "admin", "ops@example.com")
    assert made.returncode == 0, made.stderr
    assert "ops@example.com is now an operator" in made.stdout
    with sessions() as s:
        assert s.scalar(select(User.is_admin)) is True

    revoked = run_cli("user", "admin", "ops@example.com", "--revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert "ops@example.com is no longer an operator." in revoked.stdout
    with sessions() as s:
        assert s.scalar(select(User.is_admin)) is False

    unknown = run_cli("user", "admin", "nobody@example.com")
    assert unknown.returncode == 1
    assert "no user nobody@example.com" in unknown.stderr


def test_the_first_user_is_the_operator_and_later_ones_are_not(run_cli, sessions):
    first = run_cli("user", "create", "owner@example.com", "--password", STRONG)
    second = run_cli("user", "create", "friend@example.com", "--password", STRONG)

    assert "As the first user, they are the operator." in first.stdout
    assert second.stdout.strip() == "Created user friend@example.com."
    with sessions() as s:
        rows = s.execute(select(User.email, User.is_admin).order_by(User.id)).all()
    assert [tuple(r) for r in rows] == [("owner@example.com", True), ("friend@example.com", False)]
