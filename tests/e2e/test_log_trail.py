"""One signal followed through every service's log by its signal_id, down to the order."""

from __future__ import annotations

import re

import requests


def lines_with(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


def test_a_signals_id_is_in_every_log_line_from_the_webhook_to_the_order(
    stack, api, redis_client, eventually
):
    # Given a recorder traded on a paper account
    recorder = api.create_recorder(name="Traced")
    account = api.post("/api/accounts", {"broker": "paper", "name": "Trace"})
    assert account.status_code == 201, account.text
    subaccount = account.json()["subaccounts"][0]["id"]
    assert (
        api.post(
            "/api/traders", {"recorder_id": recorder["id"], "subaccount_id": subaccount}
        ).status_code
        == 201
    )
    redis_client.hset("jt:last_price", "MNQ", "25000")

    # When TradingView's alert arrives and its order is filled
    url = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]
    answer = requests.post(
        url, json={"action": "buy", "ticker": "MNQ1!", "price": 25000}, timeout=5
    )
    assert answer.status_code == 202, answer.text
    signal_id = answer.json()["signal_id"]
    [order] = eventually(
        lambda: [o for o in api.ok("/api/orders")["orders"] if o["status"] == "filled"],
        "the paper order to fill",
    )

    # Then the gateway, the engine and the executor each logged it under the same signal_id
    gateway = lines_with(stack.log("gateway"), f"signal_id={signal_id}")
    engine = lines_with(stack.log("engine"), f"signal_id={signal_id}")
    executor = eventually(
        lambda: lines_with(stack.log("executor"), f"signal_id={signal_id}"),
        "the executor's lines for the signal",
    )
    assert any("status=202" in line for line in gateway), gateway
    assert any("msg='signal processed'" in line and "status=applied" in line for line in engine), (
        engine
    )
    # And the engine's line for the order it queued, and the executor's for sending and its answer,
    # carry the order intent's id next to the signal's
    assert any(
        "order intent queued" in line and f"intent_id={order['id']}" in line for line in engine
    ), engine
    sent = [line for line in executor if f"intent_id={order['id']}" in line]
    assert any("intent sending" in line and re.search(r"cl_ord_id=\S+", line) for line in sent), (
        executor
    )
    assert any("intent answered" in line and "status=filled" in line for line in sent), executor
