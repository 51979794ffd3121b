"""Expiries, first notice days, the front contract and ticker resolution (futures.md §2, §3, §5)."""

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.futures.exchange_calendar import add_business_days
from libs.common.futures.instruments import CONTRACTS
from libs.common.futures.rolls import (
    EQUITY_TRADINGVIEW_RULE,
    ROLL_RULES,
    ContractError,
    ExpiryRule,
    RollRule,
    can_open,
    contract_year,
    dated_name,
    first_notice_day,
    front_contract,
    last_trading_day,
    resolve_ticker,
    switch_date,
)

EQUITY = ["ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K"]
D = date.fromisoformat


def split(name: str) -> tuple[str, str, int]:
    """`MNQZ6` → ("MNQ", "Z", 6): root, month code, year digit."""
    return name[:-2], name[-2], int(name[-1])


# -- §2.2 last trading days and first notice days -----------------------------------------------

EQUITY_LTD = [
    ("Z", 2025, "2025-12-19"),
    ("H", 2026, "2026-03-20"),
    ("M", 2026, "2026-06-18"),  # Juneteenth on the 3rd Friday → Thursday
    ("U", 2026, "2026-09-18"),
    ("Z", 2026, "2026-12-18"),
    ("H", 2027, "2027-03-19"),
    ("M", 2027, "2027-06-17"),  # Juneteenth observed on the 3rd Friday → Thursday
    ("U", 2027, "2027-09-17"),
    ("Z", 2027, "2027-12-17"),
]


@pytest.mark.parametrize("root", EQUITY)
@pytest.mark.parametrize(("month", "year", "ltd"), EQUITY_LTD)
def test_equity_index_expires_on_the_third_friday_or_the_business_day_before(
    root, month, year, ltd
):
    assert last_trading_day(root, month, year) == D(ltd)


CRUDE_LTD = [  # contract, CL LTD, MCL LTD
    ("Z", 2025, "2025-11-20", "2025-11-19"),
    ("F", 2026, "2025-12-19", "2025-12-18"),
    ("G", 2026, "2026-01-20", "2026-01-16"),
    ("H", 2026, "2026-02-20", "2026-02-19"),
    ("J", 2026, "2026-03-20", "2026-03-19"),
    ("K", 2026, "2026-04-21", "2026-04-20"),
    ("M", 2026, "2026-05-19", "2026-05-18"),
    ("N", 2026, "2026-06-22", "2026-06-18"),
    ("Q", 2026, "2026-07-21", "2026-07-20"),
    ("U", 2026, "2026-08-20", "2026-08-19"),
    ("V", 2026, "2026-09-22", "2026-09-21"),
    ("X", 2026, "2026-10-20", "2026-10-19"),
    ("Z", 2026, "2026-11-20", "2026-11-19"),
    ("F", 2027, "2026-12-21", "2026-12-18"),
    ("G", 2027, "2027-01-20", "2027-01-19"),
    ("H", 2027, "2027-02-22", "2027-02-19"),
]


@pytest.mark.parametrize(("month", "year", "cl", "mcl"), CRUDE_LTD)
def test_crude_expires_before_the_25th_of_the_prior_month_and_micro_crude_a_day_earlier(
    month, year, cl, mcl
):
    assert last_trading_day("CL", month, year) == D(cl)
    assert last_trading_day("MCL", month, year) == D(mcl)
    assert first_notice_day("CL", month, year) is None
    assert first_notice_day("MCL", month, year) is None


