"""The recorder rules of docs/contract.md §3, on plain values."""

from decimal import Decimal as D

import pytest

from libs.common.futures.instruments import contract_spec
from services.position_engine.rules import (
    PositionState,
    RecorderSettings,
    SignalInput,
    apply_signal,
)
from services.position_engine.ticks import apply_tick

MNQ = contract_spec("MNQ")
WORKED = RecorderSettings(default_qty=D(1), tp_ticks=20, sl_ticks=40)


def signal(action=None, price=None, qty=None, symbol="MNQ", ms=1_000, **target) -> SignalInput:
    return SignalInput(
        signal_id="s",
        symbol=symbol,
        action=action,
        price=None if price is None else D(str(price)),
        qty=None if qty is None else D(str(qty)),
        position_size=None
        if target.get("position_size") is None
        else D(str(target["position_size"])),
        market_position=target.get("market_position"),
        received_ms=ms,
    )


def run(position, sig, recorder=WORKED, spec=MNQ, last_price=None):
    outcome = apply_signal(position, sig, recorder, spec, last_price)
    return outcome, outcome.open_position


def test_worked_example_of_the_design():
    _, pos = run(None, signal("buy", 25640))
    assert (pos.side, pos.quantity, pos.avg_entry_price) == ("long", 1, 25640)
    assert (pos.tp_price, pos.sl_price) == (D("25645"), D("25630"))

    _, pos = run(pos, signal("buy", 25630))
    assert (pos.quantity, pos.avg_entry_price) == (2, 25635)
    assert (pos.tp_price, pos.sl_price) == (D("25640"), D("25625"))

    marked = apply_tick(pos, D("25628"), 2_000, MNQ)
    assert marked.unrealized_pnl == D("-28")
    assert marked.position.worst_unrealized_pnl == D("-28")
    assert marked.position.max_adverse == 7
    assert marked.exit is None

    hit = apply_tick(marked.position, D("25641"), 3_000, MNQ)
    assert hit.exit is not None
    closed = hit.position
    assert (closed.status, closed.exit_reason, closed.exit_price) == ("closed", "tp", D("25640"))
    assert closed.max_favorable == 5
    assert closed.realized_pnl == D("20")


def test_dca_off_ignores_a_same_side_signal_with_a_reason():
    _, pos = run(None, signal("buy", 25640), RecorderSettings(allow_dca=False))
    outcome, after = run(pos, signal("buy", 25600), RecorderSettings(allow_dca=False))
    assert outcome.status == "ignored"
    assert "DCA is off" in outcome.reason
    assert outcome.changes == ()


def test_opposite_signal_reverses_and_realizes_pnl():
    _, pos = run(None, signal("buy", 25640, qty=2), RecorderSettings())
    outcome, new = run(pos, signal("sell", 25650, qty=1), RecorderSettings())
    closed = outcome.changes[0].position
    assert (closed.status, closed.exit_reason, closed.exit_price) == (
        "closed",
        "reverse",
        D("25650"),
    )
    assert closed.realized_pnl == D("40")  # 10 points × 2 contracts × $2
    assert (new.side, new.quantity, new.avg_entry_price) == ("short", 1, 25650)


def test_opposite_signal_only_closes_when_recorder_says_close():
    rec = RecorderSettings(on_opposite="close")
    _, pos = run(None, signal("sell", 25640), rec)
    outcome, after = run(pos, signal("buy", 25630), rec)
    assert after is None
    closed = outcome.changes[0].position
    assert (closed.exit_reason, closed.realized_pnl) == ("signal", D("20"))


def test_close_signal_closes_and_is_ignored_when_flat():
    outcome, _ = run(None, signal("close", 25640))
    assert outcome.status == "ignored"
    _, pos = run(None, signal("sell", 25640))
    outcome, after = run(pos, signal("close", 25650))
    assert after is None
    assert outcome.changes[0].position.realized_pnl == D("-20")
    assert outcome.changes[0].position.exit_reason == "signal"


def test_signal_without_price_uses_last_tick_and_is_rejected_without_one():
    outcome, _ = run(None, signal("buy"))
    assert outcome.status == "rejected"
    assert "no price" in outcome.reason
    outcome, pos = run(None, signal("buy"), last_price=D("25641.5"))
    assert pos.avg_entry_price == D("25641.5")


def test_signal_price_is_rounded_onto_the_tick_grid():
    _, pos = run(None, signal("buy", "25640.13"))
    assert pos.avg_entry_price == D("25640.25")


def test_default_quantity_comes_from_the_recorder():
    _, pos = run(None, signal("buy", 100), RecorderSettings(default_qty=D(3)))
    assert pos.quantity == 3


def test_disabled_recorder_ignores_signals():
    outcome, _ = run(None, signal("buy", 100), RecorderSettings(enabled=False))
    assert (outcome.status, outcome.reason) == ("ignored", "the recorder is disabled")


