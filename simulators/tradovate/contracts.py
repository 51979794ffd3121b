"""The simulated Tradovate contract catalogue (docs/outside/tradovate.md §5.2, §7) and its REST
routes.

Products, maturities and dated contracts with one-digit years; `ContractRestServer` serves
`/v1/contract/find|item|items|suggest`, `/v1/contractMaturity/item` and `/v1/product/find|item`.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.wrappers import Request, Response

from libs.common.futures.instruments import MONTH_CODES, contract_spec, parse_ticker
from simulators.local_servers import LocalHttpServer

Tokens = set[str] | Callable[[str], bool]  # the tokens the simulator accepts, or a test of one


def token_accepted(tokens: Tokens, token: str | None) -> bool:
    if not token:
        return False
    return tokens(token) if callable(tokens) else token in tokens


@dataclass(frozen=True)
class Product:
    id: int
    name: str  # the root, e.g. MNQ


@dataclass(frozen=True)
class Maturity:
    id: int
    product_id: int
    expiration: datetime  # minute precision, UTC


@dataclass(frozen=True)
class Contract:
    id: int
    name: str  # root + month code + one-digit year, e.g. MNQZ6
    maturity_id: int
    root: str


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


class ContractCatalogue:
    """Contracts by id and by name; ids are large, as real ones are (§4: int64)."""

    def __init__(self, first_id: int = 3_570_918) -> None:
        self._ids = itertools.count(first_id)
        self.products: dict[str, Product] = {}
        self.maturities: dict[int, Maturity] = {}
        self.contracts: dict[int, Contract] = {}
        self._by_name: dict[str, Contract] = {}

    @classmethod
    def standard(
        cls, on: date, roots: Iterable[str] = ("MNQ", "MES", "NQ", "ES"), count: int = 4
    ) -> ContractCatalogue:
        """The next `count` quarterly (HMUZ) contracts of each root, as listed on `on`."""
        catalogue = cls()
        for root in roots:
            year, month, listed = on.year, on.month, 0
            while listed < count:
                expiry = third_friday(year, month)
                if month % 3 == 0 and expiry >= on:
                    catalogue.add(f"{root}{MONTH_CODES[month - 1]}{year % 10}", expiry)
                    listed += 1
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return catalogue

    def add(self, name: str, expiration: date | None = None) -> Contract:
        """List a dated contract; without `expiration`, the month's third Friday in the 2020s."""
        ticker = parse_ticker(name)
        if ticker.month is None or ticker.year is None or len(ticker.year) != 1:
            raise ValueError(f"{name!r} is not a contract name like MNQZ6")
        if expiration is None:
            expiration = third_friday(2020 + int(ticker.year), MONTH_CODES.index(ticker.month) + 1)
        product = self.products.get(ticker.root)
        if product is None:
            product = self.products[ticker.root] = Product(next(self._ids), ticker.root)
        at = datetime(expiration.year, expiration.month, expiration.day, 13, 30, tzinfo=UTC)
        maturity = Maturity(next(self._ids), product.id, at)
        contract = Contract(next(self._ids), name.upper(), maturity.id, ticker.root)
        self.maturities[maturity.id] = maturity
        self.contracts[contract.id] = contract
        self._by_name[contract.name] = contract
        return contract

    def find(self, name: str) -> Contract | None:
        return self._by_name.get(name)

    def item(self, contract_id: int) -> Contract | None:
        return self.contracts.get(contract_id)

    def resolve(self, symbol: object) -> Contract | None:
        """An md subscription's `symbol`: a contract name or a contract id (§6.5)."""
        if isinstance(symbol, bool):
            return None
        if isinstance(symbol, int):
            return self.item(symbol)
        return self.find(symbol) if isinstance(symbol, str) else None

    def product_by_id(self, product_id: int) -> Product | None:
        return next((p for p in self.products.values() if p.id == product_id), None)

    def suggest(self, text: str, limit: int = 10) -> list[Contract]:
        text = text.upper()
        hits = [c for c in self.contracts.values() if c.name.startswith(text)]
        hits.sort(key=lambda c: (c.root != text, self.maturities[c.maturity_id].expiration))
        return hits[:limit]

    # -- JSON shapes (§5.2) ----------------------------------------------------------------------

    def contract_json(self, contract: Contract) -> dict[str, Any]:
        return {
            "id": contract.id,
            "name": contract.name,
            "contractMaturityId": contract.maturity_id,
            "status": "DefinitionChecked",
            "providerTickSize": float(contract_spec(contract.root).tick_size),
        }

    def maturity_json(self, maturity: Maturity, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        siblings = [
            m
            for m in self.maturities.values()
            if m.product_id == maturity.product_id and m.expiration > now
        ]
        front = min(siblings, key=lambda m: m.expiration, default=None)
        return {
            "id": maturity.id,
            "productId": maturity.product_id,
            "expirationMonth": maturity.expiration.year * 100 + maturity.expiration.month,
            "expirationDate": maturity.expiration.strftime("%Y-%m-%dT%H:%MZ"),
            "isFront": front is maturity,
            "archived": False,
            "seqNo": 1,
        }

    def product_json(self, product: Product) -> dict[str, Any]:
        spec = contract_spec(product.name)
        return {
            "id": product.id,
            "name": product.name,
            "currencyId": 1,
            "productType": "Futures",
            "description": product.name,
            "status": "Verified",
            "months": "HMUZ",
            "valuePerPoint": float(spec.point_value),
            "tickSize": float(spec.tick_size),
        }


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class ContractRestServer(LocalHttpServer):
    """The contract lookups of the REST API on 127.0.0.1, bearer token required (§4)."""

    def __init__(
        self,
        catalogue: ContractCatalogue,
        tokens: Tokens,
        *,
        port: int = 0,
        unknown_find: str = "null",
    ) -> None:
        super().__init__(port)

        self.catalogue = catalogue
        self.tokens = tokens
        # An unknown name answers 200 + `null` or 200 + errorText (both plausible, §4);
        # a bare root answers 404 (§5.2, reported).
        self.unknown_find = unknown_find
        self.requests: Counter[str] = Counter()  # route → how many were asked

    thread_name = "tradovate-rest"

    @property
    def url(self) -> str:
        """The REST base, like `https://demo.tradovateapi.com/v1`."""
        return f"http://127.0.0.1:{self.server_port}/v1"

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._dispatch(Request(environ))(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        route = request.path.lower().removeprefix("/v1/")  # §4: paths are case-tolerant
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token_accepted(self.tokens, token.strip()):
            self.requests[route] += 1
            return Response("", status=401)
        return self._lookup(route, request.args)

    def _lookup(self, route: str, args: Any) -> Response:
        """One lookup of an authorized caller, from REST or the account socket."""
        self.requests[route] += 1
        handler = {
            "contract/find": self._find,
            "contract/item": self._item,
            "contract/items": self._items,
            "contract/suggest": self._suggest,
            "contractmaturity/item": self._maturity,
            "product/find": self._product,
            "product/item": self._product_item,
        }.get(route)
        return handler(args) if handler else Response("", status=404)

    def _find(self, args: Any) -> Response:
        name = args.get("name", "")
        contract = self.catalogue.find(name)
        if contract is not None:
            return _json(self.catalogue.contract_json(contract))
        if name.upper() in self.catalogue.products:
            return Response("", status=404)
        if self.unknown_find == "error":
            return _json({"errorText": f"Contract {name} not found"})
        return _json(None)

    def _item(self, args: Any) -> Response:
        contract = self.catalogue.item(_int(args.get("id")))
        return (
            _json(self.catalogue.contract_json(contract)) if contract else Response("", status=404)
        )

    def _items(self, args: Any) -> Response:
        found = (self.catalogue.item(_int(i)) for i in args.get("ids", "").split(","))
        return _json([self.catalogue.contract_json(c) for c in found if c])

    def _suggest(self, args: Any) -> Response:
        hits = self.catalogue.suggest(args.get("t", ""), _int(args.get("l")) or 10)
        return _json([self.catalogue.contract_json(c) for c in hits])

    def _maturity(self, args: Any) -> Response:
        maturity = self.catalogue.maturities.get(_int(args.get("id")))
        return (
            _json(self.catalogue.maturity_json(maturity)) if maturity else Response("", status=404)
        )

    def _product(self, args: Any) -> Response:
        product = self.catalogue.products.get(args.get("name", "").upper())
        return _json(self.catalogue.product_json(product)) if product else Response("", status=404)

    def _product_item(self, args: Any) -> Response:
        product = self.catalogue.product_by_id(_int(args.get("id")))
        return _json(self.catalogue.product_json(product)) if product else Response("", status=404)


def _int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return -1
