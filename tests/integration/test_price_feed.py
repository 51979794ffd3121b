"""The price feed publishing to real Redis: sim and replay sources, symbols of open positions,
and positions marked and closed by the engine from the feed's ticks."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from libs.common import streams
from libs.common.streams import SignalMessage, TickMessage
from services.position_engine.engine import PositionEngine
from services.price_feed.feed import Feed
from services.price_feed.sim import ReplayError, ReplaySource, SimSource, read_replay
from tests.polling import wait_for


@pytest.fixture
def running_feed(redis_client):
    started = []

    def start(feed: Feed) -> Feed:
        stop = threading.Event()
        thread = threading.Thread(
            target=feed.run, args=(stop,), kwargs={"every_s": 0.05}, daemon=True
        )
        thread.start()
        started.append((stop, thread))
        return feed

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(5)


def ticks(redis_client, settings):
    return [
        TickMessage.from_fields(f) for _, f in redis_client.xrange(settings.stream(streams.TICKS))
    ]


def test_sim_ticks_follow_the_watch_list_on_the_tick_grid(settings, redis_client, running_feed):
    settings = replace(settings, price_watchlist=("ZN", "6J"))
    running_feed(Feed(settings, redis_client, SimSource(interval_s=0.01, seed=7)))
    got = wait_for(
        lambda: (
            {t.symbol for t in ticks(redis_client, settings)} >= {"ZN", "6J"}
            and ticks(redis_client, settings)
        ),
        "ticks of both symbols",
    )
    for tick in got:
        tick_size = Decimal("0.015625") if tick.symbol == "ZN" else Decimal("0.0000005")
        assert tick.price % tick_size == 0, tick
        assert tick.source == "sim" and not tick.delayed
    assert set(redis_client.hgetall(settings.stream(streams.LAST_PRICE))) == {"ZN", "6J"}


def test_feed_follows_symbols_of_open_positions(settings, redis_client, running_feed):
    settings = replace(settings, price_watchlist=())
    feed = running_feed(Feed(settings, redis_client, SimSource(interval_s=0.01, seed=1)))
    redis_client.hset(settings.stream(streams.OPEN_SYMBOLS), mapping={"CL": 2})
    wait_for(lambda: any(t.symbol == "CL" for t in ticks(redis_client, settings)), "a CL tick")
    redis_client.delete(settings.stream(streams.OPEN_SYMBOLS))
    wait_for(lambda: feed.wanted == set(), "CL dropped")
    status = feed.status()
    assert (
        status["source"] == "sim"
        and status["cached_prices"] == 1
        and "CL" in status["last_tick_age_s"]
    )


def test_status_changes_are_published_as_price_status_events(settings, redis_client, running_feed):
    running_feed(Feed(settings, redis_client, SimSource(interval_s=0.05)))
    event = wait_for(
        lambda: [
            f
            for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
            if f["type"] == "price.status"
        ],
        "a price.status event",
    )
    assert '"source":"sim"' in event[0]["data"]
    assert redis_client.get(settings.stream(streams.PRICE_FEED_STATUS))


def test_sim_prices_mark_and_close_a_position_live(
    settings, redis_client, sessions, make_recorder, running_feed
):
    recorder = make_recorder(tp_ticks=3, sl_ticks=3)
    engine = PositionEngine(settings, sessions, redis_client, consumer="e")
    engine.prepare()
    msg = SignalMessage(
        str(uuid.uuid4()),
        recorder.id,
        "buy",
        "MNQ1!",
        "MNQ",
        Decimal("25600"),
        None,
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), msg.to_fields())
    engine.step(block_ms=None)
    assert redis_client.hget(settings.stream(streams.OPEN_SYMBOLS), "MNQ") == "1"

    running_feed(
        Feed(
            replace(settings, price_watchlist=()), redis_client, SimSource(interval_s=0.01, seed=3)
        )
    )

    def closed():
        engine.step(block_ms=50)
        events = [f["type"] for _, f in redis_client.xrange(settings.stream(streams.EVENTS))]
        return "position.closed" in events and events

    events = wait_for(closed, "the position to exit at its TP or SL")
    assert "position.marked" in events
    assert not redis_client.exists(settings.stream(streams.OPEN_SYMBOLS))


def test_replay_plays_a_csv_at_the_chosen_speed(settings, redis_client, running_feed, tmp_path):
    csv = tmp_path / "day.csv"
    csv.write_text(
        "ts,symbol,price\n1764000000000,CME_MINI:MNQ1!,25600.25\n1764000001000,MNQ1!,25601\n"
        "1764000002000,ES,6900.5\n"
    )
    source = ReplaySource(csv, speed=20)
    started = time.monotonic()
    running_feed(Feed(replace(settings, price_watchlist=()), redis_client, source))
    wait_for(lambda: source.finished, "the replay to finish")
    assert time.monotonic() - started >= 2 / 20  # spacing kept, divided by the speed
    assert [(t.symbol, t.price, t.source) for t in ticks(redis_client, settings)] == [
        ("MNQ", Decimal("25600.25"), "replay"),
        ("MNQ", Decimal("25601"), "replay"),
        ("ES", Decimal("6900.5"), "replay"),
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("ts,symbol,price\n1764000000000,MNQ\n", ":2: expected ts,symbol,price"),
        ("1764000000000,MNQ,abc\n", "is not ts,symbol,price"),
        ("1764000000000,MNQ,-1\n", "must be a positive number"),
    ],
)
def test_a_bad_replay_file_names_the_line(tmp_path, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    with pytest.raises(ReplayError, match=message):
        read_replay(csv)
