"""Reconciliation on plain values: what the platform expects, the broker's net against it, grace
before an alert, and what the account socket's entities say about an order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from services.executor.account_sync import account_socket_url
from services.executor.reconcile import (
    BrokerMirror,
    Mismatch,
    MismatchAlerts,
    compare,
    expected_positions,
    mismatch_report,
)

D = Decimal


@dataclass
class Trader:
    recorder_id: int
    subaccount_id: int
    multiplier: Decimal = D(1)
    max_contracts: int | None = None
    enabled: bool = True
    disabled_until: date | None = None
    window_start: str | None = None
    window_end: str | None = None
    window_tz: str = "America/New_York"
    flat_since: datetime | None = None
    id: int = 0


@dataclass
class Recorded:
    recorder_id: int
    quantity: Decimal
    side: str = "long"
    symbol: str = "MNQ"
    status: str = "open"
    opened_at: datetime = datetime(2026, 11, 2, 15, tzinfo=UTC)
    id: int = 0


def test_positions_opened_before_a_flatten_are_not_expected_at_the_broker():
    flattened = datetime(2026, 11, 2, 16, tzinfo=UTC)
    before, after = (
        Recorded(1, D(1)),
        Recorded(2, D(2), opened_at=datetime(2026, 11, 2, 17, tzinfo=UTC)),
    )
    traders = [Trader(1, 10, flat_since=flattened), Trader(2, 10)]
    # trader 1 was flattened at its window's end; trader 2's subaccount by the risk desk, after
    # its position opened: neither holds those contracts any more
    assert expected_positions(traders, [before, after]) == {(10, "MNQ"): D(2)}
    assert (
        expected_positions(traders, [before, after], flattened_at={10: flattened.replace(hour=18)})
        == {}
    )


def test_expected_is_the_recorder_size_times_the_multiplier_rounded_half_up():
    traders = [Trader(1, 10, multiplier=D("1.5")), Trader(2, 11, multiplier=D("0.5"))]
    positions = [Recorded(1, D(1)), Recorded(2, D(1))]
    # 1.5 → 2 and 0.5 → 1: halves go up, as the engine sizes its orders.
    assert expected_positions(traders, positions) == {(10, "MNQ"): D(2), (11, "MNQ"): D(1)}


def test_expected_is_capped_by_max_contracts():
    traders = [Trader(1, 10, multiplier=D(3), max_contracts=4)]
    assert expected_positions(traders, [Recorded(1, D(2))]) == {(10, "MNQ"): D(4)}


def test_several_traders_on_one_subaccount_add_up_and_shorts_count_negative():
    traders = [Trader(1, 10), Trader(2, 10, multiplier=D(2)), Trader(3, 10)]
    positions = [Recorded(1, D(3)), Recorded(2, D(1), side="short"), Recorded(3, D(1), symbol="ES")]
    assert expected_positions(traders, positions) == {(10, "MNQ"): D(1), (10, "ES"): D(1)}


def test_disabled_paused_and_closed_expect_nothing():
    traders = [
        Trader(1, 10, enabled=False),
        Trader(2, 10, disabled_until=date(2026, 11, 4)),
        Trader(3, 10),
    ]
    positions = [Recorded(1, D(1)), Recorded(2, D(1)), Recorded(3, D(1), status="closed")]
    assert expected_positions(traders, positions, at=datetime(2026, 11, 3, 15, tzinfo=UTC)) == {}
    # From the pause's end date on, the trader counts again.
    on_again = datetime(2026, 11, 4, 15, tzinfo=UTC)
    assert expected_positions(traders, positions, at=on_again) == {(10, "MNQ"): D(1)}


def test_outside_its_trading_window_a_trader_expects_to_be_flat():
    traders = [
        Trader(1, 10, window_start="09:30", window_end="16:00"),
        Trader(2, 11, window_start="18:00", window_end="09:00"),
    ]  # over midnight
    positions = [Recorded(1, D(1)), Recorded(2, D(2), side="short")]
    at_noon_ny = datetime(2026, 11, 3, 17, tzinfo=UTC)  # 12:00 in New York
    assert expected_positions(traders, positions, at=at_noon_ny) == {(10, "MNQ"): D(1)}
    at_night_ny = datetime(2026, 11, 4, 3, tzinfo=UTC)  # 22:00 in New York
    assert expected_positions(traders, positions, at=at_night_ny) == {(11, "MNQ"): D(-2)}


def test_compare_folds_contract_names_into_roots_and_reports_both_directions():
    expected = {(10, "MNQ"): D(2), (10, "ES"): D(-1), (11, "MES"): D(1)}
    broker = {(10, "MNQZ6"): D(1), (10, "MNQH7"): D(1), (10, "ESZ6"): D(-2), (12, "NQZ6"): D(3)}
    assert compare(expected, broker) == [
        Mismatch(10, "ES", D(-1), D(-2)),
        Mismatch(11, "MES", D(1), D(0)),
        Mismatch(12, "NQ", D(0), D(3)),
    ]


def test_compare_finds_nothing_when_flat_rows_match_nothing_expected():
    assert compare({(10, "MNQ"): D(1)}, {(10, "MNQZ6"): D(1), (10, "ESZ6"): D(0)}) == []


def test_a_mismatch_alerts_only_after_the_grace_and_clears_when_gone():
    alerts = MismatchAlerts(grace_s=10)
    gap = Mismatch(10, "MNQ", D(1), D(0))
    first = alerts.observe([gap], now=100.0)
    assert first.alerted == () and first.pending == ((gap, 100.0),) and not first.changed
    assert alerts.next_due(now=101.0) == 110.0
    later = alerts.observe([gap], now=110.0)
    assert later.alerted == ((gap, 100.0),) and later.changed
    assert not alerts.observe([gap], now=115.0).changed  # still the same alert: nothing to tell
    cleared = alerts.observe([], now=116.0)
    assert cleared.alerted == () and cleared.changed


def test_a_fill_that_arrives_within_grace_never_alerts():
    alerts = MismatchAlerts(grace_s=10)
    alerts.observe([Mismatch(10, "MNQ", D(1), D(0))], now=0.0)
    state = alerts.observe([], now=3.0)
    assert state.alerted == () and state.pending == () and not state.changed
    assert alerts.next_due(now=3.0) is None


def test_the_report_gives_numbers_and_utc_times():
    alerts = MismatchAlerts(grace_s=0)
    state = alerts.observe([Mismatch(10, "MNQ", D(0), D("-1"))], now=5.0)
    report = mismatch_report(7, state, now=6.0, wall_minus_clock=1_800_000_000.0)
    assert report["account_id"] == 7 and report["checked_at"] == "2027-01-15T08:00:06Z"
    assert report["mismatches"] == [
        {
            "subaccount_id": 10,
            "symbol": "MNQ",
            "expected": 0,
            "actual": -1,
            "since": "2027-01-15T08:00:05Z",
        }
    ]


def test_a_filled_order_has_the_quantity_weighted_price_of_its_fills():
    mirror = BrokerMirror()
    mirror.apply(
        "order", "Created", {"id": 1, "accountId": 5, "contractId": 9, "ordStatus": "Working"}
    )
    assert mirror.outcome(1) is None
    mirror.apply("fill", "Created", {"id": 2, "orderId": 1, "qty": 1, "price": D("100.25")})
    mirror.apply("fill", "Created", {"id": 3, "orderId": 1, "qty": 3, "price": D("100.5")})
    mirror.apply(
        "order", "Updated", {"id": 1, "accountId": 5, "contractId": 9, "ordStatus": "Filled"}
    )
    assert mirror.outcome(1) == ("filled", D("100.4375"), None)


def test_a_risk_rejected_new_command_rejects_its_order_with_the_reason():
    mirror = BrokerMirror()
    mirror.apply(
        "command", "Created", {"id": 11, "orderId": 1, "commandType": "New", "clOrdId": "jt-1"}
    )
    assert mirror.apply(
        "commandReport",
        "Created",
        {
            "id": 12,
            "commandId": 11,
            "commandStatus": "RiskRejected",
            "rejectReason": "RiskCheck",
            "text": "Margin",
        },
    ) == ("order", 1)
    assert mirror.outcome(1) == ("rejected", None, "RiskCheck: Margin")
    assert mirror.cl_ord_ids == {1: "jt-1"}


def test_a_rejected_cancel_leaves_the_order_alone():
    mirror = BrokerMirror()
    mirror.apply("command", "Created", {"id": 11, "orderId": 1, "commandType": "Cancel"})
    mirror.apply(
        "commandReport",
        "Created",
        {"id": 12, "commandId": 11, "commandStatus": "ExecutionRejected"},
    )
    assert mirror.outcome(1) is None


def test_bracket_children_are_told_from_an_intents_own_order():
    mirror = BrokerMirror()
    mirror.apply(
        "command", "Created", {"id": 20, "orderId": 1, "commandType": "New", "clOrdId": "jt-1"}
    )
    mirror.apply("order", "Created", {"id": 1, "ordStatus": "Filled"})
    mirror.apply("order", "Created", {"id": 2, "parentId": 1, "ocoId": 3, "ordStatus": "Working"})
    mirror.apply("order", "Created", {"id": 4, "ocoId": 5, "ordStatus": "Working"})  # re-armed pair
    assert [mirror.is_bracket(i) for i in (1, 2, 4)] == [False, True, True]


def test_the_snapshot_loads_positions_and_contract_names():
    mirror = BrokerMirror()
    touched = mirror.load(
        {
            "users": [{"id": 1}],
            "contracts": [{"id": 9, "name": "MNQZ6"}],
            "positions": [{"id": 4, "accountId": 5, "contractId": 9, "netPos": -2}],
            "accountRiskStatuses": [{"id": 5, "adminAction": "Normal"}],
        }
    )
    assert mirror.positions == {(5, 9): D(-2)} and mirror.contracts == {9: "MNQZ6"}
    assert set(touched) == {("position", 4), ("risk", 5)}


def test_the_account_socket_url_is_derived_from_the_rest_base():
    assert (
        account_socket_url("https://demo.tradovateapi.com/v1")
        == "wss://demo.tradovateapi.com/v1/websocket"
    )
    assert account_socket_url("http://127.0.0.1:8770/v1/") == "ws://127.0.0.1:8770/v1/websocket"


def test_a_position_whose_entry_the_trader_skipped_is_not_expected():
    traders = [Trader(1, 10, id=7), Trader(1, 11, id=8)]  # one recorder on two subaccounts
    positions = [Recorded(1, D(1), id=42)]
    # the entry went out on subaccount 11 but was skipped on 10 (say, its account was locked)
    assert expected_positions(traders, positions, skipped={(7, 42)}) == {(11, "MNQ"): D(1)}
