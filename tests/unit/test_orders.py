"""New order intents and their client order ids; the drain job's hand-off to the executor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from libs.common import orders
from libs.common.storage.models import OrderIntent


def _entry(**fields: Any) -> OrderIntent:
    base: dict[str, Any] = dict(
        user_id=7,
        subaccount_id=3,
        source="manual",
        kind="entry",
        side="buy",
        symbol="MNQ",
        ticker="MNQ1!",
        quantity=Decimal(1),
        priority="entry",
    )
    return orders.new_intent(**{**base, **fields})


def test_the_client_order_id_is_jt_and_the_intent_ids_first_24_hex_digits() -> None:
    intent_id = uuid.UUID("0123456789abcdef0123456789abcdef")
    assert orders.client_order_id(intent_id) == "jt-0123456789abcdef01234567"


def test_a_new_intent_is_queued_with_its_own_id_and_the_id_derived_from_it() -> None:
    row = _entry(tp_price=Decimal("25650.25"), signal_id=None)
    assert isinstance(row.id, uuid.UUID)
    assert row.cl_ord_id == f"jt-{row.id.hex[:24]}"
    assert (row.status, row.order_type, row.tp_price) == ("queued", "market", Decimal("25650.25"))
    assert (row.user_id, row.subaccount_id, row.trader_id) == (7, 3, None)


def test_every_intent_gets_a_different_client_order_id() -> None:
    rows = [_entry() for _ in range(2_000)]
    assert len({r.id for r in rows}) == len({r.cl_ord_id for r in rows}) == len(rows)
    assert all(len(r.cl_ord_id) == 27 for r in rows)  # fits Tradovate's clOrdId and the column


@pytest.fixture
def no_drain_handler() -> Iterator[None]:
    saved = orders._drain_handler
    orders._drain_handler = None
    yield
    orders._drain_handler = saved


@pytest.mark.usefixtures("no_drain_handler")
def test_a_drain_job_without_an_executor_in_the_process_says_so() -> None:
    with pytest.raises(RuntimeError, match="no executor is set up in this process"):
        orders.drain_subaccount(5)


@pytest.mark.usefixtures("no_drain_handler")
def test_a_drain_job_runs_the_registered_handler() -> None:
    drained: list[int] = []

    def drain(subaccount_id: int) -> int:
        drained.append(subaccount_id)
        return 2

    orders.register_drain(drain)
    assert orders.drain_subaccount(5) == 2
    assert drained == [5]
