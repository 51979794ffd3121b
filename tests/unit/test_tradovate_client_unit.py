"""The Tradovate client's pure parts: exact Decimal JSON, answer shapes, secrets kept out of
reprs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from libs.common.tradovate.client import (
    AccessToken,
    PenaltyTicket,
    Rejected,
    TradovateClient,
    TradovateError,
    _order_result,
    _penalty,
    decode_json,
    encode_json,
)


@pytest.mark.parametrize("price", ["112.015625", "21012.25", "0.0000005", "1E+2", "-3.5", "7"])
def test_decimals_are_written_with_their_exact_digits(price):
    text = encode_json(Decimal(price))
    assert decode_json(encode_json({"price": Decimal(price)}))["price"] == Decimal(price)
    assert "E" not in text.upper()  # plain digits, no exponent


def test_encoded_bodies_are_plain_json():
    body = {
        "accountId": 296445350031,
        "isAutomated": True,
        "clOrdId": 'a"b',
        "bracket1": {"price": Decimal("1.5"), "stopPrice": None},
        "ids": [1, 2],
    }
    assert json.loads(encode_json(body)) == {**body, "bracket1": {"price": 1.5, "stopPrice": None}}


def test_non_finite_decimals_are_refused():
    with pytest.raises(ValueError):
        encode_json(Decimal("NaN"))


def test_answers_keep_int64_ids_as_int_and_prices_as_decimal():
    body = decode_json('{"orderId": 296445350031, "price": 21012.25}')
    assert body == {"orderId": 296445350031, "price": Decimal("21012.25")}
    assert decode_json("") is None


@pytest.mark.parametrize(
    ("body", "reason", "text"),
    [
        (
            {"failureReason": "InvalidPrice", "failureText": "Price is above the market"},
            "InvalidPrice",
            "Price is above the market",
        ),
        (
            {"violations": [{"constraint": "orderQty", "value": "0", "description": "qty > 0"}]},
            "Violation",
            "qty > 0",
        ),
        (
            {"errorText": "This endpoint should be called on demo.tradovateapi.com"},
            "Error",
            "This endpoint should be called on demo.tradovateapi.com",
        ),
    ],
)
def test_business_errors_in_200_bodies_are_rejections(body, reason, text):
    with pytest.raises(Rejected) as refused:
        _order_result(body)
    assert (refused.value.failure_reason, refused.value.failure_text) == (reason, text)


def test_a_success_reason_with_an_order_id_is_accepted():
    assert _order_result({"failureReason": "Success", "orderId": 7})["orderId"] == 7
    with pytest.raises(TradovateError):
        _order_result(None)


def test_penalty_body_becomes_a_ticket():
    with pytest.raises(PenaltyTicket) as penalty:
        _penalty({"p-ticket": "k9Qe", "p-time": 12, "p-captcha": False})
    ticket = penalty.value
    assert (ticket.ticket, ticket.wait_s, ticket.captcha) == ("k9Qe", 12.0, False)


def test_reprs_hide_tokens():
    token = AccessToken("secret-a", "secret-md", datetime(2026, 1, 1, tzinfo=UTC), 1, "jdoe")
    client = TradovateClient("https://demo.tradovateapi.com/v1/", "secret-a")
    assert "secret" not in repr(token) + repr(client)
    assert client.base_url == "https://demo.tradovateapi.com/v1"