OTHERS = [  # roots, contract, LTD, FND
    (["GC", "MGC"], "Z", 2026, "2026-12-29", "2026-11-30"),
    (["GC", "MGC"], "G", 2027, "2027-02-24", "2027-01-29"),
    (["SI", "HG", "SIL"], "H", 2026, "2026-03-27", "2026-02-27"),
    (["SI", "HG", "SIL"], "Z", 2026, "2026-12-29", "2026-11-30"),
    (["NG"], "Z", 2026, "2026-11-25", None),
    (["NG"], "F", 2027, "2026-12-29", None),
    (["ZB", "ZN"], "Z", 2026, "2026-12-21", "2026-11-30"),
    (["ZF", "ZT"], "Z", 2026, "2026-12-31", "2026-11-30"),
    (["6E", "6J", "6B", "M6E"], "Z", 2026, "2026-12-14", None),
    (["6E", "6J", "6B", "M6E"], "H", 2027, "2027-03-15", None),
]


@pytest.mark.parametrize(
    ("root", "month", "year", "ltd", "fnd"),
    [(root, *rest) for roots, *rest in OTHERS for root in roots],
)
def test_metals_gas_treasuries_and_fx_expire_and_give_notice_per_their_rules(
    root, month, year, ltd, fnd
):
    assert last_trading_day(root, month, year) == D(ltd)
    assert first_notice_day(root, month, year) == (D(fnd) if fnd else None)


def test_equity_index_has_no_first_notice_day():
    assert first_notice_day("MNQ", "Z", 2026) is None


def test_unknown_root_or_month_code_is_a_contract_error():
    with pytest.raises(ContractError, match="AAPL"):
        last_trading_day("AAPL", "Z", 2026)
    with pytest.raises(ContractError, match="month code"):
        last_trading_day("MNQ", "I", 2026)


# -- §5.2 switch dates via front_contract -------------------------------------------------------

SWITCHES = [  # roots, trade date of the switch, front the business day before, front from then
    (["CL", "MCL"], "2026-11-18", "Z6", "F7"),
    (["CL", "MCL"], "2026-12-17", "F7", "G7"),
    (["GC", "MGC"], "2026-11-27", "Z6", "G7"),
    (["SI", "SIL", "HG"], "2026-11-27", "Z6", "H7"),
    (EQUITY, "2026-12-10", "Z6", "H7"),
    (["NG"], "2026-11-25", "Z6", "F7"),  # NG switches on the LTD itself
]


@pytest.mark.parametrize(
    ("root", "day", "before", "after"),
    [(root, *rest) for roots, *rest in SWITCHES for root in roots],
)
def test_continuous_front_switches_on_the_computed_trade_date(root, day, before, after):
    switch = D(day)
    assert front_contract(root, add_business_days(switch, -1)) == f"{root}{before}"
    assert front_contract(root, switch) == f"{root}{after}"


def test_micro_crude_switches_on_the_same_trade_date_as_crude():
    for month, year, *_ in CRUDE_LTD:
        assert switch_date("MCL", month, year) == switch_date("CL", month, year)


@pytest.mark.parametrize(
    ("month", "year", "roll"),
    [("Z", 2025, "2025-12-11"), ("H", 2026, "2026-03-12"), ("Z", 2026, "2026-12-10")],
)
def test_equity_index_rolls_on_the_cme_roll_date_eight_days_before_expiry(month, year, roll):
    for root in EQUITY:
        assert switch_date(root, month, year) == D(roll)


def test_equity_roll_before_a_thursday_expiry_is_the_wednesday_eight_days_earlier():
    # Unverified (docs/outside/futures.md §5.2, §7); this pins the literal reading the module chose.
    assert switch_date("ES", "M", 2026) == D("2026-06-10")
    assert switch_date("ES", "M", 2027) == D("2027-06-09")


def test_tradingview_equity_override_switches_three_business_days_before_expiry():
    tv = {"MNQ": EQUITY_TRADINGVIEW_RULE}
    assert front_contract("MNQ", D("2026-09-14"), overrides=tv) == "MNQU6"
    assert front_contract("MNQ", D("2026-09-15"), overrides=tv) == "MNQZ6"
    assert front_contract("MNQ", D("2026-12-15"), overrides=tv) == "MNQH7"
    assert front_contract("MES", D("2026-12-15"), overrides=tv) == "MESH7"  # not overridden


