"""The webhook body rules (docs/contract.md §2 "Webhook"): what a TradingView alert may send, what
it may
not."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from libs.common.recorder_tokens import RecorderRef
from libs.common.streams import SignalMessage
from services.gateway.parsing import WebhookError, parse_webhook

RECORDER = RecorderRef(recorder_id=7, user_id=1, name="MNQ trend", enabled=True)


def parse(body: str | bytes | dict) -> SignalMessage:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return parse_webhook(body, RECORDER, "sig-1", 1_700_000_000_000)


def rejected(body: str | bytes | dict) -> WebhookError:
    with pytest.raises(WebhookError) as info:
        parse(body)
    return info.value


def test_buy_signal_becomes_a_message_with_the_canonical_symbol():
    body = (
        '{"action": "buy", "ticker": "CME_MINI:MNQ1!", "price": 21034.25, "contracts": 2, '
        '"time": "t", "id": "L"}'
    )
    message = parse(body)
    assert message == SignalMessage(
        signal_id="sig-1",
        recorder_id=7,
        action="buy",
        ticker="CME_MINI:MNQ1!",
        symbol="MNQ",
        price=Decimal("21034.25"),
        qty=Decimal(2),
        position_size=None,
        market_position=None,
        received_at=1_700_000_000_000,
        raw=body,
    )


@pytest.mark.parametrize(
    ("written", "action"),
    [
        ("buy", "buy"),
        ("LONG", "buy"),
        ("Sell", "sell"),
        ("short", "sell"),
        ("close", "close"),
        ("exit", "close"),
        ("flat", "close"),
        (" Flatten ", "close"),
    ],
)
def test_action_aliases_are_case_insensitive(written, action):
    assert parse({"action": written, "ticker": "MNQ1!"}).action == action


def test_unknown_action_is_rejected_naming_the_field():
    error = rejected({"action": "hold", "ticker": "MNQ1!"})
    assert error.status == 422 and "action" in error.message and "hold" in error.message


def test_missing_action_without_a_target_is_rejected():
    error = rejected({"ticker": "MNQ1!"})
    assert error.status == 422 and "action" in error.message


def test_price_as_numeric_string_is_read_exactly():
    message = parse({"action": "buy", "ticker": "MNQ1!", "price": " 21034.25 "})
    assert message.price == Decimal("21034.25")


def test_float_price_keeps_its_decimal_digits():
    assert parse('{"action": "buy", "ticker": "MNQ1!", "price": 0.1}').price == Decimal("0.1")


@pytest.mark.parametrize("price", [0, -1, "-5", "abc", "21,034.25", True, [1]])
def test_price_that_is_not_a_positive_number_is_rejected(price):
    error = rejected({"action": "buy", "ticker": "MNQ1!", "price": price})
    assert error.status == 422 and "price" in error.message


@pytest.mark.parametrize("name", ["contracts", "quantity", "qty"])
def test_each_quantity_alias_sets_qty(name):
    assert parse({"action": "buy", "ticker": "MNQ1!", name: "3"}).qty == Decimal(3)


def test_quantity_aliases_that_agree_are_accepted():
    message = parse({"action": "buy", "ticker": "MNQ1!", "contracts": 2, "qty": "2.0"})
    assert message.qty == Decimal(2)


def test_quantity_aliases_that_disagree_are_rejected():
    error = rejected({"action": "buy", "ticker": "MNQ1!", "contracts": 2, "qty": 3})
    assert error.status == 422 and "contracts" in error.message and "qty" in error.message


def test_zero_quantity_is_rejected():
    assert rejected({"action": "buy", "ticker": "MNQ1!", "qty": 0}).status == 422


def test_no_quantity_leaves_qty_to_the_recorder_default():
    assert parse({"action": "buy", "ticker": "MNQ1!"}).qty is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", "{{close}}"),
        ("action", "{{strategy.order.action}}"),
        ("ticker", "{{Ticker}}"),
        ("contracts", "{{strategy.order.contracts}}"),
        ("market_position", "{{strategy.market_position}}"),
    ],
)
def test_unrendered_placeholder_is_rejected_naming_the_field(field, value):
    body = {"action": "buy", "ticker": "MNQ1!", field: value}
    error = rejected(body)
    assert error.status == 422
    assert f"field {field}" in error.message and value in error.message
    assert "did not substitute" in error.message


def test_unquoted_placeholder_is_rejected_naming_its_field():
    error = rejected('{"action": "buy", "ticker": "MNQ1!", "price": {{strategy.order.price}}}')
    assert error.status == 422
    assert "price" in error.message and "{{strategy.order.price}}" in error.message


def test_placeholder_outside_any_field_makes_a_body_that_is_not_json_and_says_why():
    error = rejected("{{strategy.order.alert_message}}")
    assert error.status == 400 and "{{strategy.order.alert_message}}" in error.message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_number_is_rejected_naming_the_field(constant):
    error = rejected(f'{{"action": "buy", "ticker": "MNQ1!", "price": {constant}}}')
    assert error.status == 422 and "price" in error.message and constant in error.message


@pytest.mark.parametrize("text", ["", "na", "NaN", " NA "])
def test_missing_value_text_in_a_numeric_field_is_rejected_naming_the_field(text):
    error = rejected({"action": "buy", "ticker": "MNQ1!", "qty": text})
    assert error.status == 422 and "qty" in error.message


def test_target_signal_needs_no_action():
    body = {"ticker": "MNQ1!", "position_size": -1, "market_position": "short", "contracts": 4}
    message = parse(body)
    assert (message.action, message.position_size, message.market_position, message.qty) == (
        None,
        Decimal(-1),
        "short",
        Decimal(4),
    )


def test_flat_market_position_alone_means_target_zero():
    message = parse({"ticker": "MNQ1!", "market_position": "FLAT"})
    assert (message.position_size, message.market_position) == (Decimal(0), "flat")


def test_position_size_alone_implies_the_side():
    assert parse({"ticker": "MNQ1!", "position_size": "2"}).market_position == "long"
    assert parse({"ticker": "MNQ1!", "position_size": 0}).market_position == "flat"


def test_flat_with_a_nonzero_position_size_is_rejected():
    error = rejected({"ticker": "MNQ1!", "position_size": 1, "market_position": "flat"})
    assert error.status == 422 and "position_size" in error.message


@pytest.mark.parametrize(("size", "side"), [(-1, "long"), (0, "long"), (2, "short"), (0, "short")])
def test_position_size_sign_must_agree_with_market_position(size, side):
    error = rejected({"ticker": "MNQ1!", "position_size": size, "market_position": side})
    assert error.status == 422 and "position_size" in error.message


def test_long_market_position_without_a_size_is_rejected_as_unknown_target():
    error = rejected({"action": "buy", "ticker": "MNQ1!", "market_position": "long"})
    assert error.status == 422 and "position_size" in error.message


def test_unknown_market_position_is_rejected():
    assert "market_position" in rejected({"ticker": "MNQ1!", "market_position": "na"}).message


@pytest.mark.parametrize("name", ["MNQ trend", " mnq TREND ", "7", 7])
def test_recorder_field_may_name_this_recorder_by_name_or_id(name):
    assert parse({"recorder": name, "action": "buy", "ticker": "MNQ1!"}).recorder_id == 7


def test_recorder_name_mismatch_is_rejected_saying_which_recorder_the_webhook_belongs_to():
    error = rejected({"recorder": "ES scalp", "action": "buy", "ticker": "MNQ1!"})
    assert error.status == 422 and '"MNQ trend"' in error.message and '"ES scalp"' in error.message


@pytest.mark.parametrize("body", ["[1, 2]", '"buy"', "42", "null"])
def test_json_that_is_not_an_object_is_rejected(body):
    error = rejected(body)
    assert error.status == 400 and "JSON object" in error.message


@pytest.mark.parametrize("body", ["", "   ", "buy MNQ1!", '{"action": "buy"', "[" * 5000])
def test_body_that_is_not_json_is_a_bad_request(body):
    assert rejected(body).status == 400


def test_unquoted_text_value_gets_a_quoting_hint():
    error = rejected('{"action": "buy", "ticker": MNQ1!}')
    assert error.message.startswith("The body is not JSON") and "double quotes" in error.message


def test_invalid_utf8_is_a_bad_request():
    assert rejected(b'{"action": "buy", "ticker": "\xff"}').status == 400


def test_text_plain_style_body_with_a_raw_newline_in_a_comment_is_accepted():
    body = '{"action": "sell", "ticker": "MNQZ2025", "comment": "line one\nline two"}'
    message = parse(body)
    assert (message.action, message.symbol, message.raw) == ("sell", "MNQ", body)


def test_missing_or_malformed_ticker_is_rejected_naming_the_ticker():
    assert "ticker" in rejected({"action": "buy"}).message
    assert "ticker" in rejected({"action": "buy", "ticker": "MNQ 1!"}).message
    assert "ticker" in rejected({"action": "buy", "ticker": 5}).message


def test_a_field_written_twice_is_rejected():
    error = rejected('{"action": "buy", "action": "sell", "ticker": "MNQ1!"}')
    assert error.status == 422 and "action" in error.message


def test_other_fields_are_kept_only_in_raw_even_when_they_hold_nan():
    body = '{"action": "buy", "ticker": "AAPL", "plot": NaN, "time": "{{timenow}}"}'
    message = parse(body)
    assert (message.symbol, message.raw) == ("AAPL", body)


def test_every_error_is_one_sentence():
    bodies = [
        "",
        "[]",
        {"action": "x", "ticker": "MNQ1!"},
        {"action": "buy", "ticker": "{{ticker}}"},
        {"recorder": "other", "action": "buy", "ticker": "MNQ1!"},
    ]
    for body in bodies:
        message = rejected(body).message
        assert message[0].isupper() and message.endswith(".") and "\n" not in message
