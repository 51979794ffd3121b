"""Copy trading in step (docs/contract.md §4d) on paper accounts, PostgreSQL and Redis: a leader on
NQ, an inverted follower and a follower mapped NQ → MNQ with a maximum; copies, a follower whose
entry was rejected shown out of step and brought back (by "Realign now" and by itself), leader
flat → followers flat at once, followers locked with their leader, and bad groups refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from libs.common import events, orders, streams
from libs.common.account_figures import snapshot
from libs.common.copy_trading import copies_of
from libs.common.orders import new_intent
from libs.common.storage import db
from libs.common.storage.models import OrderIntent, PaperPosition, Subaccount
from libs.common.streams import SignalMessage
from services.executor.copy_keeper import CopyKeeper
from services.executor.risk_desk import RiskDesk
from services.position_engine.engine import PositionEngine
from tests.polling import wait_for

LATER = timedelta(seconds=6)  # past the keeper's grace (5 s)


@pytest.fixture
def subs(client, alice):
    """Leader, Inverse and Micro: three paper subaccounts of alice's, by name."""
    made = {}
    for name in ("Leader", "Inverse", "Micro"):
        answer = client.post(
            "/api/accounts", json={"broker": "paper", "name": name}, headers=alice[1]
        )
        made[name] = answer.get_json()["subaccounts"][0]["id"]
    return made


def make_group(client, alice, subs, **fields):
    body = {
        "name": "Funded copies",
        "leader_subaccount_id": subs["Leader"],
        "followers": [
            {"subaccount_id": subs["Inverse"], "inverted": True},
            {"subaccount_id": subs["Micro"], "symbol_map": {"NQ": "MNQ"}, "max_contracts": 2},
        ],
        **fields,
    }
    answer = client.post("/api/copy-groups", json=body, headers=alice[1])
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def price(settings, redis_client, symbol, value):
    redis_client.hset(settings.stream(streams.LAST_PRICE), symbol, value)


def trade(client, alice, subaccount_id, action, **fields):
    body = {"subaccount_id": subaccount_id, "action": action, "ticker": "NQ1!", **fields}
    answer = client.post("/api/manual-trade", json=body, headers=alice[1])
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


def nets(sessions, subaccount_id):
    with sessions() as s:
        rows = s.scalars(
            select(PaperPosition).where(
                PaperPosition.subaccount_id == subaccount_id, PaperPosition.net_qty != 0
            )
        )
        return {p.symbol: p.net_qty for p in rows}


def follower_view(client, alice, group_id, subaccount_id):
    group = client.get(f"/api/copy-groups/{group_id}", headers=alice[1]).get_json()
    return next(f for f in group["followers"] if f["subaccount_id"] == subaccount_id)


def events_of(redis_client, settings, kind):
    return [
        json.loads(f["data"])
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
        if f["type"] == kind
    ]


def test_a_leader_entry_is_copied_inverted_mapped_and_capped(
    client, alice, subs, settings, redis_client, executor, sessions
):
    group = make_group(client, alice, subs)
    price(settings, redis_client, "NQ", "21000")
    price(settings, redis_client, "MNQ", "21000")

    answer = trade(client, alice, subs["Leader"], "buy", quantity=3, tp_ticks=40, sl_ticks=20)

    leader = answer["order"]
    assert (leader["tp_price"], leader["sl_price"]) == (21010, 20995)
    copies = {c["subaccount_id"]: c for c in answer["copies"]}
    inverse, micro = copies[subs["Inverse"]], copies[subs["Micro"]]
    # The inverted follower sells, its target at the leader's stop and its stop at the target
    assert (inverse["side"], inverse["quantity"], inverse["symbol"]) == ("sell", 3, "NQ")
    assert (inverse["tp_price"], inverse["sl_price"]) == (20995, 21010)
    # The mapped follower buys MNQ, no more than its maximum of 2
    assert (micro["side"], micro["quantity"], micro["symbol"]) == ("buy", 2, "MNQ")
    executor()
    assert nets(sessions, subs["Leader"]) == {"NQ": 3}
    assert nets(sessions, subs["Inverse"]) == {"NQ": -3}
    assert nets(sessions, subs["Micro"]) == {"MNQ": 2}

    # A second entry leaves the capped follower alone: it holds its maximum already
    answer = trade(client, alice, subs["Leader"], "buy", quantity=1)
    assert [c["subaccount_id"] for c in answer["copies"]] == [subs["Inverse"]]
    executor()
    keeper = CopyKeeper(executor.ctx, executor.rq)
    now = datetime.now(UTC)
    keeper.check_all(now)
    keeper.check_all(now + LATER)
    assert nets(sessions, subs["Micro"]) == {"MNQ": 2}
    assert nets(sessions, subs["Inverse"]) == {"NQ": -4}
    view = follower_view(client, alice, group["id"], subs["Micro"])
    assert view["out_of_step"] is None and view["checked_at"] is not None


