"""Stream names and the messages that travel on them (docs/contract.md §2 "Streams").

Redis stream fields are flat strings; each message class converts to and from them, and reading
a malformed entry (say, one written by hand with redis-cli) raises `MalformedMessage`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

from libs.common.backoff import capped_exponential

SIGNALS = "signals"
TICKS = "ticks"
EVENTS = "events"
LAST_PRICE = "last_price"
BROKER_VIEW = "broker_view:"  # + subaccount id: a Tradovate subaccount as the executor sees it
OPEN_SYMBOLS = (
    "open_symbols"  # hash root → open positions; the engine writes it, the feed follows it
)
PRICE_FEED_STATUS = "price_feed_status"  # JSON of the feed's last status (expires), for the UI
CONFIRMED_CONTRACTS = (
    "tradovate_contracts"  # hash contract name → Tradovate id, kept by the executor
)
SIGNAL_PENDING = "signal_pending:"  # + signal_id → recorder_id, set by the gateway on accept
WEBHOOK_REFUSED = "webhook_refused:"  # + recorder_id → list of refused webhooks (gateway, UI)
ENGINE_GROUP = "position_engine"
# Changes to the engine's tables asked for by the UI (a recorder deleted, its history reset);
# the engine applies them in order, through its own group on this stream.
ENGINE_COMMANDS = "engine_commands"
# A key the active engine keeps alive (a few seconds' expiry) while it reads commands.
ENGINE_COMMANDS_READER = "engine_commands:reader"
EVENTS_MAXLEN = 100_000  # approximate trim: the UI reads events live, history lives in PostgreSQL


# A stream entry's fields as read back; values are str from a client with decode_responses, and
# the readers also take bytes (or anything with a str()) from other clients and from tests.
ReadFields = Mapping[str, object]
Entry = tuple[str, dict[str, str]]  # (entry id, fields)
StreamReply = list[tuple[str, list[Entry]]]  # XREAD/XREADGROUP: (stream, entries) per stream


class MalformedMessage(ValueError):
    """A stream entry whose fields cannot be read as the message it should be."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(fields: ReadFields, name: str) -> str:
    value = fields.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _decimal(fields: ReadFields, name: str, required: bool = False) -> Decimal | None:
    text = _text(fields, name).strip()
    if not text:
        if required:
            raise MalformedMessage(f"field {name} is missing")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MalformedMessage(f"field {name} is not a number: {text[:40]!r}") from None
    if not value.is_finite():
        raise MalformedMessage(f"field {name} is not a finite number: {text[:40]!r}")
    return value


def _int(fields: ReadFields, name: str) -> int:
    text = _text(fields, name).strip()
    try:
        return int(text)
    except ValueError:
        raise MalformedMessage(f"field {name} is not an integer: {text[:40]!r}") from None


LEVEL_FIELDS = ("tp_price", "sl_price", "tp_ticks", "sl_ticks")


def _level(fields: ReadFields, name: str) -> Decimal | None:
    value = _decimal(fields, name)
    if value is not None and value <= 0:
        raise MalformedMessage(f"field {name} must be positive")
    return value


def _ticks(fields: ReadFields, name: str) -> int | None:
    if not _text(fields, name).strip():
        return None
    value = _int(fields, name)
    if value < 1:
        raise MalformedMessage(f"field {name} must be a whole number of at least 1")
    return value


