"""SQLAlchemy 2 models: users, API keys, recorders, signals, positions, fills.

Prices and money are NUMERIC columns read as `Decimal`; nothing here is ever a float.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

PRICE = Numeric(30, 12)
MONEY = Numeric(38, 16)  # exact; rounded to the cent only for display


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # An operator sets what every user shares: the price feed's TradingView session
    # (`justtrades user admin EMAIL`).
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The manual ticket asks "are you sure?" above this many contracts.
    manual_confirm_above: Mapped[int] = mapped_column(Integer, default=5)
    # The zone every page, the calendar and the CSV show times in (the API stays in UTC).
    time_zone: Mapped[str] = mapped_column(String(64), default="America/Chicago")


class LoginSession(Base):
    """One browser login. The signed cookie carries a random id whose hash is the key here; a
    request whose session has ended (logout, a password change, "log out everywhere") or
    expired is anonymous, whatever its cookie says."""

    __tablename__ = "login_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(64), default="")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))  # shown to the user to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the whole key
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Recorder(Base):
    __tablename__ = "recorders"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    webhook_token: Mapped[str] = mapped_column(String(64), unique=True)
    default_qty: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=Decimal(1))
    max_qty: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=Decimal(100))
    tp_ticks: Mapped[int | None] = mapped_column(Integer)
    sl_ticks: Mapped[int | None] = mapped_column(Integer)
    on_opposite: Mapped[str] = mapped_column(String(10), default="reverse")
    allow_dca: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_delayed_exits: Mapped[bool] = mapped_column(Boolean, default=False)
    # The exit plan (contract §3b) as the API took it; None: the one-leg plan of tp/sl_ticks.
    exits: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (Index("ix_signals_recorder_received", "recorder_id", "received_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    recorder_id: Mapped[int] = mapped_column(ForeignKey("recorders.id", ondelete="CASCADE"))
    stream_id: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str | None] = mapped_column(String(10))
    ticker: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str | None] = mapped_column(String(32))
    price: Mapped[Decimal | None] = mapped_column(PRICE)
    qty: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    position_size: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    market_position: Mapped[str | None] = mapped_column(String(10))
    raw: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10))  # applied | ignored | rejected
    reason: Mapped[str | None] = mapped_column(Text)
    position_id: Mapped[int | None] = mapped_column(ForeignKey("positions.id", ondelete="SET NULL"))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (
        Index(
            "uq_positions_open_per_symbol",
            "recorder_id",
            "symbol",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_positions_symbol_open", "symbol", postgresql_where=text("status = 'open'")),
        Index("ix_positions_recorder_closed", "recorder_id", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recorder_id: Mapped[int] = mapped_column(ForeignKey("recorders.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(5))  # long | short
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    avg_entry_price: Mapped[Decimal] = mapped_column(PRICE)
    # Σ qty × price of the contracts still open; realized PnL is taken against it so that a
    # flat-to-flat round trip realizes exactly the sum over its fills, whatever the averages.
    entry_cost: Mapped[Decimal] = mapped_column(Numeric(38, 16))
    tp_price: Mapped[Decimal | None] = mapped_column(PRICE)
    sl_price: Mapped[Decimal | None] = mapped_column(PRICE)
    status: Mapped[str] = mapped_column(String(6), default="open")  # open | closed
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    exit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    exit_reason: Mapped[str | None] = mapped_column(String(10))
    max_favorable: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    max_adverse: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    worst_unrealized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    best_unrealized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    opened_ms: Mapped[int] = mapped_column(
        BigInteger
    )  # epoch ms; ticks older than this are ignored
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Under an exit plan (§3b): the plan it runs (the recorder's when it opened), where the plan
    # stands (levels, stop, legs filled) and what set the stop (sl | breakeven | trail).
    exit_plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    plan_state: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    stop_reason: Mapped[str | None] = mapped_column(String(10))

    fills: Mapped[list[Fill]] = relationship(back_populates="position", order_by="Fill.id")


class Fill(Base):
    """Every entry and exit that changed a position."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(primary_key=True)
    position_id: Mapped[int] = mapped_column(
        ForeignKey("positions.id", ondelete="CASCADE"), index=True
    )
    signal_id: Mapped[uuid.UUID | None] = mapped_column()
    kind: Mapped[str] = mapped_column(String(5))  # entry | exit | tp (a target leg's part)
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    price: Mapped[Decimal] = mapped_column(PRICE)
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    reason: Mapped[str | None] = mapped_column(String(10))
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    position: Mapped[Position] = relationship(back_populates="fills")


