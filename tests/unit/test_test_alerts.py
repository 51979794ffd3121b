"""A test alert (`"test": true` in the webhook): how the gateway reads the field, how it travels
on `jt:signals`, and that the rules (and their replay) record it without trading."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from libs.common.futures.instruments import contract_spec
from libs.common.recorder_tokens import RecorderRef
from libs.common.streams import SignalMessage
from services.gateway.parsing import WebhookError, parse_webhook
from services.gateway.refused import BODY_NOT_KEPT, body_text, named_recorder
from services.position_engine import rules
from services.position_engine.replay import TickInput, replay_log

RECORDER = RecorderRef(recorder_id=7, user_id=1, name="MNQ trend", enabled=True)
BUY = {"action": "buy", "ticker": "MNQ1!", "price": 25640.25}
TEST_REASON = "a test alert: it reached the engine; nothing was traded"


def parse(body: dict) -> SignalMessage:
    return parse_webhook(json.dumps(body).encode(), RECORDER, "sig-1", 1_700_000_000_000)


@pytest.mark.parametrize(
    ("value", "test"), [(True, True), (False, False), ("true", True), (" FALSE ", False)]
)
def test_the_test_field_is_true_or_false(value, test):
    assert parse({**BUY, "test": value}).test is test


def test_without_the_field_a_signal_is_no_test():
    assert parse(BUY).test is False


@pytest.mark.parametrize(
    ("value", "shown"),
    [("yes", '"yes"'), (1, "1"), (None, "null"), ([True], "a list"), ("{{test}}", None)],
)
def test_anything_else_is_a_422_naming_the_field(value, shown):
    with pytest.raises(WebhookError) as info:
        parse({**BUY, "test": value})

    assert info.value.status == 422
    assert "The field test" in info.value.message
    if shown:
        assert info.value.message == f"The field test must be true or false, not {shown}."


def test_on_the_stream_only_a_test_carries_the_field():
    plain, test = parse(BUY), parse({**BUY, "test": True})

    assert "test" not in plain.to_fields()
    assert test.to_fields()["test"] == "1"
    assert SignalMessage.from_fields(test.to_fields()) == test
    assert SignalMessage.from_fields(plain.to_fields()) == plain


MNQ = contract_spec("MNQ")


def signal(action: str, price: str, test: bool = False, **kw) -> rules.SignalInput:
    return rules.SignalInput(
        "t" if test else action, "MNQ", action, Decimal(price), Decimal(1), test=test, **kw
    )


def test_the_rules_ignore_a_test_whatever_the_recorder():
    settings = rules.RecorderSettings(enabled=False, tp_ticks=20, sl_ticks=40)

    outcome = rules.apply_signal(None, signal("buy", "25640", test=True), settings, MNQ)

    assert (outcome.status, outcome.reason, outcome.changes) == ("ignored", TEST_REASON, ())


def test_a_test_leaves_an_open_position_as_it_was():
    settings = rules.RecorderSettings()
    opened = rules.apply_signal(None, signal("buy", "25640"), settings, MNQ).open_position

    outcome = rules.apply_signal(opened, signal("sell", "25650", test=True), settings, MNQ)

    assert (outcome.status, outcome.changes) == ("ignored", ())


def test_replay_treats_a_test_as_the_engine_does():
    log = [
        signal("buy", "25640", test=True),
        TickInput("MNQ", Decimal("25641"), 1),
        signal("buy", "25642"),
    ]

    replay = replay_log(log, rules.RecorderSettings())

    assert replay.outcomes["t"] == ("ignored", 0)
    assert [p.avg_entry_price for p in replay.positions] == [Decimal("25642")]


TOKEN = "a1" * 16


def test_a_kept_body_has_no_token_in_it():
    known = "b2" * 16
    body = f'{{"comment": "{TOKEN} https://x.io/webhook/{"c3" * 16}?a=1 {known} {"d4" * 16}"}}'

    text = body_text(body.encode(), TOKEN, lambda t: t == known)

    assert text == (
        '{"comment": "<token> https://x.io/webhook/<token>?a=1 <token> ' + "d4" * 16 + '"}'
    )


def test_a_kept_body_is_cut_at_4_kib_and_one_over_the_limit_is_not_kept():
    assert len(body_text(("é" * 5000).encode(), TOKEN, lambda t: False).encode()) == 4096
    assert body_text(None, TOKEN, lambda t: False) == BODY_NOT_KEPT


@pytest.mark.parametrize(
    ("body", "name"),
    [(b'{"recorder": "MNQ"}', "MNQ"), (b'{"recorder": 7}', None), (b"[1]", None), (b"x", None)],
)
def test_the_recorder_a_refused_body_names(body, name):
    assert named_recorder(body) == name
