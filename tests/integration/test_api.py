"""The UI's JSON API against real PostgreSQL and Redis: auth, ownership, recorders, signals,
positions, dashboard numbers, the OpenAPI document, and the gunicorn server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select, text, update

from libs.common import recorder_tokens, streams
from libs.common.config import PROJECT_ROOT
from libs.common.storage import db
from libs.common.storage.embedded import free_port
from libs.common.storage.models import ApiKey, Fill, Position, Recorder, Signal
from tests.integration.engine_support import running_engine  # noqa: F401 (a fixture)

T0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def make_position(sessions):
    def make(recorder, pnl: str = "0", closed_at: datetime | None = None, **fields) -> Position:
        values = dict(
            symbol="MNQ",
            side="long",
            quantity=Decimal(1),
            avg_entry_price=Decimal("25640"),
            status="closed" if closed_at else "open",
            realized_pnl=Decimal(pnl),
            closed_at=closed_at,
            exit_price=Decimal("25650") if closed_at else None,
            exit_reason="signal" if closed_at else None,
            opened_at=(closed_at or T0) - timedelta(minutes=5),
            opened_ms=0,
        )
        values.update(fields)
        values.setdefault("entry_cost", values["quantity"] * values["avg_entry_price"])
        with db.transaction(sessions) as s:
            position = Position(recorder_id=recorder.id, **values)
            s.add(position)
        return position

    return make


@pytest.fixture
def make_signal(sessions):
    def make(recorder, received_at: datetime = T0, status: str = "applied", **fields) -> Signal:
        with db.transaction(sessions) as s:
            sig = Signal(
                id=uuid.uuid4(),
                recorder_id=recorder.id,
                received_at=received_at,
                action="buy",
                ticker="MNQ1!",
                symbol="MNQ",
                price=Decimal("25640"),
                raw="{}",
                status=status,
                **fields,
            )
            s.add(sig)
        return sig

    return make


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


# --- recorders ---------------------------------------------------------------------------


def test_create_recorder_answers_201_with_webhook_url_and_caches_token(
    client, alice, settings, redis_client
):
    user, key = alice
    resp = client.post(
        "/api/recorders", json={"name": "MNQ trend", "tp_ticks": 20, "sl_ticks": 40}, headers=key
    )
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["webhook_url"] == f"http://hooks.test/webhook/{body['webhook_token']}"
    assert (body["default_qty"], body["on_opposite"], body["allow_dca"], body["enabled"]) == (
        1,
        "reverse",
        True,
        True,
    )
    assert (
        body["tp_ticks"],
        body["sl_ticks"],
        body["allow_delayed_exits"],
        body["open_positions"],
    ) == (20, 40, False, 0)
    ref = recorder_tokens.lookup(redis_client, settings, body["webhook_token"])
    assert ref == recorder_tokens.RecorderRef(body["id"], user.id, "MNQ trend", True)


def test_a_json_body_sent_as_a_form_is_read_as_json(client, alice):
    # Given curl's default Content-Type (a form) on a JSON body, as `curl -d '{...}'` sends it
    resp = client.post(
        "/api/recorders",
        data='{"name": "Sent as a form"}',
        content_type="application/x-www-form-urlencoded",
        headers=alice[1],
    )
    # Then the recorder is created from the JSON, like any other body
    assert resp.status_code == 201
    assert resp.get_json()["name"] == "Sent as a form"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x", "default_qty": 0}, "default_qty must be a positive number"),
        ({"name": "x", "default_qty": "lots"}, "default_qty must be a positive number"),
        ({"name": "x", "tp_ticks": 0}, "tp_ticks"),
        ({"name": "x", "sl_ticks": 2.5}, "sl_ticks"),
        ({"name": "x", "on_opposite": "flip"}, "on_opposite"),
        ({"name": "x", "allow_dca": "yes"}, "allow_dca"),
        ({"name": "x", "colour": "red"}, "unknown field: colour"),
        ({}, "name is required"),
    ],
)
def test_bad_recorder_fields_answer_422_naming_the_field_and_create_nothing(
    client, alice, sessions, payload, named
):
    resp = client.post("/api/recorders", json=payload, headers=alice[1])
    assert resp.status_code == 422
    assert resp.get_json()["ok"] is False and named in resp.get_json()["error"]
    assert count(sessions, Recorder) == 0


def test_body_that_is_not_json_answers_400(client, alice):
    resp = client.post("/api/recorders", data="{name:", headers=alice[1])
    assert resp.status_code == 400
    assert resp.get_json()["error"].startswith("The request body is not valid JSON: ")


def test_partial_update_changes_only_given_fields_and_refreshes_cache(
    client, alice, settings, redis_client
):
    created = client.post(
        "/api/recorders", json={"name": "A", "tp_ticks": 8}, headers=alice[1]
    ).get_json()
    resp = client.put(
        f"/api/recorders/{created['id']}", json={"enabled": False, "sl_ticks": 12}, headers=alice[1]
    )
    assert resp.status_code == 200
    assert (
        resp.get_json()["tp_ticks"],
        resp.get_json()["sl_ticks"],
        resp.get_json()["enabled"],
    ) == (8, 12, False)
    assert recorder_tokens.lookup(redis_client, settings, created["webhook_token"]).enabled is False
    bad = client.put(f"/api/recorders/{created['id']}", json={"name": None}, headers=alice[1])
    assert bad.status_code == 422 and "name" in bad.get_json()["error"]


def test_rotate_token_replaces_the_cached_token(client, alice, settings, redis_client):
    created = client.post("/api/recorders", json={"name": "A"}, headers=alice[1]).get_json()
    rotated = client.post(
        f"/api/recorders/{created['id']}/rotate-token", headers=alice[1]
    ).get_json()
    assert rotated["webhook_token"] != created["webhook_token"]
    assert recorder_tokens.lookup(redis_client, settings, created["webhook_token"]) is None
    assert (
        recorder_tokens.lookup(redis_client, settings, rotated["webhook_token"]).recorder_id
        == created["id"]
    )


@pytest.mark.usefixtures("running_engine")  # the engine deletes the rows
def test_delete_removes_recorder_token_signals_and_positions(
    client, alice, settings, redis_client, sessions, make_position, make_signal
):
    created = client.post("/api/recorders", json={"name": "A"}, headers=alice[1]).get_json()
    recorder = Recorder(id=created["id"])
    make_position(recorder)
    make_position(recorder, pnl="5", closed_at=T0)
    make_signal(recorder)
    resp = client.delete(f"/api/recorders/{created['id']}", headers=alice[1])
    assert resp.status_code == 200
    assert recorder_tokens.lookup(redis_client, settings, created["webhook_token"]) is None
    assert (count(sessions, Recorder), count(sessions, Position), count(sessions, Signal)) == (
        0,
        0,
        0,
    )
    assert client.get(f"/api/recorders/{created['id']}", headers=alice[1]).status_code == 404


@pytest.mark.usefixtures("running_engine")  # the engine deletes the rows
def test_reset_history_keeps_open_positions(
    client, alice, make_recorder, make_position, make_signal, sessions
):
    recorder = make_recorder(alice[0])
    open_position = make_position(recorder, symbol="MES")
    closed = make_position(recorder, pnl="5", closed_at=T0)
    with db.transaction(sessions) as s:
        s.add(
            Fill(position_id=closed.id, kind="entry", side="buy", quantity=1, price=1, filled_at=T0)
        )
    make_signal(recorder, position_id=open_position.id)
    body = client.post(f"/api/recorders/{recorder.id}/reset-history", headers=alice[1]).get_json()
    assert (body["deleted_signals"], body["deleted_positions"]) == (1, 1)
    with sessions() as s:
        assert s.scalars(select(Position.id)).all() == [open_position.id]
    assert (count(sessions, Signal), count(sessions, Fill)) == (0, 0)


def test_webhook_templates_are_json_once_tradingview_fills_them(client, alice, make_recorder):
    recorder = make_recorder(alice[0], name='MNQ "trend"')
    body = client.get(f"/api/recorders/{recorder.id}/webhook", headers=alice[1]).get_json()
    assert body["webhook_url"] == f"http://hooks.test/webhook/{recorder.webhook_token}"
    indicator = json.loads(body["templates"]["indicator"].replace("{{close}}", "25640.25"))
    assert indicator["recorder"] == 'MNQ "trend"' and indicator["price"] == 25640.25
    strategy = body["templates"]["strategy"]
    for placeholder in (
        "{{strategy.order.price}}",
        "{{strategy.order.contracts}}",
        "{{strategy.position_size}}",
    ):
        strategy = strategy.replace(placeholder, "1")
    assert json.loads(strategy)["market_position"] == "{{strategy.market_position}}"
    plots = {'{{plot("Stop")}}': "25630.5", '{{plot("Target")}}': "25660", "{{close}}": "25640"}
    levels, update = body["templates"]["levels"], body["templates"]["update"]
    for placeholder, value in plots.items():
        levels, update = levels.replace(placeholder, value), update.replace(placeholder, value)
    assert (json.loads(levels)["sl_price"], json.loads(levels)["tp_price"]) == (25630.5, 25660)
    assert json.loads(update)["action"] == "update" and json.loads(update)["sl_price"] == 25630.5
    assert body["how_to"]


# --- auth and ownership ------------------------------------------------------------------


def test_no_auth_bad_key_or_revoked_key_answer_401(client, make_user, make_api_key):
    revoked = make_api_key(make_user(), revoked=True)
    for headers in ({}, {"Authorization": "Bearer jt_nope"}, revoked):
        resp = client.get("/api/recorders", headers=headers)
        assert resp.status_code == 401 and resp.get_json()["ok"] is False
    assert client.post("/api/recorders", json={"name": "x"}).status_code == 401


def last_used(sessions) -> datetime | None:
    with sessions() as s:
        return s.scalar(select(ApiKey.last_used_at))


def test_api_key_use_is_recorded_at_most_once_a_minute(client, alice, sessions):
    client.get("/api/recorders", headers=alice[1])
    first = last_used(sessions)
    assert first is not None
    client.get("/api/recorders", headers=alice[1])
    assert last_used(sessions) == first
    with db.transaction(sessions) as s:
        s.execute(update(ApiKey).values(last_used_at=first - timedelta(minutes=2)))
    client.get("/api/recorders", headers=alice[1])
    assert last_used(sessions) > first


def test_login_form_needs_its_csrf_field_and_redirects(client, alice):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"email": "alice@example.com", "password": "alice pass", "next": "/api/recorders"}
    assert client.post("/login", data=form).status_code == 403
    resp = client.post("/login", data={**form, "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/api/recorders"
    assert client.get("/api/recorders").status_code == 200


def test_another_users_things_answer_404_and_stay_out_of_lists(
    client, alice, bob, make_recorder, make_position, make_signal
):
    theirs = make_recorder(bob[0])
    position, sig = make_position(theirs), make_signal(theirs)
    mine = make_recorder(alice[0])
    key = alice[1]
    for method, url in [
        ("get", f"/api/recorders/{theirs.id}"),
        ("put", f"/api/recorders/{theirs.id}"),
        ("delete", f"/api/recorders/{theirs.id}"),
        ("get", f"/api/recorders/{theirs.id}/webhook"),
        ("post", f"/api/recorders/{theirs.id}/reset-history"),
        ("post", f"/api/recorders/{theirs.id}/rotate-token"),
        ("get", f"/api/positions/{position.id}"),
        ("get", f"/api/signals/{sig.id}"),
        ("get", f"/api/positions?recorder_id={theirs.id}"),
        ("get", f"/api/signals?recorder_id={theirs.id}"),
    ]:
        resp = getattr(client, method)(url, json={}, headers=key)
        assert resp.status_code == 404, url
    assert [r["id"] for r in client.get("/api/recorders", headers=key).get_json()["recorders"]] == [
        mine.id
    ]
    assert client.get("/api/positions", headers=key).get_json()["positions"] == []
    assert client.get("/api/signals", headers=key).get_json()["signals"] == []


def test_session_login_then_writes_need_the_csrf_token(client, alice):
    assert (
        client.post(
            "/login", json={"email": "alice@example.com", "password": "alice pass"}
        ).status_code
        == 200
    )
    assert client.get("/api/recorders").status_code == 200
    refused = client.post("/api/recorders", json={"name": "A"})
    assert refused.status_code in (400, 403) and refused.get_json()["ok"] is False
    token = client.get("/api/csrf-token").get_json()["csrf_token"]
    assert (
        client.post(
            "/api/recorders", json={"name": "A"}, headers={"X-CSRFToken": token}
        ).status_code
        == 201
    )
    assert client.post("/logout", headers={"X-CSRFToken": token}).status_code == 200
    assert client.get("/api/recorders").status_code == 401


def test_session_cookie_is_httponly_and_samesite_lax(client, alice):
    resp = client.post("/login", json={"email": "alice@example.com", "password": "alice pass"})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_email_and_wrong_password_get_the_same_401(client, alice):
    wrong_email = client.post("/login", json={"email": "eve@example.com", "password": "alice pass"})
    wrong_password = client.post("/login", json={"email": "alice@example.com", "password": "guess"})
    assert wrong_email.status_code == wrong_password.status_code == 401
    assert wrong_email.get_json() == wrong_password.get_json()


def test_unknown_url_and_wrong_method_answer_json(client, alice):
    assert client.get("/api/nothing", headers=alice[1]).get_json()["ok"] is False
    resp = client.delete("/api/recorders", headers=alice[1])
    assert resp.status_code == 405 and resp.get_json()["ok"] is False


# --- signals and positions ---------------------------------------------------------------


def test_pending_signal_is_read_from_its_redis_key(
    client, alice, bob, make_recorder, settings, redis_client
):
    mine, theirs = make_recorder(alice[0]), make_recorder(bob[0])
    pending, foreign = str(uuid.uuid4()), str(uuid.uuid4())
    # As the gateway writes them: the recorder id, with an expiry.
    redis_client.set(settings.stream("signal_pending:" + pending), mine.id, ex=60)
    redis_client.set(settings.stream("signal_pending:" + foreign), theirs.id, ex=60)
    body = client.get(f"/api/signals/{pending}", headers=alice[1]).get_json()
    assert body == {
        "ok": True,
        "id": pending,
        "signal_id": pending,
        "status": "pending",
        "reason": None,
        "position_id": None,
        "recorder_id": mine.id,
    }
    assert client.get(f"/api/signals/{foreign}", headers=alice[1]).status_code == 404
    assert client.get(f"/api/signals/{uuid.uuid4()}", headers=alice[1]).status_code == 404
    assert client.get("/api/signals/not-a-uuid", headers=alice[1]).status_code == 404


def test_signals_are_listed_newest_first_in_pages(client, alice, make_recorder, make_signal):
    recorder = make_recorder(alice[0])
    made = [make_signal(recorder, received_at=T0 + timedelta(seconds=i)) for i in range(5)]
    make_signal(recorder, received_at=T0, status="rejected", reason="no price")
    first = client.get("/api/signals?limit=2&status=applied", headers=alice[1]).get_json()
    assert [s["id"] for s in first["signals"]] == [str(made[4].id), str(made[3].id)]
    rest = client.get(
        f"/api/signals?status=applied&before={first['next_before']}", headers=alice[1]
    ).get_json()
    assert [s["id"] for s in rest["signals"]] == [str(s.id) for s in reversed(made[:3])]
    assert client.get("/api/signals?status=bogus", headers=alice[1]).status_code == 422


def test_positions_filter_by_status_and_symbol(client, alice, make_recorder, make_position):
    recorder = make_recorder(alice[0])
    open_mnq = make_position(recorder)
    make_position(recorder, pnl="3", closed_at=T0)
    make_position(recorder, symbol="ES")
    body = client.get("/api/positions?status=open&symbol=MNQ1!", headers=alice[1]).get_json()
    assert [p["id"] for p in body["positions"]] == [open_mnq.id]
    assert (
        body["positions"][0]["side"] == "long" and body["positions"][0]["avg_entry_price"] == 25640
    )
    resp = client.get("/api/positions?status=pending", headers=alice[1])
    assert resp.status_code == 422 and "status" in resp.get_json()["error"]


def test_open_positions_carry_last_price_and_unrealized_pnl(
    client, alice, make_recorder, make_position, redis_client, settings
):
    recorder = make_recorder(alice[0])
    long_mnq = make_position(recorder, quantity=Decimal(2))
    short_es = make_position(recorder, symbol="ES", side="short", avg_entry_price=Decimal("6000"))
    closed = make_position(recorder, pnl="3", closed_at=T0)
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "25652.25")
    body = client.get("/api/positions", headers=alice[1]).get_json()
    by_id = {p["id"]: p for p in body["positions"]}
    # (25652.25 - 25640) x long x 2 contracts x $2 a point
    assert (
        by_id[long_mnq.id]["last_price"] == 25652.25
        and by_id[long_mnq.id]["unrealized_pnl"] == 49.0
    )
    assert by_id[short_es.id]["last_price"] is None and by_id[short_es.id]["unrealized_pnl"] is None
    assert "unrealized_pnl" not in by_id[closed.id]
    redis_client.hset(settings.stream(streams.LAST_PRICE), "ES", "5990.5")
    body = client.get("/api/positions?status=open&symbol=ES", headers=alice[1]).get_json()
    assert body["positions"][0]["unrealized_pnl"] == 475.0  # (6000 - 5990.5) x short x 1 x $50


# --- dashboard ---------------------------------------------------------------------------


@pytest.fixture
def four_trades(alice, bob, make_recorder, make_position):
    recorder = make_recorder(alice[0])
    for pnl, closed in [
        ("20", T0),
        ("-35.5", T0 + timedelta(hours=2)),
        ("12.25", T0 + timedelta(days=1)),
        ("-4.75", T0 + timedelta(days=3)),
    ]:
        make_position(recorder, pnl=pnl, closed_at=closed, worst_unrealized_pnl=Decimal("-7.5"))
    make_position(recorder, realized_pnl=Decimal(100))  # open: not a trade
    make_position(make_recorder(bob[0]), pnl="999", closed_at=T0)  # someone else's
    return recorder


def test_dashboard_metrics_match_hand_computed_values(client, alice, four_trades):
    body = client.get("/api/dashboard/metrics", headers=alice[1]).get_json()
    assert body == {
        "ok": True,
        "net_pnl": -8.0,
        "win_rate": 50.0,
        "profit_factor": 0.8,  # 32.25 / 40.25
        "avg_win": 16.13,
        "avg_loss": -20.13,
        "expectancy": -2.0,
        "max_drawdown": 35.5,
        "gross_profit": 32.25,
        "gross_loss": 40.25,
        "trades": 4,
        "wins": 2,
        "losses": 2,
        "time_zone": "America/Chicago",
    }


def test_chart_data_tracks_cumulative_pnl_and_drawdown(client, alice, four_trades):
    points = client.get("/api/dashboard/chart-data", headers=alice[1]).get_json()["points"]
    assert [p["cumulative_pnl"] for p in points] == [20.0, -15.5, -3.25, -8.0]
    assert [p["drawdown"] for p in points] == [0.0, -35.5, -23.25, -28.0]
    assert points[0]["worst_unrealized_pnl"] == -7.5 and points[0]["time"] == "2026-11-02T14:30:00Z"


def test_trade_history_filters_by_inclusive_dates(client, alice, four_trades):
    body = client.get(
        "/api/dashboard/trade-history?from=2026-11-03&to=2026-11-05&per_page=1", headers=alice[1]
    ).get_json()
    assert body["total"] == 2 and [t["realized_pnl"] for t in body["trades"]] == [-4.75]
    page2 = client.get(
        "/api/dashboard/trade-history?from=2026-11-03&to=2026-11-05&per_page=1&page=2",
        headers=alice[1],
    )
    assert [t["realized_pnl"] for t in page2.get_json()["trades"]] == [12.25]
    bad = client.get("/api/dashboard/trade-history?from=yesterday", headers=alice[1])
    assert bad.status_code == 422 and "from" in bad.get_json()["error"]


def test_calendar_sums_each_day_of_the_month(client, alice, four_trades):
    body = client.get(
        f"/api/dashboard/calendar?month=2026-11&recorder_id={four_trades.id}", headers=alice[1]
    ).get_json()
    assert body["days"] == [
        {"date": "2026-11-02", "pnl": -15.5, "trades": 2},
        {"date": "2026-11-03", "pnl": 12.25, "trades": 1},
        {"date": "2026-11-05", "pnl": -4.75, "trades": 1},
    ]
    assert client.get("/api/dashboard/calendar?month=2026-13", headers=alice[1]).status_code == 422


# --- status, OpenAPI, server -------------------------------------------------------------


def test_status_reports_redis_and_postgres(client, alice):
    assert client.get("/api/status", headers=alice[1]).get_json() == {
        "ok": True,
        "services": {
            "ui": "ok",
            "redis": "ok",
            "postgres": "ok",
            "price_feed": "down",
            "engine": "down",
            "executor": "down",
            "notifier": "down",
        },
        "price_feed": None,
        "engines": {"partitions": 1, "without_engine": [0]},
    }


def test_status_shows_the_engine_executor_and_notifier_once_they_run(
    client, alice, settings, engine
):
    from libs.common import orders
    from services.executor.service import build_worker
    from services.notifier.service import worker as notifier_worker

    rq_conn = orders.rq_connection(settings.redis_url)
    # What the services do when they start: the engine takes its leader lock, each RQ worker
    # registers on its queues.
    with engine.connect() as lead:
        lead.execute(text("SELECT pg_advisory_lock(:k)"), {"k": db.ENGINE_LEADER_LOCK})
        executor = build_worker(rq_conn, settings.stream_prefix, "status-executor")
        executor.register_birth()
        services = client.get("/api/status", headers=alice[1]).get_json()["services"]
        assert (services["engine"], services["executor"], services["notifier"]) == (
            "ok",
            "ok",
            "down",
        )
        notifier = notifier_worker(settings, rq_conn, "status-notifier")
        notifier.register_birth()
        services = client.get("/api/status", headers=alice[1]).get_json()["services"]
        assert services["notifier"] == "ok"
        lead.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": db.ENGINE_LEADER_LOCK})
    executor.register_death()
    services = client.get("/api/status", headers=alice[1]).get_json()["services"]
    assert (services["engine"], services["executor"]) == ("down", "down")


def test_openapi_describes_every_route(app, client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("pages."):
            continue  # HTML pages, not the JSON API
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], f"{method} {path}"
    assert "default_qty" in doc["components"]["schemas"]["RecorderCreate"]["properties"]
    for target in re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(doc)):
        node = doc
        for part in target.split("/"):
            node = node[part]  # every $ref resolves inside the document


def test_main_without_urls_exits_with_a_clear_message(tmp_path):
    if (PROJECT_ROOT / ".env").exists():
        pytest.skip("a local .env may set the URLs")
    env = {"PATH": os.environ.get("PATH", ""), "JT_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "services.ui"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "DATABASE_URL and REDIS_URL must be set (or use `justtrades run`)" in result.stderr


def test_serve_answers_real_http_under_gunicorn(settings, tmp_path, alice, make_recorder):
    recorder = make_recorder(alice[0])
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "UI_PORT": str(port),
        "JT_VAR_DIR": str(tmp_path / "var"),
        "PUBLIC_URL": "http://hooks.test",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "services.ui"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = requests.get(
                    f"http://127.0.0.1:{port}/api/recorders", headers=alice[1], timeout=5
                )
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the UI did not start listening"
                time.sleep(0.2)
        assert resp.status_code == 200
        assert [r["webhook_url"] for r in resp.json()["recorders"]] == [
            f"http://hooks.test/webhook/{recorder.webhook_token}"
        ]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_unexpected_errors_answer_500_in_json(app, client, alice):
    def boom():
        raise RuntimeError("database on fire")

    app.add_url_rule("/api/boom", "boom", boom)
    resp = client.get("/api/boom", headers=alice[1])
    assert resp.status_code == 500
    assert resp.get_json() == {
        "ok": False,
        "error": "Something went wrong on our side; the error was logged.",
    }