def test_a_rejected_copy_is_shown_out_of_step_and_realigned_now(
    client, alice, subs, settings, redis_client, executor, sessions
):
    group = make_group(client, alice, subs)
    price(settings, redis_client, "NQ", "21000")  # no MNQ price: the paper broker rejects
    trade(client, alice, subs["Leader"], "buy", quantity=1)
    executor()
    assert nets(sessions, subs["Micro"]) == {}
    keeper = CopyKeeper(executor.ctx, executor.rq)
    now = datetime.now(UTC) + LATER  # the copies' fills are older than the grace

    keeper.check_all(now)  # the difference is seen; the grace starts
    assert follower_view(client, alice, group["id"], subs["Micro"])["out_of_step"] is None
    keeper.check_all(now + LATER)

    view = follower_view(client, alice, group["id"], subs["Micro"])
    assert view["out_of_step"] == (
        "MNQ: holds none, should hold 1 long (the leader holds 1 long NQ)"
    )
    [drift] = events_of(redis_client, settings, events.ACCOUNT_COPY_DRIFT)
    assert (drift["subaccount_id"], drift["realigning"]) == (subs["Micro"], False)
    assert follower_view(client, alice, group["id"], subs["Inverse"])["out_of_step"] is None
    # Without realign the group only shows it
    keeper.check_all(now + 2 * LATER)
    executor()
    assert nets(sessions, subs["Micro"]) == {}

    price(settings, redis_client, "MNQ", "21000")
    answer = client.post(f"/api/copy-groups/{group['id']}/realign", headers=alice[1])
    assert answer.status_code == 202, answer.get_json()
    written = answer.get_json()["orders"]
    assert [(o["subaccount_id"], o["kind"], o["side"], o["quantity"]) for o in written] == [
        (subs["Micro"], "entry", "buy", 1)
    ]
    # Asked again before the executor ran: the order is queued, nothing is written twice
    again = client.post(f"/api/copy-groups/{group['id']}/realign", headers=alice[1])
    assert again.get_json()["orders"] == []
    executor()
    assert nets(sessions, subs["Micro"]) == {"MNQ": 1}
    keeper.check_all(now + 3 * LATER)
    assert follower_view(client, alice, group["id"], subs["Micro"])["out_of_step"] is None
    assert events_of(redis_client, settings, events.ACCOUNT_COPY_DRIFT)[-1]["out_of_step"] is None


def test_a_group_with_realign_brings_a_hand_traded_follower_back_by_itself(
    client, alice, subs, settings, redis_client, executor, sessions
):
    group = make_group(client, alice, subs, realign=True)
    price(settings, redis_client, "NQ", "21000")
    price(settings, redis_client, "MNQ", "21000")
    trade(client, alice, subs["Leader"], "buy", quantity=2)
    executor()
    # Someone sells 1 NQ by hand on the inverted follower: it is now short 3 instead of 2
    trade(client, alice, subs["Inverse"], "sell", quantity=1)
    executor()
    assert nets(sessions, subs["Inverse"]) == {"NQ": -3}
    keeper = CopyKeeper(executor.ctx, executor.rq)
    now = datetime.now(UTC) + LATER

    keeper.check_all(now)
    executor()
    assert nets(sessions, subs["Inverse"]) == {"NQ": -3}  # within the grace: nothing sent
    keeper.check_all(now + LATER)
    executor()

    assert nets(sessions, subs["Inverse"]) == {"NQ": -2}
    with db.transaction(sessions) as s:
        [fix] = s.scalars(
            select(OrderIntent).where(
                OrderIntent.subaccount_id == subs["Inverse"],
                OrderIntent.source == "copy",
                OrderIntent.parent_id.is_(None),
            )
        ).all()
        assert (fix.kind, fix.side, fix.quantity, fix.priority) == ("reduce", "buy", 1, "exit")
    [drift] = events_of(redis_client, settings, events.ACCOUNT_COPY_DRIFT)[:1]
    assert (
        drift["realigning"] is True
        and "NQ: holds 3 short, should hold 2 short" in (drift["out_of_step"])
    )
    keeper.check_all(now + 3 * LATER)
    assert follower_view(client, alice, group["id"], subs["Inverse"])["out_of_step"] is None


