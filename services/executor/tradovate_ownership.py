"""Whose a Tradovate protective order is (docs/contract.md §4b): traders may share a subaccount, so
every protective order we place carries its owner in `text` (`jt:t<trader id>`, `jt:manual`);
the targets and stops of an order strategy, which cannot carry text, belong to the owner of the
intent that started the strategy (its clOrdId is the strategy's uuid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libs.common.tradovate import client as tradovate
from services.executor.tradovate_calls import Caller

LIVE = ("Working", "Suspended")
MANUAL = "jt:manual"  # the owner tag of protective orders of no trader (manual orders, copies)

# The owner tags of order strategies, by their uuids (the clOrdIds of the intents that started
# them); a uuid that is not ours is left out.
StrategyOwners = Callable[[list[str]], dict[str, str]]


def owner_tag(trader_id: int | None) -> str:
    """The `text` every protective order we place carries: whose it is (§4b)."""
    return MANUAL if trader_id is None else f"jt:t{trader_id}"


@dataclass(frozen=True)
class Protective:
    """A live order on the contract that may protect a position, its newest version and its
    owner (an owner tag; None when it is nobody's we know: placed elsewhere or before tags)."""

    order: dict[str, Any]
    version: dict[str, Any]
    owner: str | None

    @property
    def id(self) -> int:
        return int(self.order["id"])


def protective_orders(
    client: tradovate.TradovateClient,
    call: Caller,
    account_id: int,
    contract_id: int,
    owners: StrategyOwners,
) -> list[Protective]:
    """The contract's live orders but the entries of order strategies, each with its owner: the
    `text` we gave it, or for a strategy's target or stop (which cannot carry text) the owner of
    the intent that started the strategy, whose clOrdId is the strategy's uuid."""
    live = [
        o
        for o in call(client.order_deps, account_id, ticket=False)
        if o.get("contractId") == contract_id and o.get("ordStatus") in LIVE
    ]
    if not live:
        return []
    ids = [int(o["id"]) for o in live]
    versions = latest_versions(call(client.order_version_ldeps, ids, ticket=False))
    untagged = any(not versions.get(i, {}).get("text") for i in ids)
    strategy_owned, entries = (
        strategy_orders(client, call, account_id, owners) if untagged else ({}, set())
    )
    found = []
    for order in live:
        version = versions.get(order["id"], {})
        if int(order["id"]) in entries:
            continue
        owner = version.get("text") or strategy_owned.get(int(order["id"]))
        found.append(Protective(order, version, owner))
    return found


def strategy_orders(
    client: tradovate.TradovateClient, call: Caller, account_id: int, owners: StrategyOwners
) -> tuple[dict[int, str | None], set[int]]:
    """The targets and stops of the account's active order strategies → their owner tag, and the
    strategies' entry orders (not protective orders)."""
    active = {
        int(s["id"]): str(s.get("uuid") or "")
        for s in call(client.order_strategy_deps, account_id, ticket=False)
        if s.get("status") == "ActiveStrategy"
    }
    if not active:
        return {}, set()
    tags = owners([u for u in active.values() if u])
    owned: dict[int, str | None] = {}
    entries: set[int] = set()
    for link in call(client.order_strategy_link_ldeps, list(active), ticket=False):
        if not link.get("orderId") or int(link.get("orderStrategyId", 0)) not in active:
            continue
        if link.get("label") == "Entry":
            entries.add(int(link["orderId"]))
        else:
            owned[int(link["orderId"])] = tags.get(active[int(link["orderStrategyId"])])
    return owned, entries


def owned_by(order: Protective, trader_id: int | None) -> bool:
    """A trader's own order; a ticket of no trader (manual, a copy) owns those of no trader."""
    return order.owner == owner_tag(trader_id) or (trader_id is None and order.owner is None)


def latest_versions(versions: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """order id → its newest OrderVersion (type, qty, prices and time in force live there)."""
    latest: dict[Any, dict[str, Any]] = {}
    for version in sorted(versions, key=lambda v: v["id"]):
        latest[version["orderId"]] = version
    return latest