def test_gold_front_skips_october_as_in_tradingviews_own_example():
    # §5.1: GC1! went from GCQ2022 to GCZ2022 on 2022-07-28, skipping the listed V.
    assert front_contract("GC", D("2022-07-27")) == "GCQ2"
    assert front_contract("GC", D("2022-07-28")) == "GCZ2"


def test_front_contract_names_the_contract_with_a_one_digit_year():
    assert front_contract("MNQ", D("2026-11-24")) == "MNQZ6"


def test_higher_continuous_numbers_walk_the_front_cycle():
    assert front_contract("MNQ", D("2026-11-24"), n=2) == "MNQH7"
    assert front_contract("GC", D("2026-11-27"), n=2) == "GCJ7"
    assert front_contract("CL", D("2026-11-18"), n=3) == "CLH7"


def test_continuous_number_below_one_is_a_contract_error():
    with pytest.raises(ContractError):
        front_contract("MNQ", D("2026-11-24"), n=0)


# -- §3 / §5.3 ticker resolution ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ticker", "on", "name"),
    [
        ("MNQZ5", "2025-11-03", "MNQZ5"),
        ("MNQZ25", "2025-11-03", "MNQZ5"),
        ("MNQZ2025", "2025-11-03", "MNQZ5"),
        ("mnqz2025", "2025-11-03", "MNQZ5"),
        ("M2KH6", "2025-11-03", "M2KH6"),
        ("M6EZ5", "2025-11-03", "M6EZ5"),
        ("6EZ5", "2025-11-03", "6EZ5"),
        ("SILZ6", "2025-11-03", "SILZ6"),
        ("ZNZ5", "2025-11-03", "ZNZ5"),
        ("HGZ6", "2025-11-03", "HGZ6"),
        ("CLF7", "2026-12-21", "CLF7"),
        ("CME_MINI:MNQZ2026", "2026-11-24", "MNQZ6"),
    ],
)
def test_dated_ticker_resolves_to_exactly_that_contract(ticker, on, name):
    assert resolve_ticker(ticker, D(on)) == name


@pytest.mark.parametrize(
    ("ticker", "on", "name"),
    [
        ("MNQ1!", "2026-11-24", "MNQZ6"),
        ("CME_MINI:MNQ2!", "2026-11-24", "MNQH7"),
        ("NYMEX:CL1!", "2026-11-18", "CLF7"),
        ("COMEX_MINI:MGC1!", "2026-11-27", "MGCG7"),
        ("COMEX:SIL1!", "2026-11-27", "SILH7"),
        ("CME:M6E1!", "2026-11-27", "M6EZ6"),
        ("CBOT:ZN1!", "2026-11-27", "ZNH7"),
        ("M2K1!", "2026-12-10", "M2KH7"),
    ],
)
def test_continuous_ticker_resolves_to_the_front_by_trade_date(ticker, on, name):
    assert resolve_ticker(ticker, D(on)) == name


@pytest.mark.parametrize(
    ("ticker", "message"),
    [
        ("MNQ", "not a contract"),
        ("CME_MINI:MNQ", "not a contract"),
        ("AAPL", "no futures root"),
        ("FOO1!", "no futures root"),
        ("MNQZ123", "no futures root"),
        ("", "not a symbol"),
        ("MNQZ2024", "expired"),
        ("MNQZ24", "expired"),
    ],
)
def test_unresolvable_ticker_is_a_contract_error_with_a_plain_message(ticker, message):
    with pytest.raises(ContractError, match=message):
        resolve_ticker(ticker, D("2025-11-03"))


def test_one_digit_year_is_the_nearest_contract_not_yet_expired():
    assert contract_year("MNQ", "Z", "5", D("2025-12-19")) == 2025  # trades until 9:30 ET
    assert contract_year("MNQ", "Z", "5", D("2025-12-22")) == 2035
    assert contract_year("CL", "F", "7", D("2026-12-21")) == 2027
    assert contract_year("MNQ", "H", "0", D("2029-06-01")) == 2030