def test_when_the_leader_goes_flat_its_followers_are_flattened_at_once(
    client, alice, subs, settings, redis_client, executor, sessions
):
    make_group(client, alice, subs)  # realign off: flattening needs no realign
    price(settings, redis_client, "NQ", "21000")
    price(settings, redis_client, "MNQ", "21000")
    trade(client, alice, subs["Leader"], "buy", quantity=2)
    executor()
    # The leader closes without copying (as a broker-side close would look to the followers)
    trade(client, alice, subs["Leader"], "close", copy=False)
    executor()
    assert nets(sessions, subs["Leader"]) == {}

    keeper = CopyKeeper(executor.ctx, executor.rq)
    keeper.check_all(datetime.now(UTC) + LATER)  # one pass, no grace to wait for
    executor()

    assert nets(sessions, subs["Inverse"]) == {}
    assert nets(sessions, subs["Micro"]) == {}


def test_followers_are_locked_and_flattened_with_their_leader(
    client, alice, subs, settings, redis_client, executor, sessions
):
    group = make_group(client, alice, subs, follow_risk_lock=True)
    risk = client.put(
        f"/api/subaccounts/{subs['Leader']}/risk", json={"daily_loss_limit": 100}, headers=alice[1]
    )
    assert risk.status_code == 200, risk.get_json()
    price(settings, redis_client, "NQ", "21000")
    price(settings, redis_client, "MNQ", "21000")
    trade(client, alice, subs["Leader"], "buy", quantity=1)
    executor()
    price(settings, redis_client, "NQ", "20990")  # 1 NQ × $20 × 10 points = -$200
    [lock] = RiskDesk(executor.ctx, executor.rq).check_all()
    executor()
    keeper = CopyKeeper(executor.ctx, executor.rq)

    keeper.check_all()
    executor()

    with sessions() as s:
        leader = s.get_one(Subaccount, subs["Leader"])
        for name in ("Inverse", "Micro"):
            sub = s.get_one(Subaccount, subs[name])
            assert sub.locked_until == leader.locked_until
            assert sub.lock_reason == f"the leader {leader.name} was locked: {leader.lock_reason}"
    assert nets(sessions, subs["Inverse"]) == {} and nets(sessions, subs["Micro"]) == {}
    locked = events_of(redis_client, settings, events.ACCOUNT_LOCKED)
    assert {e["subaccount_id"] for e in locked} == {subs["Leader"], subs["Inverse"], subs["Micro"]}
    keeper.check_all()  # locked already: not again
    assert len(events_of(redis_client, settings, events.ACCOUNT_LOCKED)) == 3
    # A locked follower gets no copied entry (exits still would)
    answer = trade(client, alice, subs["Leader"], "buy", quantity=1)
    assert answer["copies"] == []
    assert group["follow_risk_lock"] is True


def test_a_leader_stop_move_becomes_the_inverted_follower_target_move(
    client, alice, subs, sessions
):
    make_group(client, alice, subs)
    user = alice[0]
    with db.transaction(sessions) as s:
        move = new_intent(
            user_id=user.id,
            subaccount_id=subs["Leader"],
            source="signal",
            kind="move_stop",
            side="sell",
            symbol="NQ",
            ticker="NQ1!",
            quantity=D(0),
            priority="exit",
            sl_price=D("21005"),
        )
        s.add(move)
        s.flush()
        copies = {c.subaccount_id: c for c in copies_of(s, move)}
        inverse, micro = copies[subs["Inverse"]], copies[subs["Micro"]]
        assert (inverse.kind, inverse.side, inverse.tp_price, inverse.sl_price) == (
            "move_target",
            "buy",
            D("21005"),
            None,
        )
        assert (micro.kind, micro.symbol, micro.ticker, micro.sl_price) == (
            "move_stop",
            "MNQ",
            "MNQ1!",
            D("21005"),
        )


