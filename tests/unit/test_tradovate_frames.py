"""Tradovate wire helpers: server frames, 4-line requests, partial quote merging, lookup answers."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from libs.common.backoff import backoff_delay
from libs.common.tradovate.frames import (
    Close,
    Event,
    FrameError,
    Heartbeat,
    Messages,
    Open,
    Response,
    build_request,
    merge_entries,
    parse_frame,
    read_contract_find,
    trade_price,
)


def test_open_and_heartbeat_frames():
    assert parse_frame("o") == Open()
    assert parse_frame("h") == Heartbeat()


def test_a_frame_mixes_responses_and_events_with_decimal_prices():
    frame = parse_frame(
        'a[{"s":200,"i":0},{"i":2,"s":401,"d":"Access is denied"},'
        '{"e":"md","d":{"quotes":[{"contractId":3570918,"entries":{"Trade":{"price":21012.25}}}]}}]'
    )
    assert isinstance(frame, Messages)
    ok, refused, event = frame.items
    assert ok == Response(0, 200) and ok.ok
    assert refused == Response(2, 401, "Access is denied") and not refused.ok
    assert isinstance(event, Event) and event.e == "md"
    price = event.d["quotes"][0]["entries"]["Trade"]["price"]
    assert price == Decimal("21012.25") and isinstance(price, Decimal)


def test_close_frame_carries_code_and_reason():
    assert parse_frame('c[3000,"Go away!"]') == Close(3000, "Go away!")


@pytest.mark.parametrize(
    "text", ["", "x", "a{", 'a{"s":200}', "a[1]", 'a[{"i":1}]', "c[]", 'c["x"]']
)
def test_malformed_frames_raise(text):
    with pytest.raises(FrameError):
        parse_frame(text)


def test_authorize_request_sends_the_raw_token_as_body():
    assert build_request("authorize", 0, "", "tok.en") == "authorize\n0\n\ntok.en"


def test_requests_keep_empty_fields_and_json_bodies():
    assert build_request("executionReport/list", 4) == "executionReport/list\n4\n\n"
    assert build_request("contract/find", 5, "name=MNQZ5") == "contract/find\n5\nname=MNQZ5\n"
    assert build_request("md/subscribeQuote", 6, "", {"symbol": "MNQZ6"}) == (
        'md/subscribeQuote\n6\n\n{"symbol":"MNQZ6"}'
    )


def test_merge_keeps_missing_entries_and_missing_fields():
    first = merge_entries(
        None,
        {
            "Trade": {"price": Decimal("100"), "size": 1},
            "Bid": {"price": Decimal("99.75"), "size": 7},
        },
    )
    second = merge_entries(first, {"Bid": {"size": 9}, "Offer": {"price": Decimal("100.25")}})
    assert second == {
        "Trade": {"price": Decimal("100"), "size": 1},
        "Bid": {"price": Decimal("99.75"), "size": 9},
        "Offer": {"price": Decimal("100.25")},
    }
    assert first["Bid"]["size"] == 7  # the earlier quote is not changed in place


def test_merge_ignores_garbage_entries():
    last = {"Trade": {"price": Decimal("1")}}
    assert merge_entries(last, None) == last
    assert merge_entries(last, {"Trade": 5}) == last


def test_trade_price_only_from_a_trade_entry():
    assert trade_price({"Bid": {"price": Decimal("1")}}) is None
    assert trade_price({"Trade": {"size": 3}}) is None
    assert trade_price({"Trade": {"price": 21012}}) == Decimal(21012)
    assert trade_price({"Trade": {"price": Decimal("21012.25")}}) == Decimal("21012.25")


def test_contract_find_answers():
    assert read_contract_find("MNQZ6", 200, {"id": 3570918, "name": "MNQZ6"}).contract_id == 3570918
    assert (
        read_contract_find("MNQZ6", 200, None).failure == "Tradovate does not know contract MNQZ6"
    )
    assert "Not found" in read_contract_find("MNQZ6", 200, {"errorText": "Not found"}).failure
    assert read_contract_find("MNQ", 404, None).failure
    for status, body in (
        (401, None),
        (429, None),
        (500, None),
        (200, {"p-ticket": "x", "p-time": 5}),
    ):
        lookup = read_contract_find("MNQZ6", status, body)
        assert lookup.transient and lookup.failure is None and lookup.contract_id is None


def test_backoff_grows_to_its_cap_with_jitter():
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 30.0, rng) for n in range(10)]
    assert 0.5 <= delays[0] <= 1.0
    assert 4.0 <= delays[3] <= 8.0
    assert all(d <= 30.0 for d in delays) and delays[-1] >= 15.0
