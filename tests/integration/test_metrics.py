"""`GET /metrics` of every service against real Redis and PostgreSQL: what each one counts."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from libs.common import recorder_tokens, streams
from libs.common.config import metrics_targets
from libs.common.metrics import exposition
from libs.common.storage import db
from libs.common.storage.embedded import free_port
from libs.common.storage.models import Account
from libs.common.streams import SignalMessage
from libs.common.tradovate.accounts import limiter_user
from services.executor.service import start_metrics_server
from services.gateway.app import create_app
from services.position_engine.engine import PositionEngine
from services.position_engine.service import start_health_server
from services.price_feed.feed import Feed
from services.price_feed.service import start_status_server
from services.price_feed.sim import SimSource
from services.ui.api.service_metrics import targets
from services.ui.app import create_app as ui_app
from tests.integration.test_execution_paper import (  # noqa: F401 (fixtures)
    position_engine,
    recorder_of_alice,
    set_price,
    signal,
)

BUY = {"action": "buy", "ticker": "CME_MINI:MNQ1!", "price": 21034.25, "contracts": 1}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text answer, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return samples(answer.text)


@pytest.fixture
def serving():
    servers = []

    def keep(server):
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/metrics"

    yield keep
    for server in servers:
        server.shutdown()
        server.server_close()


def test_gateway_counts_its_answers_by_code(settings, redis_client, make_recorder):
    recorder = make_recorder()
    recorder_tokens.put(redis_client, settings, recorder)
    client = create_app(settings, redis_client=redis_client).test_client()

    assert client.post(f"/webhook/{recorder.webhook_token}", json=BUY).status_code == 202
    assert client.post(f"/webhook/{'x' * 43}", json=BUY).status_code == 404
    assert client.get("/healthz").status_code == 200

    body, _ = exposition(client.application.extensions["metrics"].registry)
    found = samples(body.decode())
    assert found[("jt_webhook_answers_total", (("code", "202"),))] == 1
    assert found[("jt_webhook_answers_total", (("code", "404"),))] == 1
    assert ("jt_webhook_answers_total", (("code", "200"),)) not in found  # probes are not answers
    assert found[("jt_webhook_accept_seconds_count", ())] == 1
    assert client.get("/metrics").status_code == 404  # not on the public webhook port


def test_engine_metrics_show_signals_applied_and_entries_pending(
    settings, sessions, redis_client, make_recorder, serving
):
    engine = PositionEngine(settings, sessions, redis_client, consumer="engine-metrics")
    engine.prepare()
    active = threading.Event()
    active.set()
    url = serving(start_health_server(free_port(), engine, active))
    recorder = make_recorder()
    stream = settings.stream(streams.SIGNALS)

    def send() -> None:
        msg = SignalMessage(
            str(uuid.uuid4()),
            recorder.id,
            "buy",
            "MNQ1!",
            "MNQ",
            Decimal("25640"),
            Decimal(1),
            None,
            None,
            streams.now_ms(),
            "{}",
        )
        redis_client.xadd(stream, msg.to_fields())

    send()
    # A consumer that read the entry and died before acknowledging: it stays pending.
    redis_client.xreadgroup(streams.ENGINE_GROUP, "crashed", {stream: ">"}, count=1)
    send()
    before = scrape(url)
    assert before[("jt_stream_pending", (("stream", stream),))] == 1
    assert before[("jt_stream_lag", (("stream", stream),))] == 1

    assert engine.step(block_ms=None) == 1
    after = scrape(url)
    assert after[("jt_engine_signals_total", ())] == 1
    assert after[("jt_stream_lag", (("stream", stream),))] == 0
    assert after[("jt_stream_pending", (("stream", stream),))] == 1  # the crashed consumer's
    assert after[("jt_engine_batch_size_count", ())] == 1
    assert after[("jt_engine_batch_seconds_count", ())] == 1
    assert after[("jt_engine_active", ())] == 1


def test_executor_counts_answered_intents_by_outcome(
    client,
    alice,
    paper,  # noqa: F811 (fixtures of test_execution_paper)
    recorder_of_alice,  # noqa: F811
    settings,
    redis_client,
    position_engine,  # noqa: F811
    executor,  # noqa: F811
    serving,
):
    url = serving(start_metrics_server(free_port(), executor.ctx))
    filled = ("jt_orders_total", (("status", "filled"),))
    before = scrape(url).get(filled, 0.0)  # the counter is the process's; other tests add to it
    client.post(
        "/api/traders",
        json={"recorder_id": recorder_of_alice["id"], "subaccount_id": paper["id"]},
        headers=alice[1],
    )
    set_price(settings, redis_client, "25641.25")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)

    executor()

    assert scrape(url)[filled] == before + 1


BROKER_USER_ID = 918273645  # a Tradovate user id: it must never leave the executor


def tradovate_account(sessions, user, name: str) -> Account:
    with db.transaction(sessions) as s:
        account = Account(
            user_id=user.id,
            broker="tradovate",
            name=name,
            environment="demo",
            broker_user_id=BROKER_USER_ID,
        )
        s.add(account)
    return account


def test_executor_metrics_show_limiter_usage_by_our_account_id_never_the_broker_user(
    settings, sessions, executor, serving, alice
):
    # Given a Tradovate login of alice's that has made a request and drawn a penalty
    account = tradovate_account(sessions, alice[0], "Prop demo")
    limiter = executor.ctx.limiter
    limiter.acquire_request_slot(limiter_user(account))
    limiter.record_penalty(limiter_user(account))

    # When Prometheus reads the executor's metrics
    answer = requests.get(serving(start_metrics_server(free_port(), executor.ctx)), timeout=5)

    # Then the figures carry our account id, and the broker's user id is nowhere
    found = samples(answer.text)
    mine = ("account", str(account.id))
    assert found[("jt_limiter_requests_used", (mine, ("window", "minute")))] == 1
    assert found[("jt_limiter_tokens_left", (mine,))] == limiter.limits.per_minute - 1
    assert found[("jt_limiter_penalties_total", (mine,))] == 1
    assert str(BROKER_USER_ID) not in answer.text
    assert "user=" not in answer.text


def test_the_control_center_shows_limiter_figures_of_own_accounts_only_by_their_names(
    settings, sessions, redis_client, executor, serving, alice, bob
):
    # Given alice's Tradovate login with a request made, and the executor's metrics served
    account = tradovate_account(sessions, alice[0], "Prop demo")
    executor.ctx.limiter.acquire_request_slot(limiter_user(account))
    port = serving(start_metrics_server(free_port(), executor.ctx)).split(":")[2].split("/")[0]
    targets = (("executor", ("127.0.0.1", int(port))),)
    client = ui_app(
        replace(settings, metrics_targets=targets), sessions=sessions, redis_client=redis_client
    ).test_client()

    def limiter_samples(headers) -> list[dict]:
        answer = client.get("/api/status/metrics", headers=headers)
        assert answer.status_code == 200
        assert str(BROKER_USER_ID) not in answer.get_data(as_text=True)
        return [
            x
            for x in answer.get_json()["services"]["executor"]["samples"]
            if x["name"] == "jt_limiter_tokens_left"
        ]

    # Then alice sees her login's figures under the name she gave the account; bob sees none
    [left] = limiter_samples(alice[1])
    assert left["labels"] == {"account": str(account.id), "user": "Prop demo"}
    assert limiter_samples(bob[1]) == []


def test_price_feed_metrics_show_ticks_published(settings, redis_client, serving):
    feed = Feed(
        replace(settings, price_watchlist=("MNQ",)),
        redis_client,
        SimSource(interval_s=0.01, seed=5),
    )
    url = serving(start_status_server(free_port(), feed))
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(stop,), kwargs={"every_s": 0.05}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while feed.status()["ticks_published"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        found = scrape(url)
    finally:
        stop.set()
        thread.join(5)
    assert found[("jt_feed_ticks_published_total", ())] >= 3
    assert found[("jt_feed_connected", ())] == 1
    assert found[("jt_feed_fallback_active", ())] == 0
    assert ("jt_feed_last_tick_age_seconds", (("symbol", "MNQ"),)) in found


def test_ui_counts_requests_by_route_and_status(client):
    client.get("/api/recorders")  # anonymous: 401
    found = samples(client.get("/metrics").get_data(as_text=True))
    assert found[("jt_ui_requests_total", (("route", "/api/recorders"), ("status", "401")))] == 1
    assert found[("jt_ui_socket_connections", ())] == 0


def test_the_control_center_reads_the_services_named_in_metrics_targets(
    settings, sessions, redis_client, alice, serving
):
    # Given an engine's /metrics on a port of its own, and METRICS_TARGETS naming it by host name
    engine = PositionEngine(settings, sessions, redis_client, consumer="metrics-targets")
    engine.prepare()
    port = free_port()
    serving(start_health_server(port, engine, threading.Event()))
    nowhere = free_port()
    targets = (("engine", ("localhost", port)), ("gateway", ("localhost", nowhere)))
    client = ui_app(
        replace(settings, metrics_targets=targets), sessions=sessions, redis_client=redis_client
    ).test_client()

    # When the Control Center asks for the pipeline's figures
    answer = client.get("/api/status/metrics", headers=alice[1])

    # Then it read exactly those targets: the engine's figures, and the gateway as not answering
    services = answer.get_json()["services"]
    assert set(services) == {"engine", "gateway"}
    assert services["engine"]["up"] and any(
        s["name"] == "jt_engine_active" for s in services["engine"]["samples"]
    )
    assert services["gateway"] == {"up": False, "samples": []}


def test_metrics_targets_name_each_replica_behind_one_host_name(settings, monkeypatch):
    def two_replicas(host, *args, **kwargs):
        assert host == "executor"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0)) for ip in ("10.0.0.12", "10.0.0.9")
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_replicas)  # as Docker's DNS answers for replicas
    found = targets(replace(settings, metrics_targets=metrics_targets("executor=executor:8086")))

    assert found == {
        "executor-1": "http://10.0.0.9:8086/metrics",
        "executor-2": "http://10.0.0.12:8086/metrics",
    }


@pytest.mark.parametrize(
    "value", ["engine", "engine=engine", "engine=engine:http", "=engine:8085", "e=h:70000"]
)
def test_a_malformed_metrics_targets_entry_is_named(value):
    with pytest.raises(ValueError, match="METRICS_TARGETS entry"):
        metrics_targets(f"gateway=gateway:8083,{value}")


def test_the_internal_ports_listen_on_loopback_unless_told_otherwise(
    sessions, redis_client, settings, executor
):
    engine = PositionEngine(settings, sessions, redis_client, consumer="loopback")
    servers = [
        start_health_server(free_port(), engine, threading.Event()),
        start_metrics_server(free_port(), executor.ctx),
    ]
    try:
        assert [s.server_address[0] for s in servers] == ["127.0.0.1", "127.0.0.1"]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