def test_put_changes_only_the_fields_sent(client, alice, subs):
    group = make_group(client, alice, subs)
    answer = client.put(
        f"/api/copy-groups/{group['id']}",
        json={
            "realign": True,
            "followers": [
                {"subaccount_id": subs["Inverse"]},
                {"subaccount_id": subs["Micro"], "max_contracts": 5},
            ],
        },
        headers=alice[1],
    )
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["realign"], body["follow_risk_lock"], body["name"]) == (
        True,
        False,
        "Funded copies",
    )
    inverse, micro = body["followers"]
    assert inverse["inverted"] is True
    assert (micro["symbol_map"], micro["max_contracts"]) == ({"NQ": "MNQ"}, 5)


BAD_FOLLOWERS = [
    ([{"subaccount_id": "Micro", "max_contracts": 0}], "followers[0].max_contracts"),
    ([{"subaccount_id": "Micro", "max_contracts": -2}], "followers[0].max_contracts"),
    ([{"subaccount_id": "Micro", "symbol_map": {"NQ": "XYZ"}}], "followers[0].symbol_map"),
    ([{"subaccount_id": "Micro", "symbol_map": {"NQ": "mnq"}}], "followers[0].symbol_map"),
    ([{"subaccount_id": "Leader"}], "followers[0].subaccount_id is the leader"),
    (
        [{"subaccount_id": "Micro"}, {"subaccount_id": "Micro"}],
        "followers[1].subaccount_id follows twice",
    ),
]


@pytest.mark.parametrize(("followers", "error"), BAD_FOLLOWERS)
def test_bad_followers_are_a_422_naming_the_field_and_change_nothing(
    client, alice, subs, followers, error
):
    group = make_group(client, alice, subs)
    named = [{**f, "subaccount_id": subs[f["subaccount_id"]]} for f in followers]
    before = client.get("/api/copy-groups", headers=alice[1]).get_json()

    made = client.post(
        "/api/copy-groups",
        json={"leader_subaccount_id": subs["Leader"], "followers": named},
        headers=alice[1],
    )
    changed = client.put(
        f"/api/copy-groups/{group['id']}", json={"followers": named}, headers=alice[1]
    )

    for answer in (made, changed):
        assert answer.status_code == 422, answer.get_json()
        assert error in answer.get_json()["error"]
    assert client.get("/api/copy-groups", headers=alice[1]).get_json() == before


def test_following_twice_and_copy_cycles_are_refused(client, alice, subs, sessions):
    key = alice[1]
    first = make_group(client, alice, subs)  # Leader → Inverse, Micro
    before = client.get("/api/copy-groups", headers=key).get_json()
    # Micro already follows Leader: it cannot follow Inverse too
    twice = client.post(
        "/api/copy-groups",
        json={
            "leader_subaccount_id": subs["Inverse"],
            "followers": [{"subaccount_id": subs["Micro"]}],
        },
        headers=key,
    )
    assert twice.status_code == 422
    assert "followers[0].subaccount_id already follows" in twice.get_json()["error"]
    # Inverse → Leader would close a loop: Leader → Inverse → Leader
    loop = client.post(
        "/api/copy-groups",
        json={
            "leader_subaccount_id": subs["Inverse"],
            "followers": [{"subaccount_id": subs["Leader"]}],
        },
        headers=key,
    )
    assert loop.status_code == 422
    with sessions() as s:
        leader, inverse = (s.get_one(Subaccount, subs[n]).name for n in ("Leader", "Inverse"))
    assert f"copy cycle: {inverse} → {leader} → {inverse}." in loop.get_json()["error"]
    # At depth: Micro leads a fourth account, which would lead the Leader
    fourth = client.post(
        "/api/accounts", json={"broker": "paper", "name": "Fourth"}, headers=key
    ).get_json()["subaccounts"][0]["id"]
    chain = client.post(
        "/api/copy-groups",
        json={"leader_subaccount_id": subs["Micro"], "followers": [{"subaccount_id": fourth}]},
        headers=key,
    )
    assert chain.status_code == 201
    deep = client.post(
        "/api/copy-groups",
        json={"leader_subaccount_id": fourth, "followers": [{"subaccount_id": subs["Leader"]}]},
        headers=key,
    )
    assert deep.status_code == 422
    assert "copy cycle" in deep.get_json()["error"]
    groups = client.get("/api/copy-groups", headers=key).get_json()["copy_groups"]
    assert [g["id"] for g in groups] == [first["id"], chain.get_json()["id"]]
    assert groups[0] == before["copy_groups"][0]