class StopMove(Base):
    """Each time a plan's stop moved (break-even, trailing, a signal's level): the trade detail's
    history of the stop."""

    __tablename__ = "stop_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    position_id: Mapped[int] = mapped_column(
        ForeignKey("positions.id", ondelete="CASCADE"), index=True
    )
    stop_price: Mapped[Decimal] = mapped_column(PRICE)
    reason: Mapped[str] = mapped_column(String(10))  # sl | breakeven | trail
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StreamOffset(Base):
    """How far the engine has applied a stream, written in the same transaction as the effects:
    entries at or before it that come back (a crash between commit and acknowledgement) are
    acknowledged without being applied again — a tick re-applied to a position a later signal
    of its batch changed would mark it against the wrong average."""

    __tablename__ = "stream_offsets"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ms: Mapped[int] = mapped_column(BigInteger)  # the last applied entry id, "ms-seq"
    seq: Mapped[int] = mapped_column(BigInteger)


def new_signal_id() -> str:
    return str(uuid.uuid4())


class TradingViewSession(Base):
    """A user's TradingView session cookies, encrypted; the price feed logs in with them."""

    __tablename__ = "tradingview_sessions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    cookies_encrypted: Mapped[str] = mapped_column(Text)
    # "cookies": pasted by the operator; "sign-in": obtained by the price feed signing in with
    # the stored credentials (TradingViewCredentials).
    source: Mapped[str] = mapped_column(String(16), default="cookies", server_default="cookies")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class TradingViewCredentials(Base):
    """An operator's TradingView username, password and authenticator secret (one encrypted
    JSON object, never shown again), with which the price feed signs in by itself, and how its
    last sign-in went. The UI writes the secrets (and clears the outcome when they change); the
    price feed writes only the outcome columns, of the credentials it used (`saved_at`)."""

    __tablename__ = "tradingview_credentials"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secrets_encrypted: Mapped[str] = mapped_column(Text)
    username_hint: Mapped[str] = mapped_column(String(16))  # "tr…": enough to recognise it
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    renewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    renewals_stopped: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


# --- execution: accounts, traders, order intents, copy groups (docs/contract.md §4) ---------------


class Account(Base):
    """A broker connection: `paper`, or `tradovate` (demo or live, credentials or OAuth)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    broker: Mapped[str] = mapped_column(String(16))  # paper | tradovate
    name: Mapped[str] = mapped_column(String(100))
    environment: Mapped[str | None] = mapped_column(String(8))  # demo | live
    auth_method: Mapped[str | None] = mapped_column(String(12))  # credentials | oauth
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    md_access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    broker_user_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="connected")  # connected | error
    status_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    # The database deletes an account's subaccounts (and their traders) with it (ON DELETE CASCADE).
    subaccounts: Mapped[list[Subaccount]] = relationship(
        back_populates="account",
        order_by="Subaccount.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Subaccount(Base):
    """One trading account at the broker: Tradovate's `accountSpec` (name) and `accountId`."""

    __tablename__ = "subaccounts"
    __table_args__ = (
        Index("uq_subaccounts_broker_id", "account_id", "broker_account_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    broker_account_id: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    risk_status: Mapped[str] = mapped_column(
        String(16), default="normal"
    )  # normal | liquidate_only | locked
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The risk desk's lock (§4c), set by the executor on a breach: no new entries before this
    # trade date; exits always go out. Nothing can lift it earlier.
    locked_until: Mapped[date | None] = mapped_column(Date)
    lock_reason: Mapped[str | None] = mapped_column(Text)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the risk desk last flattened the subaccount: no trader holds at the broker what its
    # recorder opened before then, so those positions' exits are not sent.
    flattened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The highest balance (realized since the desk was set up, plus open PnL) the executor has
    # seen: where the trailing drawdown counts from.
    high_balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))

    account: Mapped[Account] = relationship(back_populates="subaccounts")

    def lock_until(self, day: date) -> date | None:
        """The trade date the risk desk's lock lifts on, while it holds on `day`; else None."""
        return (
            self.locked_until if self.locked_until is not None and day < self.locked_until else None
        )


