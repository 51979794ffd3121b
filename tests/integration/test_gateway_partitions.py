"""The gateway with the engine in partitions (ENGINE_PARTITIONS): each signal, its markers and
every key its store script touches sit in its recorder's partition (`jt:{pK}:…`), and one
partition on a plain Redis keeps the contract's names."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import redis

from libs.common import partitions, recorder_tokens, streams
from libs.common.recorder_tokens import token_digest
from libs.common.storage.embedded import EmbeddedRedis, free_port
from services.gateway.app import connect_redis, create_app

BUY = {"action": "buy", "ticker": "MNQ1!", "price": 21034.25}


def in_partition(settings, name: str, partition: int) -> str:
    return f"{settings.stream_prefix}{{p{partition}}}:{name}"


def stream_ids(client, key: str) -> list[str]:
    return [fields["signal_id"] for _, fields in client.xrange(key)]


def post(client, token: str, body: dict):
    return client.post(f"/webhook/{token}", data=json.dumps(body))


@pytest.fixture
def two(settings):
    return replace(settings, engine_partitions=2)


@pytest.fixture
def odd_and_even(make_recorder, redis_client, two):
    """Two recorders, one in each partition, their tokens in the maps."""
    made = [make_recorder(), make_recorder()]
    made.sort(key=lambda r: r.id % 2, reverse=True)
    odd, even = made
    assert (odd.id % 2, even.id % 2) == (1, 0)
    for recorder in made:
        recorder_tokens.put(redis_client, two, recorder)
    return odd, even


@pytest.fixture
def app(two, redis_client, odd_and_even):
    app = create_app(two, redis_client=redis_client)
    yield app
    app.extensions["spool_drainer"].stop()


def test_an_odd_and_an_even_recorder_signal_into_their_own_partitions(
    app, odd_and_even, redis_client, two
):
    odd, even = odd_and_even
    client = app.test_client()

    to_odd = post(client, odd.webhook_token, BUY)
    to_even = post(client, even.webhook_token, BUY)

    assert to_odd.status_code == to_even.status_code == 202
    odd_id, even_id = to_odd.get_json()["signal_id"], to_even.get_json()["signal_id"]
    assert stream_ids(redis_client, in_partition(two, "signals", 1)) == [odd_id]
    assert stream_ids(redis_client, in_partition(two, "signals", 0)) == [even_id]
    assert not redis_client.exists(two.stream("signals"))
    # the UI answers "pending" from the marker, in the signal's partition
    pending = streams.SIGNAL_PENDING
    assert redis_client.get(in_partition(two, pending + odd_id, 1)) == str(odd.id)
    assert redis_client.get(in_partition(two, pending + even_id, 0)) == str(even.id)
    assert not redis_client.keys(two.stream(pending + "*"))


def test_a_repeated_alert_id_is_answered_as_a_duplicate_within_its_partition(
    app, odd_and_even, redis_client, two
):
    odd, _ = odd_and_even
    client = app.test_client()
    alert = {**BUY, "id": "MNQ1!-5-1732900000"}

    first = post(client, odd.webhook_token, alert)
    again = post(client, odd.webhook_token, {**alert, "price": 21035})

    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json() == {
        "ok": True,
        "signal_id": first.get_json()["signal_id"],
        "duplicate": True,
    }
    assert stream_ids(redis_client, in_partition(two, "signals", 1)) == [
        first.get_json()["signal_id"]
    ]
    # the id's marker and the rate window share the partition's hash tag (one cluster slot)
    [alert_marker] = redis_client.keys(in_partition(two, "webhook_alert:*", 1))
    assert redis_client.get(alert_marker) == first.get_json()["signal_id"]
    assert redis_client.keys(in_partition(two, "webhook_rate:*", 1))
    assert not redis_client.keys(two.stream("webhook_*"))


def test_a_removed_token_is_refused_although_the_workers_copy_still_has_it(
    app, odd_and_even, redis_client, two
):
    # Given a worker whose copy of the map knows the odd recorder's token
    odd, _ = odd_and_even
    assert app.extensions["gateway"].known.get(odd.webhook_token) is not None

    # When the recorder is deleted (the UI drops its token from every map)
    recorder_tokens.remove(redis_client, two, odd.webhook_token)

    # Then the store script, reading its partition's map, refuses it
    response = post(app.test_client(), odd.webhook_token, BUY)
    assert response.status_code == 404
    assert not redis_client.exists(in_partition(two, "signals", 1))


def test_the_token_map_is_kept_whole_and_per_partition(make_recorder, redis_client, sessions, two):
    odd_and_even = sorted([make_recorder(), make_recorder()], key=lambda r: r.id % 2)
    even, odd = odd_and_even
    # an entry left in a partition's map by a recorder deleted while nothing listened
    redis_client.hset(in_partition(two, "recorder_tokens", 0), "gone", "{}")

    with sessions() as session:
        count = recorder_tokens.sync_all(redis_client, two, session)

    assert count == 2
    whole = redis_client.hgetall(two.stream("recorder_tokens"))
    assert set(whole) == {token_digest(r.webhook_token) for r in odd_and_even}
    for partition, recorder in enumerate((even, odd)):
        part = redis_client.hgetall(in_partition(two, "recorder_tokens", partition))
        assert part == {
            token_digest(recorder.webhook_token): whole[token_digest(recorder.webhook_token)]
        }
    assert recorder_tokens.is_synced(redis_client, two)


def test_one_partition_on_a_plain_redis_keeps_the_contracts_key_names(
    make_recorder, redis_client, settings
):
    assert settings.engine_partitions == 1
    recorder = make_recorder()
    recorder_tokens.put(redis_client, settings, recorder)
    app = create_app(settings, redis_client=redis_client)
    try:
        answer = post(app.test_client(), recorder.webhook_token, {**BUY, "id": "a-1"})
    finally:
        app.extensions["spool_drainer"].stop()

    signal_id = answer.get_json()["signal_id"]
    p = settings.stream_prefix
    digest = token_digest(recorder.webhook_token)
    keys = set(redis_client.keys(p + "*"))
    assert {p + "signals", p + "recorder_tokens", p + "signal_pending:" + signal_id} < keys
    assert {k.rpartition(":")[0] for k in keys if "webhook_" in k} == {
        f"{p}webhook_alert:{digest}",
        f"{p}webhook_rate:{digest}",
    }
    assert not [k for k in keys if "{p" in k]


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


def test_signals_spooled_while_redis_was_down_reach_their_partitions(
    make_recorder, settings, own_redis
):
    two = replace(settings, engine_partitions=2, redis_url=own_redis.url)
    store = redis.Redis.from_url(own_redis.url, decode_responses=True)
    odd, even = sorted([make_recorder(), make_recorder()], key=lambda r: r.id % 2, reverse=True)
    for recorder in (odd, even):
        recorder_tokens.put(store, two, recorder)
    app = create_app(two, redis_client=connect_redis(two.redis_url))
    client = app.test_client()
    try:
        own_redis.stop()
        to_odd = post(client, odd.webhook_token, {**BUY, "id": "odd-1"})
        to_even = post(client, even.webhook_token, BUY)
        assert to_odd.status_code == to_even.status_code == 202
        assert app.extensions["gateway"].spool.count() == 2

        own_redis.process = None
        own_redis.start()
        deadline = time.monotonic() + 10
        while app.extensions["gateway"].spool.count() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        app.extensions["spool_drainer"].stop()

    odd_id, even_id = to_odd.get_json()["signal_id"], to_even.get_json()["signal_id"]
    assert stream_ids(store, in_partition(two, "signals", 1)) == [odd_id]
    assert stream_ids(store, in_partition(two, "signals", 0)) == [even_id]
    pending = streams.SIGNAL_PENDING
    assert store.get(in_partition(two, pending + odd_id, 1)) == str(odd.id)
    assert store.get(in_partition(two, pending + even_id, 0)) == str(even.id)
    [alert_marker] = store.keys(in_partition(two, "webhook_alert:*", 1))
    assert store.get(alert_marker) == odd_id
    store.close()


def test_a_gateway_with_another_partition_count_than_redis_records_refuses_to_start(
    redis_client, settings
):
    two = replace(settings, engine_partitions=2)
    app = create_app(two, redis_client=redis_client)  # records 2 on first use
    app.extensions["spool_drainer"].stop()

    with pytest.raises(partitions.PartitionMismatch):
        create_app(replace(settings, engine_partitions=3), redis_client=redis_client)
