"""The `justtrades` command as a user runs it: a real process, URLs from the environment."""

from __future__ import annotations

from sqlalchemy import select

from libs.common.storage.models import ApiKey, User
from services.ui.app import create_app


def test_creating_the_same_user_twice_fails_with_a_clear_message(run_cli, sessions):
    # Given a user made with the CLI
    first = run_cli("user", "create", "trader@example.com", "--password", "long enough")
    assert first.returncode == 0, first.stderr
    assert "Created user trader@example.com." in first.stdout

    # When the same email is used again, in another case
    second = run_cli("user", "create", "Trader@Example.com", "--password", "long enough")

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
    assert "the password must have at least 8 characters" in result.stderr
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
    made = run_cli("user", "create", "trader@example.com", "--password", "long enough")
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