class SubaccountRisk(Base):
    """A subaccount's limits (§4c), as the user set them in the UI. `pending` holds looser limits
    asked for during a trade date; they take effect from `pending_from`."""

    __tablename__ = "subaccount_risk"

    subaccount_id: Mapped[int] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), primary_key=True
    )
    daily_loss_limit: Mapped[Decimal | None] = mapped_column(MONEY)
    daily_profit_target: Mapped[Decimal | None] = mapped_column(MONEY)
    trailing_drawdown: Mapped[Decimal | None] = mapped_column(MONEY)
    max_trades_per_day: Mapped[int | None] = mapped_column(Integer)
    max_contracts: Mapped[int | None] = mapped_column(Integer)
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    pending_from: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Trader(Base):
    """A recorder's signals placed on one subaccount, scaled and guarded."""

    __tablename__ = "traders"
    __table_args__ = (
        Index("uq_traders_recorder_subaccount", "recorder_id", "subaccount_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    recorder_id: Mapped[int] = mapped_column(
        ForeignKey("recorders.id", ondelete="CASCADE"), index=True
    )
    subaccount_id: Mapped[int] = mapped_column(ForeignKey("subaccounts.id", ondelete="CASCADE"))
    multiplier: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=Decimal(1))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    max_contracts: Mapped[int] = mapped_column(Integer, default=10)
    daily_loss_limit: Mapped[Decimal | None] = mapped_column(MONEY)
    window_start: Mapped[str | None] = mapped_column(String(5))  # HH:MM in window_tz
    window_end: Mapped[str | None] = mapped_column(String(5))
    window_tz: Mapped[str] = mapped_column(String(64), default="America/New_York")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_until: Mapped[date | None] = mapped_column(Date)  # a trade date; on again from then
    # When the trader was last flattened (trading window's end, daily loss guard, kill switch):
    # it holds nothing at the broker of what its recorder opened before then.
    flat_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class TraderSkip(Base):
    """A recorder position a trader never entered (its entry was skipped: trading window, pause,
    the account's lock or risk status): none of its later changes are the trader's to send."""

    __tablename__ = "trader_skips"

    trader_id: Mapped[int] = mapped_column(
        ForeignKey("traders.id", ondelete="CASCADE"), primary_key=True
    )
    position_id: Mapped[int] = mapped_column(
        ForeignKey("positions.id", ondelete="CASCADE"), primary_key=True
    )


