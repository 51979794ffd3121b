"""TradingView framing: lengths in UTF-16 units, several packets per message, bad frames refused."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.price_feed.tradingview.framing import (
    FramingError,
    Heartbeat,
    Hello,
    Message,
    decode,
    encode_heartbeat,
    encode_message,
    encode_packet,
)

QS = "qs_k3JdU8pQx2Lm"
FIELDS = [
    "lp",
    "lp_time",
    "ch",
    "chp",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "volume",
    "open_price",
    "high_price",
    "low_price",
    "prev_close_price",
    "current_session",
    "update_mode",
    "original_name",
    "pro_name",
    "short_name",
    "exchange",
    "description",
    "type",
    "pricescale",
    "minmov",
    "currency_code",
    "timezone",
]
AIRBUS = (
    '~m~107~m~{"m":"qsd","p":["qs_k3JdU8pQx2Lm",{"n":"EURONEXT:AIR","s":"ok",'
    '"v":{"description":"Airbus SE — Société"}}]}'
)


def test_client_messages_match_the_reference_frames():
    assert encode_message("set_auth_token", ["unauthorized_user_token"]) == (
        '~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}'
    )
    assert (
        encode_message("set_locale", ["en", "US"]) == '~m~34~m~{"m":"set_locale","p":["en","US"]}'
    )
    assert encode_message("quote_create_session", [QS]).startswith("~m~52~m~")
    assert encode_message("quote_set_fields", [QS, *FIELDS]).startswith("~m~327~m~")
    assert encode_message("quote_add_symbols", [QS, "CME_MINI:MNQ1!", "CME_MINI:ES1!"]).startswith(
        "~m~82~m~"
    )
    assert encode_message("quote_remove_symbols", [QS, "CME_MINI:ES1!"]).startswith("~m~68~m~")


def test_symbol_given_as_json_text_is_escaped_like_the_reference():
    symbol = '={"adjustment":"splits","session":"regular","symbol":"CME_MINI:MNQ1!"}'
    frame = encode_message("quote_add_symbols", [QS, symbol])
    assert frame.startswith("~m~134~m~")
    [packet] = decode(frame)
    assert packet == Message("quote_add_symbols", [QS, symbol])


def test_heartbeats_encode_and_decode_with_their_growing_length():
    assert encode_heartbeat(17) == "~m~5~m~~h~17"
    assert encode_heartbeat(100) == "~m~6~m~~h~100"
    assert decode("~m~5~m~~h~17") == [Heartbeat(17, "~m~5~m~~h~17")]


def test_non_ascii_payload_is_counted_in_utf16_units_not_bytes():
    [packet] = decode(AIRBUS)
    assert isinstance(packet, Message)
    assert packet.params[1]["v"]["description"] == "Airbus SE — Société"
    payload = AIRBUS.split("~m~", 2)[2]
    assert len(payload.encode("utf-8")) == 111  # a byte-counting reader would cut it short
    assert encode_packet(payload) == AIRBUS


def test_characters_outside_the_bmp_count_twice():
    payload = json.dumps(
        {"m": "qsd", "p": ["qs_x", {"v": {"description": "Rocket 🚀 Inc"}}]}, ensure_ascii=False
    )
    frame = encode_packet(payload)
    assert frame.startswith(f"~m~{len(payload) + 1}~m~")
    assert decode(frame + encode_heartbeat(3))[1] == Heartbeat(3, "~m~4~m~~h~3")


def test_one_message_may_carry_several_packets():
    message = (
        encode_message("qsd", [QS, {"n": "CME_MINI:MNQ1!", "s": "ok", "v": {"lp": 21035.5}}])
        + encode_heartbeat(4)
        + encode_message("quote_completed", [QS, "CME_MINI:MNQ1!"])
    )
    packets = decode(message)
    assert [type(p) for p in packets] == [Message, Heartbeat, Message]
    assert packets[2] == Message("quote_completed", [QS, "CME_MINI:MNQ1!"])


def test_numbers_parse_as_decimal_including_long_expansions_and_sentinels():
    frame = encode_packet(
        '{"m":"qsd","p":["qs_x",{"n":"X","s":"ok","v":{"lp":8004.8000000000001819,'
        '"volume":1e+100,"pricescale":100}}]}'
    )
    values = decode(frame)[0].params[1]["v"]
    assert values["lp"] == Decimal("8004.8000000000001819")
    assert values["volume"] == Decimal("1e+100")
    assert values["pricescale"] == 100


def test_hello_is_recognised_by_its_missing_method():
    payload = '{"session_id":"<0.812.4410>_sim","timestamp":1764000000,"protocol":"json"}'
    [packet] = decode(encode_packet(payload))
    assert isinstance(packet, Hello)
    assert packet.fields["session_id"] == "<0.812.4410>_sim"


def test_top_level_extras_beside_the_envelope_are_kept():
    [packet] = decode(encode_packet('{"m":"series_loading","p":["cs_x","sds_1","s1"],"t":1764}'))
    assert packet == Message("series_loading", ["cs_x", "sds_1", "s1"], {"t": 1764})


@pytest.mark.parametrize(
    "message",
    [
        "",
        "hello",
        '{"m":"qsd"}',  # no header at all
        "~m~10~m~~h~1",  # declared longer than the payload
        "~m~5~m~~h~17trailing",  # garbage after the last packet
        "~m~x~m~~h~1",
        '~m~9~m~{"m":"qsd"',  # truncated JSON
        "~m~5~m~~h~ab",
        "~m~3~m~[1]",  # JSON but not an object
        '~m~15~m~{"m":1,"p":[1]}',
        AIRBUS.replace("107", "111"),  # a byte count instead of UTF-16 units
        AIRBUS.replace("107", "103"),
    ],
)
def test_bad_frames_raise_framing_error(message):
    with pytest.raises(FramingError):
        decode(message)


def test_a_length_that_splits_a_surrogate_pair_is_refused():
    with pytest.raises(FramingError):
        decode("~m~1~m~🚀")


@given(st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_any_text_round_trips_through_framing(texts):
    message = "".join(encode_message("echo", [t]) for t in texts)
    assert [p.params[0] for p in decode(message)] == texts
