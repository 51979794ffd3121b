"""The whole signal path with every service a real process: a webhook over HTTP to the gateway,
`jt:signals` in Redis, the position engine, PostgreSQL, and back out through the UI's JSON API.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal

import requests
from sqlalchemy import func, select

from libs.common.serialize import num, usd
from libs.common.storage.models import Fill, Signal
from libs.common.streams import SignalMessage
from services.position_engine import rules
from services.position_engine.replay import replay_log

SIGNALS = "jt:signals"
TICKS = "jt:ticks"
GROUP = "position_engine"
SETTLED = {"applied", "ignored", "rejected"}


def send(url: str, body: str | dict, content_type: str = "application/json") -> requests.Response:
    """What TradingView does: POST the alert message to the webhook URL."""
    if isinstance(body, dict):
        body = json.dumps(body)
    return requests.post(url, data=body.encode(), headers={"Content-Type": content_type}, timeout=5)


def accepted(response: requests.Response) -> str:
    assert response.status_code == 202, response.text
    assert response.json()["ok"] is True
    return response.json()["signal_id"]


def send_tick(redis_client, price: str, symbol: str = "MNQ") -> None:
    """A tick as anyone could write it with redis-cli."""
    now_ms = str(time.time_ns() // 1_000_000)
    redis_client.xadd(TICKS, {"symbol": symbol, "price": price, "ts": now_ms, "source": "test"})


def pending_signals(redis_client) -> int:
    return redis_client.xpending(SIGNALS, GROUP)["pending"]


def render(template: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        template = template.replace("{{" + placeholder + "}}", value)
    assert "{{" not in template, template
    return template


def test_worked_example_from_webhook_to_take_profit(stack, api, redis_client, eventually):
    # Given a recorder with TP 20 ticks and SL 40 ticks, and the webhook URL the UI gives for it
    recorder = api.create_recorder(name="MNQ trend", tp_ticks=20, sl_ticks=40)
    setup = api.ok(f"/api/recorders/{recorder['id']}/webhook")
    assert setup["webhook_url"] == f"{stack.url('gateway')}/webhook/{recorder['webhook_token']}"
    assert set(setup["templates"]) == {"indicator", "strategy", "levels", "update"}

    # When TradingView sends buy @ 25640 and buy @ 25630 on MNQ1!
    sent = [
        accepted(send(setup["webhook_url"], {"action": "buy", "ticker": "MNQ1!", "price": price}))
        for price in (25640, 25630)
    ]

    # Then both are applied and the recorder is long 2 @ 25635 with the levels of docs/contract.md
    # §3
    for signal_id in sent:
        assert api.settled_signal(signal_id)["status"] == "applied"
    [position] = api.positions(recorder["id"])
    assert {k: position[k] for k in ("symbol", "side", "status")} == {
        "symbol": "MNQ",
        "side": "long",
        "status": "open",
    }
    assert (position["quantity"], position["avg_entry_price"]) == (2, 25635)
    assert (position["tp_price"], position["sl_price"]) == (25640, 25625)

    # When a tick at 25628 arrives on jt:ticks
    send_tick(redis_client, "25628")
    # Then the position is marked: unrealized −28.00 at worst, 7 points adverse
    eventually(
        lambda: [
            p
            for p in api.positions(recorder["id"])
            if p["worst_unrealized_pnl"] == -28 and p["max_adverse"] == 7
        ],
        "worst_unrealized_pnl -28 and max_adverse 7",
    )

    # When a tick at 25641 goes through the take-profit
    send_tick(redis_client, "25641")
    # Then the position exits exactly at the TP, 25640, realizing +20.00
    [closed] = eventually(
        lambda: [p for p in api.positions(recorder["id"]) if p["status"] == "closed"],
        "the position to close at its take-profit",
    )
    assert (closed["exit_reason"], closed["exit_price"]) == ("tp", 25640)
    assert (closed["realized_pnl"], closed["max_favorable"]) == (20.0, 5)
    assert closed["closed_at"] is not None
    # And the engine has acknowledged every signal it read
    eventually(lambda: pending_signals(redis_client) == 0, "XPENDING jt:signals to drain to 0")


def test_pine_strategy_alert_as_text_plain_reverses_to_the_target(stack, api):
    # Given a recorder and its Pine strategy template, rendered as TradingView would
    recorder = api.create_recorder(name="Pine bot")
    setup = api.ok(f"/api/recorders/{recorder['id']}/webhook")
    template = setup["templates"]["strategy"]
    common = {"ticker": "MNQ1!", "timenow": "2026-11-24T14:30:00Z"}
    go_long = render(
        template,
        {
            **common,
            "strategy.order.action": "buy",
            "strategy.order.price": "25640",
            "strategy.order.contracts": "2",
            "strategy.position_size": "2",
            "strategy.market_position": "long",
            "strategy.order.id": "Long",
        },
    )
    go_short = render(
        template,
        {
            **common,
            "strategy.order.action": "sell",
            "strategy.order.price": "25650",
            "strategy.order.contracts": "3",
            "strategy.position_size": "-1",
            "strategy.market_position": "short",
            "strategy.order.id": "Short",
        },
    )

    # When both arrive as text/plain, the way TradingView sends a non-JSON-typed alert
    long_id = accepted(send(setup["webhook_url"], go_long, "text/plain; charset=utf-8"))
    assert api.settled_signal(long_id)["status"] == "applied"
    short_id = accepted(send(setup["webhook_url"], go_short, "text/plain; charset=utf-8"))
    short_signal = api.settled_signal(short_id)

    # Then the long 2 is closed by the reversal and the strategy's target, short 1, is open
    assert short_signal["status"] == "applied"
    closed, opened = api.positions(recorder["id"])
    assert (closed["side"], closed["quantity"], closed["status"]) == ("long", 2, "closed")
    assert (closed["exit_reason"], closed["exit_price"]) == ("reverse", 25650)
    assert closed["realized_pnl"] == 40.0  # 10 points × 2 contracts × $2
    assert (opened["side"], opened["quantity"], opened["status"]) == ("short", 1, "open")
    assert opened["avg_entry_price"] == 25650
    assert short_signal["position_id"] == opened["id"]
    assert short_signal["raw"] == go_short  # the body is kept as it came


def test_bad_webhooks_get_clear_errors_change_nothing_and_never_log_the_token(
    stack, api, redis_client
):
    # Given a recorder with a webhook URL
    recorder = api.create_recorder(name="Careful")
    url = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]
    unknown_token = uuid.uuid4().hex

    # When an alert arrives with a placeholder TradingView did not render
    unrendered = send(url, {"action": "buy", "ticker": "MNQ1!", "price": "{{close}}"})
    unrendered_ticker = send(url, '{"action": "buy", "ticker": "{{tickr}}", "price": 25640}')
    # and another goes to a token no recorder has
    stranger = send(f"{stack.url('gateway')}/webhook/{unknown_token}", {"action": "buy"})

    # Then each gets a status and one sentence naming what is wrong
    assert unrendered.status_code == 422
    assert unrendered.json()["ok"] is False
    assert "field price" in unrendered.json()["error"]
    assert "{{close}}" in unrendered.json()["error"]
    assert unrendered_ticker.status_code == 422
    assert "field ticker" in unrendered_ticker.json()["error"]
    assert "{{tickr}}" in unrendered_ticker.json()["error"]
    assert stranger.status_code == 404
    assert stranger.json() == {"ok": False, "error": "No recorder has this webhook token."}
    # And nothing reached the engine or the recorder's history
    assert redis_client.xlen(SIGNALS) == 0
    assert api.ok("/api/signals", recorder_id=recorder["id"])["signals"] == []
    # And the gateway logged the requests with the token cut out
    log = stack.log("gateway")
    assert log.count("/webhook/<redacted>") >= 3, log[-2000:]
    assert recorder["webhook_token"] not in log
    assert unknown_token not in log


def test_malformed_stream_entry_is_rejected_and_the_engine_keeps_going(
    stack, api, redis_client, eventually
):
    # Given a recorder
    recorder = api.create_recorder(name="Hand-written")
    url = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]

    # When someone XADDs an entry with an action the engine does not know
    bad_id = str(uuid.uuid4())
    redis_client.xadd(
        SIGNALS,
        {
            "signal_id": bad_id,
            "recorder_id": str(recorder["id"]),
            "action": "hold",
            "symbol": "MNQ",
            "received_at": "1",
        },
    )

    # Then the API shows that signal rejected, with the reason
    def rejected() -> dict | None:
        response = api.get(f"/api/signals/{bad_id}")
        return response.json() if response.status_code == 200 else None

    bad = eventually(rejected, "the hand-written entry to be recorded")
    assert bad["status"] == "rejected"
    assert "action" in bad["reason"] and "hold" in bad["reason"]
    assert bad["position_id"] is None

    # And a valid webhook after it is still applied by the same engine process
    good_id = accepted(send(url, {"action": "sell", "ticker": "MNQ1!", "price": 25640}))
    assert api.settled_signal(good_id)["status"] == "applied"
    assert stack.processes["engine"].poll() is None
    [position] = api.positions(recorder["id"])
    assert (position["side"], position["quantity"]) == ("short", 1)
    eventually(lambda: pending_signals(redis_client) == 0, "XPENDING jt:signals to drain to 0")


Outcomes = dict[str, tuple[str, int]]  # signal_id → (status, number of fills)


def _replay(entries, recorder: dict) -> tuple[list[rules.PositionState], Outcomes]:
    """Every position the recorder rules give for the stream's signals in order, and per
    signal its status and number of fills."""
    settings = rules.RecorderSettings(
        default_qty=Decimal(str(recorder["default_qty"])),
        tp_ticks=recorder["tp_ticks"],
        sl_ticks=recorder["sl_ticks"],
        on_opposite=recorder["on_opposite"],
        allow_dca=recorder["allow_dca"],
        enabled=recorder["enabled"],
    )
    signals = []
    for _, fields in entries:
        m = SignalMessage.from_fields(fields)
        signals.append(
            rules.SignalInput(
                signal_id=m.signal_id,
                symbol=m.symbol,
                action=m.action,
                price=m.price,
                qty=m.qty,
                position_size=m.position_size,
                market_position=m.market_position,
                received_ms=m.received_at,
            )
        )
    replayed = replay_log(signals, settings)
    return replayed.positions, replayed.outcomes


def _as_api(p: rules.PositionState) -> dict:
    """The fields of a replayed position as GET /api/positions shows them."""
    return {
        "side": p.side,
        "quantity": num(p.quantity),
        "avg_entry_price": num(p.avg_entry_price),
        "status": p.status,
        "exit_price": num(p.exit_price),
        "exit_reason": p.exit_reason,
        "realized_pnl": usd(p.realized_pnl),
    }


def test_engine_killed_mid_flow_applies_every_signal_exactly_once(
    stack, api, redis_client, sessions, eventually
):
    # Given a recorder that reverses on every opposite signal
    recorder = api.create_recorder(name="Crash test")
    url = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]
    bodies = [
        {
            "action": "buy" if i % 2 == 0 else "sell",
            "ticker": "MNQ1!",
            "price": str(Decimal("25600") + Decimal("1.25") * i),
            "qty": i % 3 + 1,
        }
        for i in range(30)
    ]
    sent: list[str] = []

    def post_all() -> None:
        for body in bodies:
            sent.append(accepted(send(url, body)))

    # When 30 webhooks flow and the engine is SIGKILLed part-way through them
    poster = threading.Thread(target=post_all)
    poster.start()
    deadline = time.monotonic() + 10
    while len(sent) < 10 and poster.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    stack.kill("engine")
    poster.join(timeout=30)
    assert len(sent) == 30, f"only {len(sent)} webhooks were accepted"
    # and it is started again with the same command and environment
    stack.start("engine")
    stack.wait_healthy("engine")

    # Then every signal is decided, and recorded once
    def all_settled() -> list[dict] | None:
        listed = api.ok("/api/signals", recorder_id=recorder["id"], limit=100)["signals"]
        settled = len(listed) >= len(sent) and {s["status"] for s in listed} <= SETTLED
        return listed if settled else None

    listed = eventually(all_settled, "all 30 signals to be applied or ignored", timeout=20)
    assert sorted(s["id"] for s in listed) == sorted(sent)
    with sessions() as s:
        rows = s.scalar(select(func.count(Signal.id)).where(Signal.recorder_id == recorder["id"]))
        fills = dict(s.execute(select(Fill.signal_id, func.count()).group_by(Fill.signal_id)).all())
    assert rows == 30

    # And the positions are exactly what the recorder rules give for the stream, in stream order
    entries = redis_client.xrange(SIGNALS)
    assert [f["signal_id"] for _, f in entries] == sent
    expected, per_signal = _replay(entries, recorder)
    assert {s["id"]: s["status"] for s in listed} == {k: v[0] for k, v in per_signal.items()}
    assert {str(k): v for k, v in fills.items()} == {k: v[1] for k, v in per_signal.items() if v[1]}
    wanted = [_as_api(p) for p in expected]
    actual = [{k: p[k] for k in wanted[0]} for p in api.positions(recorder["id"])]
    assert actual == wanted
    assert [p["status"] for p in api.positions(recorder["id"], status="open")] == ["open"]
    eventually(lambda: pending_signals(redis_client) == 0, "XPENDING jt:signals to drain to 0")


def test_another_user_sees_nothing_of_the_first_users_recorder(stack, api):
    # Given a recorder of the first user with an open position
    recorder = api.create_recorder(name="Mine")
    url = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]
    signal_id = accepted(send(url, {"action": "buy", "ticker": "MNQ1!", "price": 25640}))
    assert api.settled_signal(signal_id)["status"] == "applied"
    assert len(api.positions(recorder["id"])) == 1

    # When a second user, made with the CLI, calls the API with their own key
    other = stack.user_api("other@example.com")

    # Then the first user's recorder, its webhook, signals and positions answer as if missing
    for path in (
        f"/api/recorders/{recorder['id']}",
        f"/api/recorders/{recorder['id']}/webhook",
        f"/api/signals/{signal_id}",
    ):
        response = other.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["ok"] is False
    assert other.get("/api/positions", recorder_id=recorder["id"]).status_code == 404
    # And their own lists are empty
    assert other.ok("/api/positions")["positions"] == []
    assert other.ok("/api/recorders")["recorders"] == []
    assert other.ok("/api/signals")["signals"] == []
