"""A local Tradovate account WebSocket (docs/outside/tradovate.md §6.1–6.4, §9): `authorize`,
`user/syncrequest` with its snapshot, then `props` events for every change of the broker's Book;
every REST operation but the `auth/*` token ones answers here too, as Tradovate's does (§5.1).

Requests are read as `wire` reads them (a raw or a JSON-quoted token, JavaScript's `undefined`).

The snapshot lists the contracts of the user's orders, positions and fills, with their
maturities and products. Sim choice: which products and maturities the real snapshot holds beyond
those is not documented; an account that never traded gets empty `contracts`, `products` and
`contractMaturities`.

Like the md socket it writes its frames itself: a framing bug in the client must not be mirrored.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from simulators.local_servers import LocalWebSocketServer
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.broker_access import LOCKED, Penalty, Session
from simulators.tradovate.broker_entities import JSON
from simulators.tradovate.contracts import ContractCatalogue
from simulators.tradovate.wire import parse_request, token_of

# Snapshot arrays of §6.4 the sim has no entities for: present and empty, as for a quiet account.
EMPTY_ARRAYS = (
    "marginSnapshots",
    "userAccountAutoLiqs",
    "currencies",
    "exchanges",
    "spreadDefinitions",
    "orderStrategyTypes",
    "userProperties",
    "properties",
    "userPlugins",
    "contractGroups",
    "userReadStatuses",
)
# Snapshot array → the Book's entity (`Book.rows`).
BOOK_ARRAYS = {
    "accounts": "account",
    "accountRiskStatuses": "accountriskstatus",
    "positions": "position",
    "orders": "order",
    "orderVersions": "orderversion",
    "commands": "command",
    "fills": "fill",
    "orderStrategies": "orderstrategy",
    "orderStrategyLinks": "orderstrategylink",
    "cashBalances": "cashbalance",
    "fillPairs": "fillpair",
    "commandReports": "commandreport",
    "executionReports": "executionreport",
}


def _number(value: Any) -> float:
    if isinstance(value, Decimal):
        return float(value)  # Tradovate sends JSON numbers; repr keeps 25640.25 exact
    raise TypeError(f"{type(value).__name__} is not JSON")


def _dumps(message: JSON) -> str:
    return json.dumps(message, separators=(",", ":"), default=_number)


@dataclass(frozen=True)
class PeerInfo:
    """One live connection as the server sees it, for test assertions."""

    number: int
    user: str | None
    accounts: frozenset[int]  # covered by its syncrequest
    heartbeats_received: int


class _Peer:
    """One client: its user, the accounts its syncrequest covers, and an ordered outbox."""

    def __init__(self, server: AccountSocketServer, connection: ServerConnection, number: int):
        self.server, self.connection, self.number = server, connection, number
        self.user: str | None = None
        self.session: Session | None = None  # the login it authorized with; kept past expiry
        self.accounts: frozenset[int] = frozenset()
        self.heartbeats = 0
        self.opened = self.last_client = self.last_sent = time.monotonic()
        # One writer drains this, so a snapshot queued under the book's lock precedes the props.
        self.outbox: queue.Queue[str | None] = queue.Queue()
        self.writer = threading.Thread(target=self._write, daemon=True, name="tv-account-writer")

    def frame(self, text: str) -> None:
        """A raw frame (`o`, `h`, `c[...]`)."""
        self.outbox.put("!" + text)

    def message(self, message: JSON) -> None:
        """One message for an `a[...]` frame; adjacent ones are batched into one frame (§6.1)."""
        self.outbox.put(_dumps(message))

    def _write(self) -> None:
        held: list[str | None] = []  # an item taken while batching, to go out next
        while (item := held.pop() if held else self.outbox.get()) is not None:
            if item.startswith("!"):
                text = item[1:]
            else:
                batch = [item]
                while len(batch) < 50:
                    try:
                        nxt = self.outbox.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None or nxt.startswith("!"):
                        held.append(nxt)
                        break
                    batch.append(nxt)
                text = "a[" + ",".join(batch) + "]"
            try:
                self.connection.send(text)
                self.last_sent = time.monotonic()
            except (ConnectionClosed, OSError):
                return

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        with contextlib.suppress(OSError):  # linger 0 makes close send RST, not FIN
            self.connection.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.connection.close_socket()

    def info(self) -> PeerInfo:
        return PeerInfo(self.number, self.user, self.accounts, self.heartbeats)


class AccountSocketServer(LocalWebSocketServer):
    """`wss://demo.tradovateapi.com/v1/websocket` for one `BrokerSimulator`, on 127.0.0.1."""

    def __init__(
        self,
        broker: BrokerSimulator,
        *,
        heartbeat_interval_s: float = 2.5,
        idle_timeout_s: float = 15.0,
        auth_timeout_s: float | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.broker = broker
        self.heartbeat_interval_s = heartbeat_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.auth_timeout_s = auth_timeout_s if auth_timeout_s is not None else idle_timeout_s
        self.connections_accepted = 0
        self.authorized_connections = 0
        self.auth_failures = 0
        self.heartbeats_received = 0
        self.sync_requests = 0
        self.props_sent = 0
        self.idle_closes = 0
        self._numbers = itertools.count(1)
        self._peers: dict[int, _Peer] = {}  # guarded by the broker's lock, as the listener is

    # -- lifecycle -------------------------------------------------------------------------------

    thread_name = "tradovate-account-server"

    def start(self) -> AccountSocketServer:
        self.broker.add_listener(self._on_change)
        return super().start()

    def stop(self) -> None:
        self.broker.remove_listener(self._on_change)
        super().stop()

    # -- test hooks ------------------------------------------------------------------------------

    def push(self, account_id: int, entity_type: str, event_type: str, entity: JSON) -> None:
        """A `props` event the Book never makes (say an order rejected after it was accepted,
        §5.9) to every socket whose syncrequest covers `account_id`."""
        with self.broker.lock:
            self._on_change(entity_type, event_type, entity, account_id)

    def drop_all(self, abrupt: bool = False, close_frame: tuple[int, str] | None = None) -> None:
        """Close every socket: cleanly, with a `c[code,"reason"]` frame first, or by TCP reset.
        Changes made from now on reach no dropped client: it must re-sync to learn them."""
        for peer in self._forget_all():
            if close_frame:
                with contextlib.suppress(ConnectionClosed, OSError):
                    peer.connection.send("c" + json.dumps(list(close_frame)))
            peer.abort() if abrupt else peer.connection.close()

    def send_shutdown(self, reason_code: str, reason: str = "") -> None:
        """The `shutdown` event (§6.1), then the sockets are closed as Tradovate does."""
        for peer in self._forget_all():
            with contextlib.suppress(ConnectionClosed, OSError):
                peer.connection.send(
                    "a"
                    + _dumps({"e": "shutdown", "d": {"reasonCode": reason_code, "reason": reason}})
                )
            peer.connection.close()

    def connections(self) -> list[PeerInfo]:
        with self.broker.lock:
            return [peer.info() for peer in self._peers.values()]

    # -- the book's changes ----------------------------------------------------------------------

    def _on_change(self, entity_type: str, event_type: str, entity: JSON, account_id: int) -> None:
        # Called under the broker's lock; only queues, so a slow client never holds the book.
        event = {
            "e": "props",
            "d": {"entityType": entity_type, "eventType": event_type, "entity": entity},
        }
        for peer in self._peers.values():
            if account_id in peer.accounts:
                peer.message(event)
                self.props_sent += 1

    def _forget_all(self) -> list[_Peer]:
        with self.broker.lock:
            peers = list(self._peers.values())
            self._peers.clear()
        return peers

    # -- connections -----------------------------------------------------------------------------

    def _handle(self, connection: ServerConnection) -> None:
        with self.broker.lock:
            self.connections_accepted += 1
            peer = _Peer(self, connection, next(self._numbers))
            self._peers[peer.number] = peer
        peer.writer.start()
        try:
            peer.frame("o")
            self._serve(peer)
        except ConnectionClosed:
            pass
        finally:
            with self.broker.lock:
                self._peers.pop(peer.number, None)
            peer.outbox.put(None)

    def _serve(self, peer: _Peer) -> None:
        while True:
            now = time.monotonic()
            close_at = peer.last_client + self.idle_timeout_s
            if peer.user is None:
                close_at = min(close_at, peer.opened + self.auth_timeout_s)
            due = min(close_at, peer.last_sent + self.heartbeat_interval_s)
            try:
                message = peer.connection.recv(timeout=max(0.0, due - now))
            except TimeoutError:
                now = time.monotonic()
                if now >= close_at:
                    # Tradovate drops sockets that stop sending `[]` or never authorize (§6.2–6.3).
                    with self.broker.lock:
                        self.idle_closes += 1
                    peer.frame('c[1000,"Inactivity"]')
                    time.sleep(0.05)  # let the writer put the close reason on the wire
                    peer.connection.close()
                    return
                if now >= peer.last_sent + self.heartbeat_interval_s and peer.outbox.empty():
                    peer.frame("h")
                    peer.last_sent = now  # the writer stamps it again when it goes out
                continue
            peer.last_client = time.monotonic()
            if isinstance(message, str):
                self._request(peer, message)

    def _request(self, peer: _Peer, text: str) -> None:
        if text == "[]":
            with self.broker.lock:
                peer.heartbeats += 1
                self.heartbeats_received += 1
            return
        request = parse_request(text)
        if request is None:
            return peer.message({"s": 400, "d": "Bad request"})
        endpoint, rid = request.endpoint, request.id
        if endpoint == "authorize":
            return self._authorize(peer, rid, token_of(request.body))
        if peer.user is None:
            return peer.message({"i": rid, "s": 401, "d": "Access is denied"})
        if endpoint == "user/syncrequest":
            return self._sync(peer, rid, request.body)
        if endpoint.startswith("auth/") or "/" not in endpoint:  # the token endpoints are REST only
            return peer.message({"i": rid, "s": 404, "d": f"Unknown operation {endpoint}"})
        self._operation(peer, rid, endpoint, request.query, request.body)

    def _operation(self, peer: _Peer, rid: int, endpoint: str, query: str, text: str) -> None:
        """Any REST operation, answered as the REST API would: `d` is its body (§6.1)."""
        try:
            body = json.loads(text, parse_float=Decimal) if text else {}
        except ValueError:
            return peer.message({"i": rid, "s": 400, "d": "Bad request body"})
        if not isinstance(body, dict):
            return peer.message({"i": rid, "s": 400, "d": "Bad request body"})
        args = MultiDict(parse_qsl(query, keep_blank_values=True))
        response = self.broker.serve(endpoint, args, body, peer.session)
        peer.message(socket_answer(rid, response))

    def _authorize(self, peer: _Peer, rid: int, token: str) -> None:
        with self.broker.lock:
            session = self.broker.access.session_for(token)  # the access token, not the md one
            if session is None:
                self.auth_failures += 1
            else:
                self.authorized_connections += 1
                peer.user, peer.session = session.user, session
        if session is None:
            return peer.message({"i": rid, "s": 401, "d": "Access is denied"})
        peer.message({"s": 200, "i": rid})

    def _sync(self, peer: _Peer, rid: int, text: str) -> None:
        try:
            body = json.loads(text) if text.strip() else {}
            users, accounts = list(body.get("users") or []), list(body.get("accounts") or [])
        except (ValueError, AttributeError, TypeError):
            return peer.message({"i": rid, "s": 400, "d": "Bad request body"})
        with self.broker.lock:
            self.sync_requests += 1
            assert peer.user is not None
            verdict = self.broker.access.admit(peer.user, "user/syncrequest", body.get("p-ticket"))
            if verdict == LOCKED:
                return peer.message({"i": rid, "s": 429})
            if isinstance(verdict, Penalty):
                return peer.message({"i": rid, "s": 200, "d": verdict.body()})
            mine = {a.id for a in self.broker.book.accounts_of(peer.user)}
            user_id = self.broker.user_ids[peer.user]
            if not users and not accounts:
                return peer.message({"i": rid, "s": 400, "d": "users or accounts is required"})
            if any(u != user_id for u in users) or any(a not in mine for a in accounts):
                return peer.message({"i": rid, "s": 403, "d": "Access is denied"})
            covered = frozenset(mine if users else accounts)
            # Snapshot and subscription under one lock: no change is missed or sent twice.
            peer.message({"s": 200, "i": rid, "d": self._snapshot(peer.user, covered)})
            peer.accounts = covered

    def _snapshot(self, user: str, covered: frozenset[int]) -> JSON:
        book = self.broker.book
        snapshot: JSON = {
            "users": [
                {
                    "id": self.broker.user_ids[user],
                    "name": user,
                    "status": "Active",
                    "professional": False,
                }
            ]
        }
        for array, entity in BOOK_ARRAYS.items():
            snapshot[array] = list(book.rows(entity, user, covered))
        contract_ids = {
            r["contractId"] for a in ("orders", "positions", "fills") for r in snapshot[a]
        }
        snapshot.update(catalogue_arrays(book.catalogue, contract_ids))
        snapshot.update({array: [] for array in EMPTY_ARRAYS})
        return snapshot


def catalogue_arrays(catalogue: ContractCatalogue, contract_ids: set[int]) -> JSON:
    """`contracts`, `contractMaturities` and `products` of these contracts, for the snapshot."""
    contracts = [c for i in sorted(contract_ids) if (c := catalogue.item(i))]
    maturities = {c.maturity_id: catalogue.maturities[c.maturity_id] for c in contracts}
    products = {m.product_id: catalogue.product_by_id(m.product_id) for m in maturities.values()}
    return {
        "contracts": [catalogue.contract_json(c) for c in contracts],
        "contractMaturities": [catalogue.maturity_json(m) for m in maturities.values()],
        "products": [catalogue.product_json(p) for p in products.values() if p is not None],
    }


def socket_answer(rid: int, response: Response) -> JSON:
    """A REST answer as a socket response (§6.1): `d` is the body on 2xx, else an error string;
    a 429 lockout has no `d` (§3.2)."""
    status, text = response.status_code, response.get_data(as_text=True)
    message: JSON = {"s": status, "i": rid}
    if 200 <= status < 300:
        if text.strip():
            message["d"] = json.loads(text, parse_float=Decimal)
    elif status != 429:
        message["d"] = text or HTTPStatus(status).phrase
    return message