# -- a Tradovate follower: the keeper judges it on the executor's snapshot of the simulator -----


def broker_net(ctx, subaccount_id):
    view = snapshot(ctx.redis, ctx.settings, subaccount_id) or {}
    return sum((D(str(p["net_qty"])) for p in view.get("positions", [])), D(0))


def test_a_tradovate_follower_is_realigned_and_flattened_from_the_broker_snapshot(
    client, alice, paper, tradovate, synced, ctx, settings, redis_client, sessions
):
    answer = client.post(
        "/api/copy-groups",
        json={
            "leader_subaccount_id": paper["id"],
            "followers": [{"subaccount_id": tradovate.subaccount_id, "max_contracts": 2}],
            "realign": True,
        },
        headers=alice[1],
    )
    assert answer.status_code == 201, answer.get_json()
    price(settings, redis_client, "MNQ", "25640")
    body = {"subaccount_id": paper["id"], "ticker": "MNQ1!"}

    def send(**fields):
        made = client.post("/api/manual-trade", json={**body, **fields}, headers=alice[1])
        assert made.status_code == 202, made.get_json()
        for sub_id in (paper["id"], tradovate.subaccount_id):
            ctx.sender.drain(sub_id)

    send(action="buy", quantity=1)
    wait_for(lambda: broker_net(ctx, tradovate.subaccount_id) == 1, "the copy at the broker")
    # The leader buys 2 more by hand without copying: the follower should hold 2 (its maximum)
    send(action="buy", quantity=2, copy=False)
    keeper = CopyKeeper(ctx, orders.rq_connection(settings.redis_url))
    now = datetime.now(UTC) + LATER

    keeper.check_all(now)
    keeper.check_all(now + LATER)
    ctx.sender.drain(tradovate.subaccount_id)

    wait_for(lambda: broker_net(ctx, tradovate.subaccount_id) == 2, "the follower realigned")
    with sessions() as s:
        fix = s.scalars(
            select(OrderIntent)
            .where(OrderIntent.subaccount_id == tradovate.subaccount_id)
            .order_by(OrderIntent.sequence.desc())
        ).first()
        assert (fix.kind, fix.side, fix.quantity) == ("add", "buy", 1)
        assert fix.status in ("accepted", "filled")

    # The leader goes flat without copying: the follower is closed at the broker on the next pass
    send(action="close", copy=False)
    keeper.check_all(now + 2 * LATER)
    ctx.sender.drain(tradovate.subaccount_id)
    wait_for(lambda: broker_net(ctx, tradovate.subaccount_id) == 0, "the follower flattened")
    assert nets(sessions, paper["id"]) == {}


def test_a_root_the_followers_own_trader_holds_is_left_alone_when_the_leader_is_flat(
    client, alice, subs, settings, redis_client, executor, sessions
):
    # Given the Inverse follower also runs its own strategy on NQ (a trader of its own)
    make_group(client, alice, subs)
    recorder = client.post("/api/recorders", json={"name": "own NQ"}, headers=alice[1]).get_json()
    client.post(
        "/api/traders",
        json={"recorder_id": recorder["id"], "subaccount_id": subs["Inverse"]},
        headers=alice[1],
    )
    price(settings, redis_client, "NQ", "21000")
    engine = PositionEngine(settings, sessions, redis_client, consumer="engine-own")
    engine.prepare()
    message = SignalMessage(
        str(uuid.uuid4()),
        recorder["id"],
        "buy",
        "NQ1!",
        "NQ",
        D(21000),
        D(1),
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), message.to_fields())
    while engine.step(block_ms=None):
        pass
    executor()
    assert nets(sessions, subs["Inverse"]) == {"NQ": 1}

    # When the keeper looks while the leader is flat
    CopyKeeper(executor.ctx, executor.rq).check_all(datetime.now(UTC) + LATER)
    executor()

    # Then the follower's own trader keeps its contract
    assert nets(sessions, subs["Inverse"]) == {"NQ": 1}