def test_dated_name_keeps_only_the_last_year_digit():
    assert dated_name("MNQ", "Z", 2026) == "MNQZ6"
    assert dated_name("CL", "F", 2030) == "CLF0"
    with pytest.raises(ContractError):
        dated_name("CL", "X6", 2030)


# -- §5.3 step 5: when a contract may be opened -------------------------------------------------


@pytest.mark.parametrize(
    ("root", "month", "year", "last_open", "first_closed"),
    [
        ("MNQ", "Z", 2026, "2026-12-17", "2026-12-18"),  # LTD: stops at 9:30 ET
        ("CL", "F", 2027, "2026-12-18", "2026-12-21"),  # LTD
        ("GC", "Z", 2026, "2026-11-27", "2026-11-30"),  # FND, a month before the LTD
        ("ZN", "Z", 2026, "2026-11-27", "2026-11-30"),  # FND
        ("6E", "Z", 2026, "2026-12-11", "2026-12-14"),  # LTD
    ],
)
def test_contract_cannot_be_opened_on_or_after_its_ltd_or_physical_fnd(
    root, month, year, last_open, first_closed
):
    assert can_open(root, month, year, D(last_open))
    assert not can_open(root, month, year, D(first_closed))
    assert not can_open(root, month, year, add_business_days(D(first_closed), 1))


# -- the rule table -----------------------------------------------------------------------------


def test_every_contract_table_root_has_a_roll_rule():
    assert set(ROLL_RULES) == set(CONTRACTS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cycle": "HMUZ", "expiry": ExpiryRule.CRUDE, "switch_anchor": "fnd"},
        {"cycle": "ZH", "expiry": ExpiryRule.CRUDE, "switch_anchor": "ltd"},
        {"cycle": "HMUZ", "expiry": ExpiryRule.CRUDE, "switch_anchor": "settle"},
        {"cycle": "", "expiry": ExpiryRule.CRUDE, "switch_anchor": "ltd"},
    ],
)
def test_roll_rule_refuses_an_impossible_shape(kwargs):
    with pytest.raises(ValueError):
        RollRule(switch_offset_business_days=1, **kwargs)


def test_roll_rule_refuses_a_switch_after_expiry():
    with pytest.raises(ValueError):
        RollRule("HMUZ", ExpiryRule.EQUITY_INDEX, "ltd", -1)


# -- properties ---------------------------------------------------------------------------------

roots = st.sampled_from(sorted(ROLL_RULES))
trade_dates = st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31))


def full_year(digit: int, on: date) -> int:
    # A front contract is never more than about a year out, and never a year before `on`'s.
    return next(y for y in range(on.year - 1, on.year + 9) if y % 10 == digit)


@settings(max_examples=300, deadline=None)
@given(root=roots, on=trade_dates)
def test_front_contract_is_still_trading_and_open_to_new_positions(root, on):
    _, month, digit = split(front_contract(root, on))
    year = full_year(digit, on)
    assert last_trading_day(root, month, year) > on
    assert can_open(root, month, year, on)
    assert month in ROLL_RULES[root].cycle


@settings(max_examples=300, deadline=None)
@given(root=roots, on=trade_dates)
def test_front_contract_moves_one_cycle_step_at_most_per_trade_date(root, on):
    today = front_contract(root, on)
    tomorrow = front_contract(root, add_business_days(on, 1))
    assert tomorrow in (today, front_contract(root, on, n=2))


@settings(max_examples=200, deadline=None)
@given(root=roots, on=trade_dates, n=st.integers(min_value=1, max_value=4))
def test_each_continuous_number_names_a_later_contract_than_the_one_before(root, on, n):
    def expiry(name: str) -> date:
        _, month, digit = split(name)
        return last_trading_day(root, month, full_year(digit, on))

    assert expiry(front_contract(root, on, n + 1)) > expiry(front_contract(root, on, n))