def test_tp_sl_exact_half_rounds_away_from_the_average():
    # long 25640 + long 25630.25 → avg 25635.125; tp 20 ticks → 25640.125 → up to 25640.25
    _, pos = run(None, signal("buy", 25640))
    _, pos = run(pos, signal("buy", "25630.25"))
    assert pos.avg_entry_price == D("25635.125")
    assert pos.tp_price == D("25640.25")
    assert pos.sl_price == D("25625.00")  # 25625.125 → half → away (down)


def test_short_levels_mirror_and_halves_round_away_from_average():
    _, pos = run(None, signal("sell", 25640))
    assert (pos.tp_price, pos.sl_price) == (D("25635"), D("25650"))
    _, pos = run(pos, signal("sell", "25630.25"))
    assert pos.tp_price == D("25630.00")  # 25630.125 rounds down, away from the average
    assert pos.sl_price == D("25645.25")  # 25645.125 rounds up


class TestTargetSignals:
    rec = RecorderSettings()

    def test_grow_shrink_and_cross_zero(self):
        _, pos = run(None, signal(price=100, position_size=2, market_position="long"), self.rec)
        assert pos.signed_quantity == 2
        _, pos = run(pos, signal(price=110, position_size=3, market_position="long"), self.rec)
        assert pos.avg_entry_price == D("103.333333333333")
        outcome, pos = run(
            pos, signal(price=120, position_size=1, market_position="long"), self.rec
        )
        assert pos.quantity == 1
        assert outcome.changes[0].fills[0].realized_pnl > 0
        assert pos.avg_entry_price == D("103.333333333333")  # the average stays on a reduce
        outcome, pos = run(
            pos, signal(price=90, position_size=-2, market_position="short"), self.rec
        )
        closed = outcome.changes[0].position
        assert closed.exit_reason == "reverse"
        assert (pos.side, pos.quantity) == ("short", 2)
        # 2@100 + 1@110 in, 2@120 + 1@90 out, on a $2 contract: exact to the cent and beyond.
        assert closed.realized_pnl == (D(240) + D(90) - D(200) - D(110)) * MNQ.point_value

    def test_flat_target_closes_with_signal_reason(self):
        _, pos = run(None, signal(price=100, position_size=-1, market_position="short"), self.rec)
        outcome, after = run(pos, signal(price=99, market_position="flat"), self.rec)
        assert after is None
        assert outcome.changes[0].position.exit_reason == "signal"

    def test_target_equal_to_current_is_ignored(self):
        _, pos = run(None, signal(price=100, position_size=2, market_position="long"), self.rec)
        outcome, _ = run(pos, signal(price=101, position_size=2, market_position="long"), self.rec)
        assert outcome.status == "ignored"

    @pytest.mark.parametrize("size, mp", [(1, "short"), (-1, "long"), (2, "flat")])
    def test_disagreeing_fields_are_rejected(self, size, mp):
        outcome, _ = run(None, signal(price=100, position_size=size, market_position=mp), self.rec)
        assert outcome.status == "rejected"


class TestTicks:
    def position(self, **kw) -> PositionState:
        _, pos = run(None, signal("buy", 25640, ms=1_000))
        return pos

    def test_tick_older_than_the_position_is_ignored(self):
        assert apply_tick(self.position(), D("25000"), 999, MNQ) is None

    def test_stop_loss_exit_is_clamped_to_the_level(self):
        out = apply_tick(self.position(), D("25600"), 1_000, MNQ)
        assert (out.position.exit_reason, out.position.exit_price) == ("sl", D("25630"))
        assert out.position.realized_pnl == D("-20")
        assert out.position.max_adverse == 10
        assert out.position.worst_unrealized_pnl == D("-20")

    def test_short_take_profit(self):
        _, pos = run(None, signal("sell", 25640, ms=0))
        out = apply_tick(pos, D("25634"), 5, MNQ)
        assert (out.position.exit_reason, out.position.exit_price) == ("tp", D("25635"))
        assert out.position.realized_pnl == D("10")

    def test_delayed_tick_takes_no_exit_unless_allowed(self):
        held = apply_tick(self.position(), D("25700"), 2_000, MNQ, delayed=True)
        assert held.exit is None and held.held_exit == "tp"
        taken = apply_tick(
            self.position(), D("25700"), 2_000, MNQ, delayed=True, allow_delayed_exits=True
        )
        assert taken.position.exit_reason == "tp"

    def test_extremes_never_cross_zero(self):
        out = apply_tick(self.position(), D("25642"), 2_000, MNQ)
        assert out.position.worst_unrealized_pnl == 0
        assert out.position.best_unrealized_pnl == D("4")
        assert out.position.max_adverse == 0
