"""The simulated order book (tradovate.md §5.3–5.9): order commands filled against one settable
price per contract. Plain state: no HTTP, no lock (the server holds one), time from `clock`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.instruments import contract_spec
from simulators.tradovate import broker_ledger, broker_strategies
from simulators.tradovate.broker_entities import (
    JSON,
    LIVE,
    ORDER_TYPES,
    Account,
    Order,
    OrderInvalid,
    OrderRefused,
    OrderSpec,
    Position,
    command_report_json,
    execution_report_json,
    version_json,
)
from simulators.tradovate.contracts import Contract, ContractCatalogue

# (entityType, eventType, entity JSON, accountId): what the account socket turns into `props`.
Listener = Callable[[str, str, JSON, int], None]


class Book:
    """Every account of one simulated environment and what was traded in it."""

    def __init__(self, catalogue: ContractCatalogue, clock: Callable[[], float]) -> None:
        self.catalogue = catalogue
        self.clock = clock
        self._ids = itertools.count(296_445_350_001)  # int64-sized, as real ids are (§4)
        self._account_ids = itertools.count(7_654_321)
        self.accounts: dict[int, Account] = {}
        self.orders: dict[int, Order] = {}
        self.versions: dict[int, JSON] = {}
        self.commands: dict[int, JSON] = {}
        self.fills: dict[int, JSON] = {}
        self.command_reports: dict[int, JSON] = {}
        self.execution_reports: dict[int, JSON] = {}
        self.fill_pairs: dict[int, JSON] = {}
        self.cash: dict[int, broker_ledger.CashBalance] = {}  # account id → its USD balance
        self.lots: dict[tuple[int, int], list[broker_ledger.Lot]] = {}  # what is still open
        self.positions: dict[tuple[int, int], Position] = {}
        self.strategies: dict[int, broker_strategies.Strategy] = {}
        self.links: dict[int, JSON] = {}  # OrderStrategyLink rows (§4: OrderStrategy → links)
        self.prices: dict[int, Decimal] = {}
        self.forced: list[tuple[str, str]] = []  # refusals for the next commands (reject_next)
        self.listeners: list[Listener] = []  # called on every entity change, under the sim's lock

    def notify(self, entity_type: str, event_type: str, entity: JSON, account_id: int) -> None:
        """Tell the listeners (the account socket) that an entity changed (§6.4 `props`)."""
        for listener in list(self.listeners):
            listener(entity_type, event_type, entity, account_id)

    # -- set-up and hooks ------------------------------------------------------------------------

    def add_account(self, user: str, user_id: int, name: str | None = None) -> Account:
        account_id = next(self._account_ids)
        account = Account(
            account_id, name or f"DEMO{account_id - 6_419_000}", user, user_id, self._stamp()
        )
        self.accounts[account.id] = account
        self.cash[account.id] = broker_ledger.CashBalance(
            next(self._ids), account.id, account.timestamp, self._today()
        )
        self.notify("account", "Created", account.json(), account.id)
        self.notify("accountRiskStatus", "Created", account.risk_json(), account.id)
        self.notify("cashBalance", "Created", self.cash[account.id].json(), account.id)
        return account

    def next_id(self) -> int:
        return next(self._ids)

    def balance(self, account_id: int) -> broker_ledger.CashBalance:
        """The account's cash balance, moved on to the current trade date (broker_ledger.py)."""
        balance = self.cash[account_id]
        balance.roll(self._today())
        return balance

    def account_named(self, name: str) -> Account:
        return next(a for a in self.accounts.values() if a.name == name)

    def set_price(self, name: str, price: Decimal) -> None:
        contract = self.catalogue.find(name)
        if contract is None:
            raise KeyError(f"{name} is not in the catalogue")
        self.prices[contract.id] = price
        self._match(contract.id)

    # -- who sees what ---------------------------------------------------------------------------

    def accounts_of(self, user: str) -> list[Account]:
        return [a for a in self.accounts.values() if a.user == user]

    def resolve_account(self, user: str, account_id: int | None, spec: str | None) -> Account:
        if account_id is None and not spec:
            raise OrderInvalid("accountId", "", "accountId or accountSpec is required")
        for account in self.accounts_of(user):
            chosen = account.id == account_id if account_id is not None else account.name == spec
            # accountSpec may also be the username (§5.3); anything else must name this account.
            if chosen and (not spec or spec in (account.name, user)):
                return account
        raise OrderRefused("UnknownReason", "Access is denied")

    def owned_order(self, user: str, order_id: object) -> Order:
        order = self.orders.get(order_id) if isinstance(order_id, int) else None
        if order is None or self.accounts[order.account_id].user != user:
            raise OrderRefused("UnknownReason", "Access is denied")
        return order

    def rows(self, entity: str, user: str, only: frozenset[int] | None = None) -> Iterator[JSON]:
        """One entity type as the user may list it (§4 `/{entity}/list`), of the accounts in
        `only` when given."""
        mine = {a.id for a in self.accounts_of(user) if only is None or a.id in only}
        orders = [o for o in self.orders.values() if o.account_id in mine]
        order_ids = {o.id for o in orders}
        command_ids = {c["id"] for c in self.commands.values() if c["orderId"] in order_ids}
        if entity in ("account", "accountriskstatus"):
            for account in self.accounts_of(user):
                if account.id in mine:
                    yield account.json() if entity == "account" else account.risk_json()
        elif entity == "order":
            yield from (o.json() for o in orders)
        elif entity == "position":
            yield from (p.json() for p in self.positions.values() if p.account_id in mine)
        elif entity in ("orderversion", "command", "fill", "orderstrategylink"):
            table = {
                "orderversion": self.versions,
                "command": self.commands,
                "fill": self.fills,
                "orderstrategylink": self.links,
            }
            yield from (row for row in table[entity].values() if row["orderId"] in order_ids)
        elif entity == "orderstrategy":
            yield from (s.json() for s in self.strategies.values() if s.account_id in mine)
        elif entity in ("commandreport", "executionreport"):
            reports = self.command_reports if entity == "commandreport" else self.execution_reports
            yield from (row for row in reports.values() if row["commandId"] in command_ids)
        elif entity == "cashbalance":
            yield from (self.balance(a).json() for a in sorted(self.cash) if a in mine)
        elif entity == "fillpair":
            positions = {p.id for p in self.positions.values() if p.account_id in mine}
            yield from (row for row in self.fill_pairs.values() if row["positionId"] in positions)

    # -- commands (§5.3–5.7) ---------------------------------------------------------------------

    def place(self, account: Account, symbol: str, spec: OrderSpec, automated: bool) -> Order:
        contract = self._checked(account, symbol, spec)
        order = self._new_order(account, contract.id, spec, automated)
        self._match(contract.id)
        return order

    def place_oso(
        self,
        account: Account,
        symbol: str,
        entry: OrderSpec,
        brackets: list[OrderSpec],
        automated: bool,
    ) -> list[Order]:
        contract = self._checked(account, symbol, entry)
        brackets = [replace(b, qty=entry.qty) for b in brackets]  # brackets take the entry's size
        for bracket in brackets:
            self._validate(bracket, contract)
        order = self._new_order(account, contract.id, entry, automated)
        kids = [
            self._new_order(account, contract.id, b, automated, "Suspended", order.id)
            for b in brackets
        ]
        if len(kids) == 2:
            kids[0].oco_id, kids[1].oco_id = kids[1].id, kids[0].id
        self._match(contract.id)
        return [order, *kids]

    def place_oco(
        self, account: Account, symbol: str, first: OrderSpec, other: OrderSpec, automated: bool
    ) -> tuple[Order, Order]:
        contract = self._checked(account, symbol, first)
        other = replace(other, qty=first.qty)
        self._validate(other, contract)
        self._risk(account, contract.id, other)
        a = self._new_order(account, contract.id, first, automated)
        b = self._new_order(account, contract.id, other, automated)
        a.oco_id, b.oco_id = b.id, a.id
        self._match(contract.id)
        return a, b

    def modify(
        self,
        order: Order,
        qty: int,
        order_type: str,
        price: Decimal | None,
        stop_price: Decimal | None,
        time_in_force: str | None,
        text: str | None = None,
    ) -> int:
        self._take_forced()
        if order.status not in LIVE:
            raise OrderRefused("TooLate", f"The order is {order.status}")
        spec = replace(
            order.spec,
            qty=qty,
            order_type=order_type,
            price=price,
            stop_price=stop_price,
            time_in_force=time_in_force or order.spec.time_in_force,
            # Sim choice: a modify without `text` keeps the order's (unverified either way).
            text=text if text is not None else order.spec.text,
        )
        self._validate(spec, self.catalogue.contracts[order.contract_id])
        order.spec, order.rested = spec, False
        command = self._command(order, "Modify", None, True)
        self.versions[command] = version_json(command, order.id, spec)
        self.notify("orderVersion", "Created", self.versions[command], order.account_id)
        self._reports(order, "Replaced")
        self._match(order.contract_id)
        return command

    def cancel(self, order: Order) -> int:
        self._take_forced()
        if order.status not in LIVE:
            raise OrderRefused("TooLate", f"The order is {order.status}")
        return self._cancel(order)

    def liquidate(self, account: Account, contract_id: object, admin: bool) -> Order:
        self._take_forced()
        if admin:
            raise OrderRefused("Unauthorized", "Only administrators may liquidate as admin")
        contract = self.catalogue.item(contract_id) if isinstance(contract_id, int) else None
        if contract is None:
            raise OrderRefused("InvalidContract", f"Unknown contract {contract_id}")
        position = self.positions.get((account.id, contract.id))
        net = position.net_pos if position else 0
        if net and contract.id not in self.prices:
            raise OrderRefused("NoQuote", f"No quote for {contract.name}")
        for order in list(self.orders.values()):
            mine = (order.account_id, order.contract_id) == (account.id, contract.id)
            if mine and order.status in LIVE:
                self._cancel(order)
        if net == 0:
            # Sim choice: nothing to close is a refusal, after the working orders are cancelled.
            raise OrderRefused("UnknownReason", f"No position in {contract.name} to liquidate")
        spec = OrderSpec("Sell" if net > 0 else "Buy", abs(net), "Market")
        order = self._new_order(account, contract.id, spec, True)
        self._match(contract.id)
        return order

    # -- checks ----------------------------------------------------------------------------------

    def _checked(self, account: Account, symbol: str, spec: OrderSpec) -> Contract:
        self._take_forced()
        contract = self.catalogue.find(symbol.upper()) if isinstance(symbol, str) else None
        if contract is None:  # what an unknown symbol produced on demo (§5.3, reported)
            raise OrderRefused("UnknownReason", "Access is denied")
        self._validate(spec, contract)
        self._risk(account, contract.id, spec)
        return contract

    def _take_forced(self) -> None:
        if self.forced:
            raise OrderRefused(*self.forced.pop(0))

    def _validate(self, spec: OrderSpec, contract: Contract) -> None:
        if spec.action not in ("Buy", "Sell"):
            raise OrderInvalid("action", spec.action, "action must be Buy or Sell")
        if not isinstance(spec.qty, int) or isinstance(spec.qty, bool) or spec.qty <= 0:
            raise OrderInvalid("orderQty", spec.qty, "orderQty must be a positive integer")
        if spec.text is not None and (not isinstance(spec.text, str) or len(spec.text) > 64):
            raise OrderInvalid("text", spec.text, "text must be a string of at most 64 characters")
        if spec.order_type not in ORDER_TYPES:
            raise OrderRefused("Unsupported", f"orderType {spec.order_type} is not simulated")
        tick = contract_spec(contract.root).tick_size
        prices = (
            ("price", spec.price, ("Limit", "StopLimit")),
            ("stopPrice", spec.stop_price, ("Stop", "StopLimit")),
        )
        for field, value, needed_by in prices:
            if spec.order_type in needed_by and value is None:
                raise OrderRefused("InvalidPrice", f"{spec.order_type} needs {field}")
            if value is not None and value % tick != 0:
                raise OrderRefused("InvalidPrice", f"{field} {value} is not a multiple of {tick}")

    def _risk(self, account: Account, contract_id: int, spec: OrderSpec) -> None:
        if account.admin_action == "LockTradingImmediately":
            raise OrderRefused("TradingLocked", "Trading is locked for this account")
        if account.liquidation_only:
            position = self.positions.get((account.id, contract_id))
            net = position.net_pos if position else 0
            reduces = net != 0 and (spec.action == "Sell") == (net > 0) and spec.qty <= abs(net)
            if not reduces:
                raise OrderRefused("LiquidationOnly", "The account is in liquidation-only mode")
        if spec.order_type == "Market" and contract_id not in self.prices:
            raise OrderRefused("NoQuote", "No quote for this contract")

    # -- the book --------------------------------------------------------------------------------

    def _new_order(
        self,
        account: Account,
        contract_id: int,
        spec: OrderSpec,
        automated: bool,
        status: str = "Working",
        parent_id: int | None = None,
    ) -> Order:
        order = Order(
            next(self._ids), account.id, contract_id, spec, status, self._stamp(), parent_id
        )
        self.orders[order.id] = order
        command = self._command(order, "New", spec.cl_ord_id, automated)
        self.versions[command] = version_json(command, order.id, spec)  # version id = command id
        self.notify("order", "Created", order.json(), account.id)  # after its command (§5.9)
        self.notify("orderVersion", "Created", self.versions[command], account.id)
        self._reports(order, "New")
        return order

    def _command(self, order: Order, kind: str, cl_ord_id: str | None, automated: bool) -> int:
        command_id = next(self._ids)
        row = {
            "id": command_id,
            "orderId": order.id,
            "timestamp": self._stamp(),
            "commandType": kind,
            "commandStatus": "AtExecution",
            "isAutomated": automated,
        }
        if cl_ord_id:
            row["clOrdId"] = cl_ord_id
        self.commands[command_id] = row
        order.command_id = command_id
        self.notify("command", "Created", row, order.account_id)
        return command_id

    def _reports(self, order: Order, exec_type: str) -> None:
        """The CommandReport of the order's latest command and its ExecutionReport (§5.9)."""
        report = command_report_json(next(self._ids), order.command_id, self._stamp(), order)
        self.command_reports[report["id"]] = report
        self.notify("commandReport", "Created", report, order.account_id)
        self._execution(order, exec_type)

    def _execution(
        self, order: Order, exec_type: str, fill: tuple[int, Decimal] | None = None
    ) -> None:
        row = execution_report_json(
            next(self._ids), order, exec_type, self._stamp(), self._trade_date(), fill
        )
        self.execution_reports[row["id"]] = row
        self.notify("executionReport", "Created", row, order.account_id)

    def _cancel(self, order: Order) -> int:
        order.status = "Canceled"
        self.notify("order", "Updated", order.json(), order.account_id)
        for child in self.orders.values():
            if child.parent_id == order.id and child.status == "Suspended":
                child.status = "Canceled"
                self.notify("order", "Updated", child.json(), child.account_id)
                self._execution(child, "Canceled")  # under its New command: no cancel was sent
        command = self._command(order, "Cancel", None, True)
        self._reports(order, "Canceled")
        self._strategy_progress(order)
        return command

    def _match(self, contract_id: int) -> None:
        """Fill what the current price reaches, until nothing more does (fills wake brackets)."""
        while any(self._try_fill(o) for o in self._working(contract_id)):
            pass
        for order in self._working(contract_id):
            order.rested = True

    def _working(self, contract_id: int) -> list[Order]:
        return [
            o
            for o in self.orders.values()
            if o.contract_id == contract_id and o.status == "Working"
        ]

    def _try_fill(self, order: Order) -> bool:
        price = self.prices.get(order.contract_id)
        spec = order.spec
        if price is None or order.status != "Working":
            return False
        buy = spec.action == "Buy"
        if spec.order_type in ("Stop", "StopLimit") and not order.triggered:
            assert spec.stop_price is not None
            if not (price >= spec.stop_price if buy else price <= spec.stop_price):
                return False
            order.triggered, order.rested = True, False
        if spec.order_type in ("Market", "Stop"):
            return self._fill(order, price)
        assert spec.price is not None
        if price <= spec.price if buy else price >= spec.price:
            # A marketable limit fills at the market; a resting one the price crossed, at its own.
            return self._fill(order, spec.price if order.rested else price)
        return False

    def _fill(self, order: Order, price: Decimal) -> bool:
        stamp, spec = self._stamp(), order.spec
        order.status = "Filled"
        self._execution(order, "Trade", (spec.qty, price))
        fill_id = next(self._ids)
        self.fills[fill_id] = {
            "id": fill_id,
            "orderId": order.id,
            "contractId": order.contract_id,
            "timestamp": stamp,
            "tradeDate": self._trade_date(),
            "action": spec.action,
            "qty": spec.qty,
            "price": price,
            "active": True,
            "finallyPaired": False,
        }
        self.notify("fill", "Created", self.fills[fill_id], order.account_id)
        self.notify("order", "Updated", order.json(), order.account_id)
        key = (order.account_id, order.contract_id)
        created = key not in self.positions
        if created:
            self.positions[key] = Position(next(self._ids), *key, stamp, self._trade_date())
        self.positions[key].apply(spec.action, spec.qty, price, stamp)
        self.notify(
            "position",
            "Created" if created else "Updated",
            self.positions[key].json(),
            order.account_id,
        )
        self._book_fill(order, fill_id, price, stamp)
        for child in self.orders.values():
            if child.parent_id == order.id and child.status == "Suspended":
                child.status = "Working"
                self.notify("order", "Updated", child.json(), child.account_id)
        sibling = self.orders.get(order.oco_id or 0)
        if sibling is not None and sibling.status in LIVE:
            self._cancel(sibling)
        strategy = self.strategies.get(order.strategy_id or 0)
        if strategy is not None and order.parent_id is None:
            broker_strategies.entry_filled(self, strategy, order, price)
        self._strategy_progress(order)
        return True

    def _book_fill(self, order: Order, fill_id: int, price: Decimal, stamp: str) -> None:
        """FillPairs for what the fill closed, and the cash balance they changed (§5.9)."""
        key = (order.account_id, order.contract_id)
        fill = broker_ledger.Lot(fill_id, order.spec.action, order.spec.qty, price)
        root = self.catalogue.contracts[order.contract_id].root
        pairings = broker_ledger.pair_fill(
            self.lots.setdefault(key, []), fill, contract_spec(root).point_value
        )
        if not pairings:
            return
        position_id = self.positions[key].id
        for pairing in pairings:
            row = broker_ledger.fill_pair_json(next(self._ids), position_id, pairing)
            self.fill_pairs[row["id"]] = row
            self.notify("fillPair", "Created", row, order.account_id)
        balance = self.balance(order.account_id)
        balance.book(sum((p.realized for p in pairings), Decimal(0)), stamp)
        self.notify("cashBalance", "Updated", balance.json(), order.account_id)

    def charge(self, account_id: int, amount: Decimal) -> None:
        """A test's charge: off the cash and the trade date's realized PnL (broker.py `charge`)."""
        balance = self.balance(account_id)
        balance.book(-amount, self._stamp())
        self.notify("cashBalance", "Updated", balance.json(), account_id)

    def open_pnl(self, account_id: int) -> Decimal:
        """The account's open PnL in USD at the current prices (§5.2's formula)."""
        total = Decimal(0)
        for (acct, contract_id), position in self.positions.items():
            price = self.prices.get(contract_id)
            if acct != account_id or not position.net_pos or price is None:
                continue
            root = self.catalogue.contracts[contract_id].root
            net_price = position.net_price or price
            total += (price - net_price) * position.net_pos * contract_spec(root).point_value
        return total

    def _strategy_progress(self, order: Order) -> None:
        strategy = self.strategies.get(order.strategy_id or 0)
        if strategy is not None:
            broker_strategies.progress(self, strategy)

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def _today(self) -> date:
        """The CME trade date (futures.md §4.2): from 17:00 ET on it is the next business day's."""
        return trade_date(datetime.fromtimestamp(self.clock(), UTC))

    def _trade_date(self) -> JSON:
        today = self._today()
        return {"year": today.year, "month": today.month, "day": today.day}
