"""SQLAlchemy 2 models: users, API keys, recorders, signals, positions, fills.

Prices and money are NUMERIC columns read as `Decimal`; nothing here is ever a float.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
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
    tp_ticks: Mapped[int | None] = mapped_column(Integer)
    sl_ticks: Mapped[int | None] = mapped_column(Integer)
    on_opposite: Mapped[str] = mapped_column(String(10), default="reverse")
    allow_dca: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_delayed_exits: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


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
            "uq_positions_open_per_symbol", "recorder_id", "symbol",
            unique=True, postgresql_where=text("status = 'open'"),
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
    opened_ms: Mapped[int] = mapped_column(BigInteger)  # epoch ms; ticks older than this are ignored
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    fills: Mapped[list[Fill]] = relationship(back_populates="position", order_by="Fill.id")


class Fill(Base):
    """Every entry and exit that changed a position."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(primary_key=True)
    position_id: Mapped[int] = mapped_column(ForeignKey("positions.id", ondelete="CASCADE"), index=True)
    signal_id: Mapped[uuid.UUID | None] = mapped_column()
    kind: Mapped[str] = mapped_column(String(5))  # entry | exit
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    price: Mapped[Decimal] = mapped_column(PRICE)
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    reason: Mapped[str | None] = mapped_column(String(10))
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    position: Mapped[Position] = relationship(back_populates="fills")


def new_signal_id() -> str:
    return str(uuid.uuid4())


class TradingViewSession(Base):
    """A user's TradingView session cookies, encrypted; the price feed logs in with them."""

    __tablename__ = "tradingview_sessions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    cookies_encrypted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