class OrderIntent(Base):
    """One order the platform means to send; written by the engine in the same transaction as the
    position change (an outbox), sent at most once by the executor."""

    __tablename__ = "order_intents"
    __table_args__ = (
        Index("ix_intents_subaccount_status", "subaccount_id", "status", "sequence"),
        Index("ix_intents_trader", "trader_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sequence: Mapped[int] = mapped_column(
        BigInteger, Identity(), unique=True
    )  # send order per subaccount
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subaccount_id: Mapped[int] = mapped_column(ForeignKey("subaccounts.id", ondelete="CASCADE"))
    trader_id: Mapped[int | None] = mapped_column(ForeignKey("traders.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(10))  # signal | manual | flatten | copy | guard
    signal_id: Mapped[uuid.UUID | None] = mapped_column()
    parent_id: Mapped[uuid.UUID | None] = mapped_column()  # the leader's intent of a copy
    kind: Mapped[str] = mapped_column(String(16))  # entry|add|reduce|close|flatten|move_*
    symbol: Mapped[str] = mapped_column(String(32))  # canonical root, or the ticker's root
    ticker: Mapped[str | None] = mapped_column(String(64))  # as the signal wrote it (MNQ1!, MNQZ6)
    contract: Mapped[str | None] = mapped_column(String(32))  # resolved at send time (MNQZ6)
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    order_type: Mapped[str] = mapped_column(String(8), default="market")  # market | limit
    limit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    tp_price: Mapped[Decimal | None] = mapped_column(PRICE)
    sl_price: Mapped[Decimal | None] = mapped_column(PRICE)
    # Several target legs (§3b): [{"price": "25005", "qty": "1"}, ...] in the trader's
    # contracts, and the recorder's average entry: {"entry_price", "legs"}; None: `tp_price` alone.
    targets: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The trader's size on the contract once this intent is done: what its protective orders
    # cover (several traders may share a subaccount, §4b). None: not a trader's order.
    position_quantity: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    priority: Mapped[str] = mapped_column(String(6))  # exit | entry
    status: Mapped[str] = mapped_column(String(10), default="queued")
    # queued → sending → accepted | filled | rejected | failed; skipped (a guard said no)
    cl_ord_id: Mapped[str] = mapped_column(String(64), unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(String(40))
    fill_price: Mapped[Decimal | None] = mapped_column(PRICE)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the broker first answered accepted (or filled at once); `finished_at` is the last word.
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PaperPosition(Base):
    """The paper broker's book: net position per subaccount and contract. Its working orders
    (targets, stops, resting limits) are `paper_orders`; its fills are `paper_fills`."""

    __tablename__ = "paper_positions"

    subaccount_id: Mapped[int] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), primary_key=True
    )
    contract: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), index=True)  # root, to match ticks
    net_qty: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=Decimal(0))
    avg_price: Mapped[Decimal | None] = mapped_column(PRICE)
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class PaperOrder(Base):
    """A working order of the paper broker: a resting limit, a target or a stop, filled by the
    ticks that reach it. Orders of one `oco_group` cancel each other when one fills. `trader_id`
    says whose protective order it is, so traders sharing a subaccount (§4b) touch only theirs."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        Index(
            "ix_paper_orders_working",
            "symbol",
            postgresql_where=text("status = 'working'"),
        ),
        Index("ix_paper_orders_subaccount", "subaccount_id", "contract", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subaccount_id: Mapped[int] = mapped_column(ForeignKey("subaccounts.id", ondelete="CASCADE"))
    contract: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))  # root, to match ticks
    trader_id: Mapped[int | None] = mapped_column(Integer)  # None: a manual order
    intent_id: Mapped[uuid.UUID | None] = mapped_column()
    role: Mapped[str] = mapped_column(String(8))  # entry | target | stop
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    order_type: Mapped[str] = mapped_column(String(8))  # limit | stop
    price: Mapped[Decimal] = mapped_column(PRICE)  # the limit, or the stop's trigger
    oco_group: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="working")  # working|filled|cancelled
    fill_price: Mapped[Decimal | None] = mapped_column(PRICE)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PaperFill(Base):
    """Every fill of the paper broker, with the PnL it realized: the account's trades of the day
    and realized PnL today (the account view, the risk desk)."""

    __tablename__ = "paper_fills"
    __table_args__ = (Index("ix_paper_fills_subaccount_time", "subaccount_id", "filled_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subaccount_id: Mapped[int] = mapped_column(ForeignKey("subaccounts.id", ondelete="CASCADE"))
    contract: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))
    trader_id: Mapped[int | None] = mapped_column(Integer)
    intent_id: Mapped[uuid.UUID | None] = mapped_column()
    order_id: Mapped[int | None] = mapped_column(Integer)  # the paper order, for resting ones
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    price: Mapped[Decimal] = mapped_column(PRICE)
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CopyGroup(Base):
    __tablename__ = "copy_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    leader_subaccount_id: Mapped[int] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), unique=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # §4d: bring a follower that drifted back in step by itself (else it is only shown), and
    # lock and flatten the followers when the leader's risk desk locks the leader.
    realign: Mapped[bool] = mapped_column(Boolean, default=False)
    follow_risk_lock: Mapped[bool] = mapped_column(Boolean, default=False)


class CopyFollower(Base):
    __tablename__ = "copy_followers"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("copy_groups.id", ondelete="CASCADE"), primary_key=True
    )
    subaccount_id: Mapped[int] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), primary_key=True
    )
    multiplier: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=Decimal(1))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # §4d: the follower takes the other side; trades another root (NQ → MNQ); never holds more
    # than this many contracts of it.
    inverted: Mapped[bool] = mapped_column(Boolean, default=False)
    symbol_map: Mapped[dict[str, str] | None] = mapped_column(JSONB)  # leader root → follower's
    max_contracts: Mapped[int | None] = mapped_column(Integer)
    # What the last check found: the follower's net differs from the leader's × multiplier.
    out_of_step: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationDestination(Base):
    """Where a user hears of the events they chose (§4e): a generic webhook, Discord, Telegram or
    e-mail. `target_sealed` is the target as JSON, encrypted (SecretBox): Discord URLs and bot
    tokens carry credentials; `target_masked` is what the API shows. The last delivery is kept
    here so the Settings page can show a failing destination."""

    __tablename__ = "notification_destinations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # webhook | discord | telegram | email
    target_sealed: Mapped[str] = mapped_column(Text)
    target_masked: Mapped[str] = mapped_column(String(300))
    secret_sealed: Mapped[str | None] = mapped_column(Text)  # the webhook's signing secret
    events: Mapped[list[str]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_delivery_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_delivery_event: Mapped[str | None] = mapped_column(String(32))
    last_delivery_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_delivery_error: Mapped[str | None] = mapped_column(Text)
    deliveries_ok: Mapped[int] = mapped_column(Integer, default=0)
    deliveries_failed: Mapped[int] = mapped_column(Integer, default=0)
