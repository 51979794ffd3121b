"""The recorder rules driven as a state machine: random signals, targets and ticks on one
recorder, with its promises checked after every step against a plain model of the net position."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from libs.common.futures.instruments import contract_spec
from services.position_engine.rules import RecorderSettings, SignalInput, apply_signal
from services.position_engine.ticks import apply_tick

SPEC = contract_spec("MNQ")
prices = st.integers(-80, 80).map(lambda t: D("25600") + SPEC.tick_size * t)
off_grid = st.integers(-8000, 8000).map(lambda c: D("25600") + D(c) / 100)  # rounded onto the grid
quantities = st.integers(1, 4).map(D)


class RecorderMachine(RuleBasedStateMachine):
    """One recorder on MNQ. `net` is the model: signed contracts the rules must hold."""

    @initialize(
        on_opposite=st.sampled_from(["reverse", "close"]),
        allow_dca=st.booleans(),
        tp=st.none() | st.integers(1, 40),
        sl=st.none() | st.integers(1, 40),
    )
    def set_up(self, on_opposite, allow_dca, tp, sl):
        self.recorder = RecorderSettings(
            default_qty=D(1), tp_ticks=tp, sl_ticks=sl, on_opposite=on_opposite, allow_dca=allow_dca
        )
        self.position = None
        self.closed = []
        self.net = D(0)
        self.ms = 1_000
        self.n = 0

    def _signal(self, **fields) -> None:
        self.ms += 10
        self.n += 1
        signal = SignalInput(signal_id=str(self.n), symbol="MNQ", received_ms=self.ms, **fields)
        outcome = apply_signal(self.position, signal, self.recorder, SPEC)
        for change in outcome.changes:
            if change.position.status == "closed":
                self.closed.append(change.position)
        if outcome.changes:
            self.position = outcome.open_position
        assert outcome.status in ("applied", "ignored", "rejected")
        if outcome.status != "applied":
            assert not outcome.changes and outcome.reason

    @rule(action=st.sampled_from(["buy", "sell"]), qty=quantities, price=prices | off_grid)
    def trade(self, action, qty, price):
        side = 1 if action == "buy" else -1
        self._signal(action=action, qty=qty, price=price)
        if self.net == 0:
            self.net = side * qty
        elif (self.net > 0) == (side > 0):
            self.net += side * qty if self.recorder.allow_dca else 0
        else:
            self.net = side * qty if self.recorder.on_opposite == "reverse" else D(0)

    @rule(price=prices)
    def close(self, price):
        self._signal(action="close", price=price)
        self.net = D(0)

    @rule(size=st.integers(-4, 4).map(D), price=prices)
    def target(self, size, price):
        market = "flat" if size == 0 else ("long" if size > 0 else "short")
        self._signal(action=None, position_size=size, market_position=market, price=price)
        self.net = size  # a strategy's target is followed whatever DCA and on_opposite say

    @rule(price=prices)
    def tick(self, price):
        self.ms += 10
        if self.position is None:
            return
        outcome = apply_tick(self.position, price, self.ms, SPEC)
        if outcome is None:
            return
        self.position = outcome.position
        if outcome.exit is not None:
            self.closed.append(outcome.position)
            self.position = None
            self.net = D(0)

    @invariant()
    def the_open_position_is_the_models_net(self):
        held = self.position.signed_quantity if self.position else D(0)
        assert held == self.net
        if self.position:
            assert self.position.status == "open" and self.position.quantity > 0

    @invariant()
    def the_average_is_the_cost_basis_per_contract(self):
        p = self.position
        if p is not None:
            assert abs(p.entry_cost - p.avg_entry_price * p.quantity) < D("1e-6") * p.quantity

    @invariant()
    def levels_sit_on_the_right_side_of_the_average(self):
        p = self.position
        if p is None:
            return
        above, below = (p.tp_price, p.sl_price) if p.side == "long" else (p.sl_price, p.tp_price)
        assert above is None or above > p.avg_entry_price
        assert below is None or below < p.avg_entry_price
        assert (p.tp_price is None) == (self.recorder.tp_ticks is None)
        assert (p.sl_price is None) == (self.recorder.sl_ticks is None)

    @invariant()
    def excursions_and_unrealized_extremes_keep_their_signs(self):
        for p in [*self.closed, *([self.position] if self.position else [])]:
            assert p.max_favorable >= 0 and p.max_adverse >= 0
            assert p.worst_unrealized_pnl <= 0 <= p.best_unrealized_pnl

    @invariant()
    def closed_positions_are_flat_with_an_exit(self):
        for p in self.closed:
            assert (
                p.status == "closed"
                and p.exit_price is not None
                and p.exit_reason in ("signal", "reverse", "tp", "sl")
            )


RecorderMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
test_recorder_rules_as_a_state_machine = RecorderMachine.TestCase
