"""Signals placed on a Tradovate account: the executor's real client against the broker
simulator."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from libs.common import streams
from libs.common.storage import db
from libs.common.storage.models import Account, OrderIntent, Subaccount, Trader
from libs.common.streams import SignalMessage
from services.executor.jobs import ExecutorContext
from services.executor.limiter import BrokerLimiter
from services.executor.upkeep import sweep
from services.position_engine.engine import PositionEngine
from tests.integration.tradovate_support import FRONT, USER, connect_demo_account


@pytest.fixture
def account(tv_settings, sessions, make_user, broker):
    """A Tradovate demo account connected with API credentials, as POST /api/accounts does."""
    user = make_user()
    connected = connect_demo_account(tv_settings, sessions, user.id)
    return user, connected.account_id, connected.subaccount_id


@pytest.fixture
def recorder_with_trader(make_recorder, account, sessions):
    user, _, subaccount_id = account
    recorder = make_recorder(user=user, tp_ticks=20, sl_ticks=40)
    with db.transaction(sessions) as s:
        s.add(
            Trader(
                user_id=user.id,
                recorder_id=recorder.id,
                subaccount_id=subaccount_id,
                multiplier=Decimal(1),
            )
        )
    return recorder


@pytest.fixture
def ctx(tv_settings):
    context = ExecutorContext(tv_settings)
    return context


@pytest.fixture
def position_engine(tv_settings, sessions, redis_client):
    eng = PositionEngine(tv_settings, sessions, redis_client, consumer="engine-tv")
    eng.prepare()
    return eng


def signal(settings, redis_client, eng, recorder, action, price):
    msg = SignalMessage(
        str(uuid.uuid4()),
        recorder.id,
        action,
        "MNQ1!",
        "MNQ",
        Decimal(str(price)),
        None,
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), msg.to_fields())
    while eng.step(block_ms=None):
        pass


def intents(sessions):
    with sessions() as s:
        return s.scalars(select(OrderIntent).order_by(OrderIntent.sequence)).all()


def sim_orders(broker):
    return sorted(broker.book.orders.values(), key=lambda o: o.id)


def test_entry_is_one_bracket_order_with_both_account_fields_and_a_client_id(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])
    [intent] = intents(sessions)
    assert intent.status == "accepted" and intent.contract == FRONT and intent.broker_order_id
    orders = sim_orders(broker)
    assert len(orders) == 3  # the entry and its two brackets
    entry = next(o for o in orders if str(o.id) == intent.broker_order_id)
    assert entry.spec.cl_ord_id == intent.cl_ord_id
    commands = [c for c in broker.book.commands.values() if c.get("clOrdId") == intent.cl_ord_id]
    assert len(commands) == 1 and commands[0]["isAutomated"] is True
    assert {o.status for o in orders if o.parent_id == entry.id} == {"Working"}


def test_reverse_liquidates_then_enters_in_order(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])
    broker.set_price(FRONT, "25642.00")  # between the long's SL and TP: its bracket stays working
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "sell", 25642)
    ctx.sender.drain(account[2])
    assert [(i.kind, i.status) for i in intents(sessions)] == [
        ("entry", "accepted"),
        ("close", "accepted"),
        ("entry", "accepted"),
    ]
    [position] = [p for p in broker.book.positions.values()]
    assert position.json()["netPos"] == -1
    working = [o for o in sim_orders(broker) if o.status == "Working"]
    assert len(working) == 2  # only the short's bracket; the liquidation cancelled the long's


def test_a_rejected_order_is_shown_and_not_retried(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    broker.reject_next("MaxPosLimitReached", "Max position limit reached")
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])
    ctx.sender.drain(account[2])
    [intent] = intents(sessions)
    assert (
        intent.status == "rejected"
        and "MaxPosLimitReached" in intent.error
        and intent.attempts == 1
    )


def test_a_token_expiring_mid_run_is_renewed_and_nothing_is_sent_twice(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    broker.expire_tokens()
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])  # 401: left in `sending`
    [intent] = intents(sessions)
    assert intent.status == "sending"
    with db.transaction(sessions) as s:
        s.get(OrderIntent, intent.id).sent_at = datetime(2026, 1, 1, tzinfo=UTC)
    ctx.sender.drain(account[2])  # asks the broker by clOrdId first, then sends with a new token
    [intent] = intents(sessions)
    assert intent.status == "accepted"
    sent = [c for c in broker.book.commands.values() if c.get("clOrdId") == intent.cl_ord_id]
    assert len(sent) == 1


def test_a_worker_killed_after_sending_does_not_send_again(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    [intent] = intents(sessions)
    # The worker claimed the intent and the broker got the order; then the worker died.
    with db.transaction(sessions) as s:
        row = s.get(OrderIntent, intent.id)
        row.status, row.attempts, row.sent_at, row.contract = (
            "sending",
            1,
            datetime(2026, 1, 1, tzinfo=UTC),
            FRONT,
        )
    ticket = ctx.sender._ticket(intent, _subaccount(sessions, account[2]))
    with sessions() as s:
        ctx.broker_for(s.get(Account, account[1])).send(ticket, s)
    rq_conn = __import__("libs.common.orders", fromlist=["x"]).rq_connection(tv_settings.redis_url)
    assert sweep(ctx, rq_conn) == 1
    ctx.sender.drain(account[2])
    [intent] = intents(sessions)
    assert intent.status == "accepted" and intent.attempts == 1
    assert (
        sum(1 for c in broker.book.commands.values() if c.get("clOrdId") == intent.cl_ord_id) == 1
    )


def test_a_worker_killed_after_a_liquidation_does_not_liquidate_again(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    # Given a long on the account, then a close signal whose liquidation reached Tradovate
    # before the worker died (claimed, sent, no answer recorded)
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "close", 25641)
    close = intents(sessions)[-1]
    assert close.kind == "close"
    with db.transaction(sessions) as s:
        row = s.get(OrderIntent, close.id)
        row.status, row.attempts, row.sent_at, row.contract = (
            "sending",
            1,
            datetime(2026, 1, 1, tzinfo=UTC),
            FRONT,
        )
    ticket = ctx.sender._ticket(close, _subaccount(sessions, account[2]))
    with sessions() as s:
        ctx.broker_for(s.get(Account, account[1])).send(ticket, s)
    liquidations = sum(
        1 for o in broker.book.orders.values() if o.spec.cl_ord_id is None and o.parent_id is None
    )

    # When the next drain finds it in `sending`
    ctx.sender.drain(account[2])

    # Then the flat position tells it the close went through: no second liquidation
    close = intents(sessions)[-1]
    assert close.status == "accepted" and close.attempts == 1 and "found flat" in close.error
    assert (
        sum(
            1
            for o in broker.book.orders.values()
            if o.spec.cl_ord_id is None and o.parent_id is None
        )
        == liquidations
    )
    assert all(p.net_pos == 0 for p in broker.book.positions.values())


def _subaccount(sessions, subaccount_id):
    from libs.common.storage.models import Subaccount

    with sessions() as s:
        sub = s.get(Subaccount, subaccount_id)
        s.expunge(sub)
        return sub


def test_many_intents_from_four_workers_never_exceed_the_rate_limit(
    tv_settings, redis_client, sessions, account, ctx, broker
):
    user, _, subaccount_id = account
    limit = 60
    ctx.limiter = BrokerLimiter(
        redis_client,
        tv_settings.stream_prefix,
        per_minute=limit,
        per_hour=10_000,
        exit_reserve=2,
        minute_ms=1000,
        hour_ms=60_000,
        guard_ms=50,
    )
    with db.transaction(sessions) as s:
        for _ in range(300):
            intent_id = uuid.uuid4()
            s.add(
                OrderIntent(
                    id=intent_id,
                    user_id=user.id,
                    subaccount_id=subaccount_id,
                    source="manual",
                    kind="entry",
                    symbol="MNQ",
                    ticker=FRONT,
                    side="buy",
                    quantity=Decimal(1),
                    priority="entry",
                    status="queued",
                    cl_ord_id=f"jt-{intent_id.hex[:24]}",
                )
            )
    time.sleep(1.1)  # the account's connect (login, account list) must not share the first window
    workers = [
        threading.Thread(target=ctx.sender.drain, args=(subaccount_id, 120)) for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    statuses = Counter(i.status for i in intents(sessions))
    assert statuses == {"accepted": 300}
    assert broker.max_requests_in_window(USER, 1.0) <= limit
    assert len({c["clOrdId"] for c in broker.book.commands.values() if "clOrdId" in c}) == 300


def test_a_penalty_ticket_pauses_then_resends_with_the_ticket(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    broker.penalize_next(1, p_time=1.0)
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])
    [intent] = intents(sessions)
    assert intent.status == "accepted"
    assert ctx.limiter.usage(f"tradovate:demo:{broker.user_ids[USER]}").penalties == 1


def test_a_lockout_pauses_the_user_and_raises_an_alert(
    tv_settings, redis_client, sessions, position_engine, recorder_with_trader, account, ctx, broker
):
    broker.lock_out(60, USER)
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])
    [intent] = intents(sessions)
    assert intent.status == "queued" and "locked this user out" in intent.error
    events = [f["type"] for _, f in redis_client.xrange(tv_settings.stream(streams.EVENTS))]
    assert "account.alert" in events and "order.paused" in events


def test_price_feed_streams_tradovate_quotes_with_the_connected_accounts_token(
    tv_settings, redis_client, sessions, account, broker
):
    import time as clock

    from services.price_feed.feed import Feed
    from services.price_feed.service import CookieStore, build_sources
    from simulators.tradovate.market_data import MarketDataServer

    with MarketDataServer(broker.catalogue, broker.md_token_valid, heartbeat_interval_s=0.5) as md:
        settings = replace(
            tv_settings, price_source="tradovate", tradovate_md_url=md.url, price_watchlist=("MNQ",)
        )
        sources = build_sources(settings, CookieStore(sessions, settings.encryption_key))
        feed = Feed(settings, redis_client, sources.primary)
        stop = threading.Event()
        worker = threading.Thread(
            target=feed.run, args=(stop,), kwargs={"every_s": 0.05}, daemon=True
        )
        worker.start()
        try:
            deadline = clock.monotonic() + 10
            while clock.monotonic() < deadline and not md.subscriptions():
                clock.sleep(0.05)
            md.set_trade(FRONT, "25641.25")
            while clock.monotonic() < deadline:
                last = redis_client.hget(tv_settings.stream(streams.LAST_PRICE), "MNQ")
                if last == "25641.25":
                    break
                clock.sleep(0.05)
            assert redis_client.hget(tv_settings.stream(streams.LAST_PRICE), "MNQ") == "25641.25"
            assert feed.status()["source"] == "tradovate" and feed.status()["connected"]
        finally:
            stop.set()
            worker.join(10)


def test_the_contract_mapping_in_use_is_visible_with_the_brokers_confirmation(
    tv_settings,
    redis_client,
    sessions,
    position_engine,
    recorder_with_trader,
    account,
    ctx,
    broker,
    alice,
):
    from services.ui.app import create_app

    client = create_app(tv_settings, sessions=sessions, redis_client=redis_client).test_client()
    key = alice[1]
    before = client.get("/api/contracts?ticker=CME_MINI:MNQ1!", headers=key).get_json()
    assert before["contract"] == FRONT and before["tradovate_contract_id"] is None
    assert (
        before["rolls_on"] > before["trade_date"]
        and before["last_trading_day"] >= before["rolls_on"]
    )
    signal(tv_settings, redis_client, position_engine, recorder_with_trader, "buy", 25640)
    ctx.sender.drain(account[2])
    after = client.get("/api/contracts?ticker=MNQ1!", headers=key).get_json()
    assert after["tradovate_contract_id"] == broker.catalogue.find(FRONT).id
    assert client.get("/api/contracts?ticker=MNQ", headers=key).status_code == 422


# --- the intent life cycle as a state machine ------------------------------------------------
# Signals, drains, workers dying after the claim or after the send, and broker refusals in any
# order: no intent reaches the broker twice, a status only moves forward, and after a last drain
# every intent is answered.

INTENT_ORDER = {
    "queued": 0,
    "sending": 1,
    "accepted": 2,
    "filled": 2,
    "rejected": 2,
    "failed": 2,
    "skipped": 2,
}
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def test_intents_are_sent_at_most_once_whatever_fails(
    tv_settings, redis_client, sessions, position_engine, account, ctx, broker, make_recorder
):
    user, account_id, subaccount_id = account

    class IntentMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.recorder = make_recorder(user=user)  # a fresh recorder (flat) per run
            with db.transaction(sessions) as s:
                s.add(
                    Trader(
                        user_id=user.id,
                        recorder_id=self.recorder.id,
                        subaccount_id=subaccount_id,
                        multiplier=Decimal(1),
                    )
                )
            self.seen: dict[uuid.UUID, str] = {}
            with broker.lock:
                broker.book.forced.clear()  # a refusal left over from the previous run

        def intents(self) -> list[OrderIntent]:
            with sessions() as s:
                return s.scalars(
                    select(OrderIntent)
                    .where(OrderIntent.subaccount_id == subaccount_id)
                    .order_by(OrderIntent.sequence)
                ).all()

        def first_unsent(self) -> OrderIntent | None:
            return next((i for i in self.intents() if i.status == "queued"), None)

        @rule(action=st.sampled_from(["buy", "sell", "close"]), qty=st.integers(1, 3))
        def signal(self, action, qty):
            message = SignalMessage(
                str(uuid.uuid4()),
                self.recorder.id,
                action,
                "MNQ1!",
                "MNQ",
                Decimal("25640"),
                Decimal(qty),
                None,
                None,
                streams.now_ms(),
                "{}",
            )
            redis_client.xadd(tv_settings.stream(streams.SIGNALS), message.to_fields())
            while position_engine.step(block_ms=None):
                pass

        @rule()
        def drain(self):
            ctx.sender.drain(subaccount_id)

        @rule()
        def worker_dies_after_the_claim(self):
            """Claimed (committed `sending`), then killed before any request left."""
            intent = self.first_unsent()
            if intent is not None:
                self._claim(intent)

        @rule()
        def worker_dies_after_the_send(self):
            """Claimed and sent; the broker has the order, the worker never recorded its answer."""
            intent = self.first_unsent()
            if intent is None:
                return
            self._claim(intent)
            with sessions() as s:
                sub = s.get(Subaccount, subaccount_id)
                s.expunge(sub)
            ticket = ctx.sender._ticket(intent, sub)
            with sessions() as s:
                ctx.broker_for(s.get(Account, account_id)).send(ticket, s)

        @rule()
        def broker_refuses_the_next_order(self):
            with broker.lock:
                if not broker.book.forced:  # one refusal at a time, or every order is refused
                    broker.reject_next("MaxPosLimitReached", "Max position limit reached")

        def _claim(self, intent: OrderIntent) -> None:
            with db.transaction(sessions) as s:
                row = s.get_one(OrderIntent, intent.id)
                row.status, row.attempts, row.sent_at, row.contract = (
                    "sending",
                    row.attempts + 1,
                    LONG_AGO,
                    FRONT,
                )

        @invariant()
        def no_order_reaches_the_broker_twice(self):
            with broker.lock:
                placed = Counter(
                    c.get("clOrdId")
                    for c in broker.book.commands.values()
                    if c["commandType"] == "New" and c.get("clOrdId")
                )
            assert all(n == 1 for n in placed.values()), placed

        @invariant()
        def statuses_only_move_forward(self):
            for intent in self.intents():
                before = self.seen.get(intent.id, "queued")
                assert INTENT_ORDER[intent.status] >= INTENT_ORDER[before], (
                    intent.id,
                    before,
                    intent.status,
                )
                if INTENT_ORDER[before] == 2:
                    assert intent.status == before  # an answer is final
                self.seen[intent.id] = intent.status

        def teardown(self):
            ctx.sender.drain(subaccount_id)
            unanswered = [
                (i.kind, i.status) for i in self.intents() if i.status in ("queued", "sending")
            ]
            assert unanswered == []
            outcomes.update(i.status for i in self.intents())

    outcomes: Counter = Counter()
    run_state_machine_as_test(
        IntentMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=10,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The runs did reach the broker, and saw refusals too
    assert outcomes["accepted"] > 10 and outcomes["rejected"] > 0, outcomes