def _opt(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class SignalMessage:
    signal_id: str
    recorder_id: int
    action: str | None  # buy | sell | close | update, or None for a target signal
    ticker: str
    symbol: str
    price: Decimal | None
    qty: Decimal | None
    position_size: Decimal | None
    market_position: str | None
    received_at: int  # epoch ms
    raw: str
    # Levels for the position the signal opens or holds (contract §3b); on the stream only
    # when given.
    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    tp_ticks: int | None = None
    sl_ticks: int | None = None
    # A test alert (the webhook's `test: true`): the engine records it and trades nothing.
    test: bool = False

    def to_fields(self) -> dict[str, str]:
        # Read field by field: `asdict` deep-copies every value, a tenth of the gateway's own
        # work per webhook in the bench's profile (docs/operations.md).
        out = {}
        for name in SIGNAL_FIELD_NAMES:
            value = getattr(self, name)
            if value is not None or name not in LEVEL_FIELDS:
                out[name] = _opt(value)
        if self.test:
            out["test"] = "1"
        return out

    @classmethod
    def from_fields(cls, fields: ReadFields) -> SignalMessage:
        signal_id = _text(fields, "signal_id").strip()
        if not signal_id:
            raise MalformedMessage("field signal_id is missing")
        action = _text(fields, "action").strip().lower() or None
        if action not in (None, "buy", "sell", "close", "update"):
            raise MalformedMessage(
                f"field action must be buy, sell, close or update, not {action!r}"
            )
        market_position = _text(fields, "market_position").strip().lower() or None
        if market_position not in (None, "long", "short", "flat"):
            raise MalformedMessage(
                f"field market_position must be long, short or flat, not {market_position!r}"
            )
        symbol = _text(fields, "symbol").strip()
        if not symbol:
            raise MalformedMessage("field symbol is missing")
        qty = _decimal(fields, "qty")
        if qty is not None and qty <= 0:
            raise MalformedMessage("field qty must be positive")
        position_size = _decimal(fields, "position_size")
        if action is None and position_size is None and market_position is None:
            raise MalformedMessage("the entry has neither an action nor a target position")
        return cls(
            signal_id=signal_id,
            recorder_id=_int(fields, "recorder_id"),
            action=action,
            ticker=_text(fields, "ticker"),
            symbol=symbol,
            price=_decimal(fields, "price"),
            qty=qty,
            position_size=position_size,
            market_position=market_position,
            received_at=_int(fields, "received_at"),
            raw=_text(fields, "raw"),
            tp_price=_level(fields, "tp_price"),
            sl_price=_level(fields, "sl_price"),
            tp_ticks=_ticks(fields, "tp_ticks"),
            sl_ticks=_ticks(fields, "sl_ticks"),
            test=_text(fields, "test").strip() == "1",
        )


# SignalMessage's fields in order, as they go on the stream (`test` only when true).
SIGNAL_FIELD_NAMES = tuple(f.name for f in fields(SignalMessage) if f.name != "test")


@dataclass(frozen=True)
class TickMessage:
    symbol: str
    price: Decimal
    ts: int  # epoch ms, when the feed received it
    source: str = ""
    delayed: bool = False

    def to_fields(self) -> dict[str, str]:
        fields = {
            "symbol": self.symbol,
            "price": str(self.price),
            "ts": str(self.ts),
            "source": self.source,
        }
        if self.delayed:
            fields["delayed"] = "1"
        return fields

    @classmethod
    def from_fields(cls, fields: ReadFields) -> TickMessage:
        symbol = _text(fields, "symbol").strip()
        if not symbol:
            raise MalformedMessage("field symbol is missing")
        price = _decimal(fields, "price", required=True)
        assert price is not None
        if price <= 0:
            raise MalformedMessage("field price must be positive")
        return cls(
            symbol=symbol,
            price=price,
            ts=_int(fields, "ts"),
            source=_text(fields, "source"),
            delayed=_text(fields, "delayed").strip() in {"1", "true"},
        )


DELETE_RECORDER = "delete_recorder"  # its signals, positions (and fills), then the recorder
RESET_HISTORY = "reset_history"  # its signals and closed positions; open positions stay
COMMAND_KINDS = (DELETE_RECORDER, RESET_HISTORY)


@dataclass(frozen=True)
class EngineCommand:
    """A change to the engine's tables asked for by the UI; answered on `jt:events` with the same
    `command_id` once committed."""

    command_id: str
    kind: str  # one of COMMAND_KINDS
    recorder_id: int
    user_id: int  # the recorder's owner, as the UI checked it

    def to_fields(self) -> dict[str, str]:
        return {k: _opt(v) for k, v in asdict(self).items()}

    @classmethod
    def from_fields(cls, fields: ReadFields) -> EngineCommand:
        command_id = _text(fields, "command_id").strip()
        if not command_id:
            raise MalformedMessage("field command_id is missing")
        kind = _text(fields, "kind").strip()
        if kind not in COMMAND_KINDS:
            raise MalformedMessage(f"field kind must be one of {', '.join(COMMAND_KINDS)}")
        return cls(command_id, kind, _int(fields, "recorder_id"), _int(fields, "user_id"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def event_fields(event_type: str, data: Mapping[str, Any]) -> dict[str, str]:
    return {
        "type": event_type,
        "data": json.dumps(data, default=_json_default, separators=(",", ":")),
    }


def publish_event(
    client: redis.Redis, stream: str, event_type: str, data: Mapping[str, Any]
) -> None:
    add(client, stream, event_fields(event_type, data), maxlen=EVENTS_MAXLEN)


def add(
    client: redis.Redis, stream: str, fields: Mapping[str, str], maxlen: int | None = None
) -> bytes | str:
    """XADD `fields` to `stream` (trimmed approximately to `maxlen` when given); the entry's id,
    or on a pipeline the pipeline itself."""
    # redis-py#2917: xadd types its fields as an invariant dict, which dict[str, str] is not;
    # it only reads them.
    entry = cast("dict[FieldT, EncodableT]", fields)
    return client.xadd(stream, entry, maxlen=maxlen, approximate=True)


def set_hash(client: redis.Redis, key: str, mapping: Mapping[str, str | int]) -> None:
    """HSET every field of `mapping` on the hash `key`, on a client or a pipeline."""
    # redis-py#2917: hset's mapping has an invariant key type, which str is not.
    client.hset(key, mapping=cast("Mapping[FieldT, EncodableT]", mapping))


def read_entries(reply: object) -> list[Entry]:
    """The entries of an XREAD/XREADGROUP reply (from a client with decode_responses), all
    streams together, in order."""
    # redis-py types the reply for RESP2 and RESP3, bytes or str: ours is RESP2, decoded.
    return [entry for _, entries in cast(StreamReply, reply or []) for entry in entries]


def read_hash(client: redis.Redis, key: str) -> dict[str, str]:
    """HGETALL of `key`, from a client with decode_responses."""
    return cast("dict[str, str]", client.hgetall(key))


def ensure_group(client: redis.Redis, stream: str, group: str, start: str = "0") -> None:
    """Create the consumer group (and the stream) if missing; reading starts at `start`: the
    beginning ("0"), or what is written from now on ("$")."""
    try:
        client.xgroup_create(stream, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def keep_consuming(
    group_setup: Callable[[], None],
    step: Callable[[], object],
    stop: threading.Event,
    log: logging.Logger,
    what: str,
) -> None:
    """Run a consumer until `stop`: set its group up, then `step` again and again. Redis away or
    the group gone (NOGROUP) pauses it with a capped back-off and sets it up again; any other
    error is logged and retried the same way, so the consumer never dies."""
    failures = 0
    while not stop.is_set():
        try:
            group_setup()
            while not stop.is_set():
                step()
                failures = 0
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            log.warning(f"{what} paused", extra={"kv": {"error": repr(exc)[:200]}})
        except Exception:
            log.exception(f"{what} failed; retrying")
        stop.wait(capped_exponential(failures, 0.5, 10.0))
        failures += 1
