"""Turns a TradingView webhook body into a `SignalMessage` (docs/contract.md §2 "Webhook"); pure,
no I/O.

Every rejection is a `WebhookError` with an HTTP status and one plain sentence naming the field,
so a trader can fix the alert template from the error alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from libs.common.futures.instruments import CONTRACTS, TickerError, parse_ticker
from libs.common.recorder_tokens import RecorderRef
from libs.common.streams import SignalMessage

ACTIONS = {
    "buy": "buy",
    "long": "buy",
    "sell": "sell",
    "short": "sell",
    "close": "close",
    "exit": "close",
    "flat": "close",
    "flatten": "close",
    "update": "update",
}
MARKET_POSITIONS = ("long", "short", "flat")
QTY_FIELDS = ("contracts", "quantity", "qty")
LEVEL_FIELDS = ("tp_price", "sl_price", "tp_ticks", "sl_ticks")
MAX_TICKS = 1_000_000
KNOWN_FIELDS = {
    "action",
    "ticker",
    "price",
    "position_size",
    "market_position",
    "recorder",
    "id",
    "test",
    *QTY_FIELDS,
    *LEVEL_FIELDS,
}
# What storage holds (NUMERIC(30, 12) prices, NUMERIC(18, 6) sizes, 64-character tickers) and
# what a real alert can mean: anything outside is refused here, never stored and refused later.
MAX_MAGNITUDE = Decimal("1e12")
PRICE_PLACES = 12
QTY_PLACES = 6
MAX_SIGNAL_QTY = Decimal(1000)  # the platform cap's default; the setting MAX_SIGNAL_QTY rules
MAX_TICKER = 64
MAX_ALERT_ID = 128
EXAMPLE = '{"action": "buy", "ticker": "{{ticker}}"}'

_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_NO_VALUE = {"", "na", "nan"}  # what TradingView renders for a series without a value


class WebhookError(Exception):
    """A webhook that is refused: the HTTP status and the sentence that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _invalid(message: str) -> WebhookError:
    return WebhookError(422, message)


class _NonFinite(str):
    """`NaN` / `Infinity` as the body wrote them; refused where a field reads one."""


JsonObject = dict[str, Any]  # a JSON object as `_load` decodes it: numbers are Decimal


class _JsonObject(JsonObject):
    """A JSON object that remembers keys written twice (json keeps only the last one)."""

    repeated: set[str]


def _object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    obj.repeated = set()
    for key, value in pairs:
        if key in obj:
            obj.repeated.add(key)
        obj[key] = value
    return obj


# Built once: `json.loads` with arguments builds a decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(
    parse_float=Decimal,
    parse_int=Decimal,
    parse_constant=_NonFinite,
    object_pairs_hook=_object,
    strict=False,  # tolerate a raw newline inside a comment
)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Decimal):
        return str(value)
    text = str(value)
    return json.dumps(text[:40] + ("…" if len(text) > 40 else ""), ensure_ascii=False)


def _not_json(text: str, exc: json.JSONDecodeError) -> WebhookError:
    near = text[exc.pos : exc.pos + 30]
    # json stops inside `{{name}}` (after the first brace), so look for one spanning the stop.
    spans = (m for m in _PLACEHOLDER.finditer(text) if m.start() <= exc.pos < m.end())
    placeholder = next(spans, None)
    if placeholder:
        # An unquoted number placeholder (`"price": {{close}}`) names its field just before it.
        field = re.search(r'"([^"\\]{1,40})"\s*:\s*$', text[: placeholder.start()])
        if field:
            return WebhookError(
                422,
                f"The field {field[1]} holds the placeholder {placeholder[0]}, which TradingView "
                f"did not substitute; check the alert type and the spelling, which is "
                "case-sensitive.",
            )
        return WebhookError(
            400,
            f"The body is not JSON because TradingView did not substitute the placeholder "
            f"{placeholder[0]}; check the alert type and the spelling, which is case-sensitive.",
        )
    if not near.strip():
        return WebhookError(400, "The body is not JSON: it ends before the JSON is complete.")
    hint = ""
    if exc.msg == "Expecting value" and near[:1].isalpha():
        hint = '; text values need double quotes, as in "ticker": "{{ticker}}"'
    where = f"line {exc.lineno}, column {exc.colno}"
    return WebhookError(
        400, f"The body is not JSON: {exc.msg.lower()} at {where}, near {near!r}{hint}."
    )


def _load(body: bytes) -> tuple[str, _JsonObject]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookError(
            400, f"The body is not UTF-8 text (invalid byte at position {exc.start})."
        ) from None
    if "\x00" in text:  # PostgreSQL text cannot hold it, so the raw record could not be stored
        raise WebhookError(400, "The body contains a NUL character.")
    if not text.strip():
        raise WebhookError(
            400, f"The body is empty; the alert message must be a JSON object such as {EXAMPLE}."
        )
    try:
        data = _DECODER.decode(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise _not_json(text.lstrip("\ufeff"), exc) from None
    except RecursionError:
        raise WebhookError(
            400, "The body is not JSON that can be read: it nests too deeply."
        ) from None
    if not isinstance(data, _JsonObject):  # what object_pairs_hook makes of every JSON object
        raise WebhookError(
            400, f"The body must be a JSON object such as {EXAMPLE}, not {_kind(data)}."
        )
    return text, data


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "a number" if isinstance(value, Decimal) else "null" if value is None else _show(value)


def _field(obj: JsonObject, name: str) -> Any:
    """The field's value, refusing what TradingView leaves behind when it could not render one."""
    value = obj.get(name)
    if isinstance(value, _NonFinite):
        raise _invalid(
            f"The field {name} is {value}, not a finite number (TradingView writes NaN when "
            f"the series has no value on the bar)."
        )
    if isinstance(value, str):
        placeholder = _PLACEHOLDER.search(value)
        if placeholder:
            raise _invalid(
                f"The field {name} still holds the placeholder {placeholder[0]}, which TradingView "
                f"did not substitute; check the alert type (strategy placeholders work only in "
                f"alerts created on a strategy) and the spelling, which is case-sensitive."
            )
    return value


def _number(obj: JsonObject, name: str) -> Decimal | None:
    value = _field(obj, name)
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NO_VALUE:
            raise _invalid(
                f"The field {name} has no value ({_show(value)}), which is what TradingView sends "
                f"when the series has no value on the bar."
            )
        if not _PLAIN_NUMBER.fullmatch(text):
            raise _invalid(
                f"The field {name} must be a number such as 21034.25, not {_show(value)}."
            )
        value = Decimal(text)
    if not isinstance(value, Decimal):
        raise _invalid(f"The field {name} must be a number, not {_show(value)}.")
    # By its exponent, before any arithmetic: 1e999999999 would overflow the decimal context.
    if not value.is_zero() and value.adjusted() >= MAX_MAGNITUDE.adjusted():
        raise _invalid(f"The field {name} is too large ({value}).")
    return Decimal(0) if value.is_zero() else value  # no "-0" on the stream


def _places(value: Decimal) -> int:
    """Decimal places, trailing zeros aside; read from the digits, since `normalize()` would
    round a value like 1e-999999999 to 0 in the decimal context."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return 0
    kept = len(digits)
    while kept > 1 and digits[kept - 1] == 0:
        kept -= 1
        exponent += 1
    return max(0, -exponent)


def _positive(obj: JsonObject, name: str, places: int = PRICE_PLACES) -> Decimal | None:
    value = _number(obj, name)
    if value is not None and value <= 0:
        raise _invalid(f"The field {name} must be positive, not {value}.")
    if value is not None and _places(value) > places:
        raise _invalid(f"The field {name} has more than {places} decimal places ({value}).")
    return value


def _check_recorder(obj: JsonObject, recorder: RecorderRef) -> None:
    value = _field(obj, "recorder")
    if value is None:
        return
    if isinstance(value, Decimal) and value == recorder.recorder_id:
        return
    if isinstance(value, str):
        named = value.strip().casefold()
        if named in (recorder.name.strip().casefold(), str(recorder.recorder_id)):
            return
    raise _invalid(
        f"This webhook belongs to recorder {_show(recorder.name)}, but the field recorder names "
        f"{_show(value)}; check the webhook URL or the recorder field."
    )


def _ticker(obj: JsonObject) -> tuple[str, str]:
    value = _field(obj, "ticker")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _invalid(
            'The field ticker is missing; send the symbol, as in "ticker": "{{ticker}}".'
        )
    if not isinstance(value, str):
        raise _invalid(f'The field ticker must be text such as "MNQ1!", not {_show(value)}.')
    if len(value.strip()) > MAX_TICKER:
        raise _invalid(
            f"The field ticker is {len(value.strip())} characters long; a ticker has at most "
            f"{MAX_TICKER}, such as CME_MINI:MNQ1!."
        )
    try:
        return value.strip(), parse_ticker(value).root
    except TickerError:
        raise _invalid(
            f"The field ticker {_show(value)} is not a symbol; use a form such as MNQ1!, "
            f"CME_MINI:MNQ1! or MNQZ2025."
        ) from None


def _action(obj: JsonObject) -> str | None:
    value = _field(obj, "action")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    action = ACTIONS.get(value.strip().lower()) if isinstance(value, str) else None
    if action is None:
        raise _invalid(
            f"The field action must be buy, sell, close or update (or long, short, exit, flat, "
            f"flatten), "
            f"not {_show(value)}."
        )
    return action


def _market_position(obj: JsonObject) -> str | None:
    value = _field(obj, "market_position")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in MARKET_POSITIONS:
        return value.strip().lower()
    raise _invalid(f"The field market_position must be long, short or flat, not {_show(value)}.")


def _target(obj: JsonObject) -> tuple[Decimal | None, str | None]:
    """The target position of a Pine strategy alert (docs/contract.md §3), or (None, None)."""
    size, side = _number(obj, "position_size"), _market_position(obj)
    if side is None:
        if size is None:
            return None, None
        return size, "long" if size > 0 else "short" if size < 0 else "flat"
    if side == "flat":
        if size is not None and size != 0:
            raise _invalid(
                f"The field position_size is {size} but market_position is flat, whose size is 0."
            )
        return Decimal(0), side
    if size is None:
        raise _invalid(
            f"The field position_size is missing, so the target size of the {side} position "
            "is unknown."
        )
    if (side == "long") != (size > 0) or size == 0:
        sign = "above" if side == "long" else "below"
        raise _invalid(
            f"The field position_size is {size} but market_position is {side}, "
            f"whose size is {sign} 0."
        )
    return size, side


def _qty(obj: JsonObject) -> tuple[str, Decimal] | None:
    """`contracts`, `quantity` or `qty` and its value: the first present wins, and they must
    agree."""
    given = [
        (name, _positive(obj, name, QTY_PLACES)) for name in QTY_FIELDS if obj.get(name) is not None
    ]
    if not given:
        return None
    (first_name, first), *others = given
    for name, value in others:
        if value != first:
            raise _invalid(
                f"The fields {first_name} and {name} disagree ({first} and {value}); "
                "send only one of them."
            )
    return None if first is None else (first_name, first)


def _within_limits(name: str, size: Decimal, recorder: RecorderRef, platform_max: Decimal) -> None:
    """A size above the platform's cap or the recorder's `max_qty` is refused, naming the limit."""
    if abs(size) > platform_max:
        raise _invalid(
            f"The field {name} is {size}, above the {platform_max} contracts one signal may "
            "carry (MAX_SIGNAL_QTY)."
        )
    if abs(size) > recorder.max_qty:
        raise _invalid(
            f"The field {name} is {size}, above this recorder's max_qty of "
            f"{recorder.max_qty.normalize():f} contracts per signal; raise max_qty on the "
            "recorder or send less."
        )


def _alert_id(obj: JsonObject) -> str | None:
    """The alert's optional `id`, which marks a resent alert (docs/contract.md §2)."""
    value = _field(obj, "id")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid(
            f'The field id must be text such as "MNQ1!-5-1732900000", not {_show(value)}.'
        )
    if len(value) > MAX_ALERT_ID:
        raise _invalid(
            f"The field id is {len(value)} characters long; an alert id has at most {MAX_ALERT_ID}."
        )
    return value


def _test(obj: JsonObject) -> bool:
    """The optional `test` flag of a test alert: the engine records it and trades nothing."""
    if "test" not in obj:
        return False
    value = _field(obj, "test")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    shown = "null" if value is None else _show(value)
    raise _invalid(f"The field test must be true or false, not {shown}.")


def _ticks(obj: JsonObject, name: str) -> int | None:
    value = _number(obj, name)
    if value is None:
        return None
    if value < 1 or value != value.to_integral_value() or value > MAX_TICKS:
        raise _invalid(f"The field {name} must be a whole number of ticks from 1 to {MAX_TICKS}.")
    return int(value)


Levels = tuple[Decimal | None, Decimal | None, int | None, int | None]


def _levels(obj: JsonObject, action: str | None, side: str | None, price: Decimal | None) -> Levels:
    """tp_price, sl_price, tp_ticks, sl_ticks (docs/contract.md §3b), checked against each other
    and, for an entry with a price, against the side of the market they must be on."""
    tp_price, sl_price = _positive(obj, "tp_price"), _positive(obj, "sl_price")
    tp_ticks, sl_ticks = _ticks(obj, "tp_ticks"), _ticks(obj, "sl_ticks")
    for kind, absolute, ticks in (("tp", tp_price, tp_ticks), ("sl", sl_price, sl_ticks)):
        if absolute is not None and ticks is not None:
            raise _invalid(f"Send {kind}_price or {kind}_ticks, not both.")
    given = any(v is not None for v in (tp_price, sl_price, tp_ticks, sl_ticks))
    if action == "update" and not given:
        raise _invalid(
            "An update moves the open position's levels: send tp_price, sl_price, tp_ticks "
            "or sl_ticks."
        )
    if price is not None and side in ("long", "short"):
        long = side == "long"
        for name, level, above in (("tp_price", tp_price, long), ("sl_price", sl_price, not long)):
            if level is not None and ((level <= price) if above else (level >= price)):
                where = "above" if above else "below"
                raise _invalid(
                    f"The field {name} ({level}) must be {where} the price ({price}) for a "
                    f"{side} position."
                )
    return tp_price, sl_price, tp_ticks, sl_ticks


@dataclass(frozen=True)
class ParsedWebhook:
    message: SignalMessage
    alert_id: str | None  # the body's `id`: a second signal with it is a repeat


def parse_webhook(
    body: bytes,
    recorder: RecorderRef,
    signal_id: str,
    received_at_ms: int,
    platform_max: Decimal = MAX_SIGNAL_QTY,
) -> SignalMessage:
    """Validate one webhook body for `recorder`; raises `WebhookError` (400 or 422)."""
    return parse_signal(body, recorder, signal_id, received_at_ms, platform_max).message


def parse_signal(
    body: bytes,
    recorder: RecorderRef,
    signal_id: str,
    received_at_ms: int,
    platform_max: Decimal = MAX_SIGNAL_QTY,
) -> ParsedWebhook:
    """`parse_webhook` with the alert's `id`."""
    raw, obj = _load(body)
    repeated = sorted(obj.repeated & KNOWN_FIELDS)
    if repeated:
        raise _invalid(f"The field {repeated[0]} appears more than once; send it once.")
    _check_recorder(obj, recorder)
    ticker, symbol = _ticker(obj)
    action = _action(obj)
    position_size, market_position = _target(obj)
    if action is None and market_position is None:
        raise _invalid(
            "The field action is missing; send buy, sell or close, or the strategy's "
            "position_size and market_position."
        )
    alert_id = _alert_id(obj)
    test = _test(obj)
    named_qty = _qty(obj)
    qty = None if named_qty is None else named_qty[1]
    if symbol in CONTRACTS:  # futures trade whole contracts; a fraction is a broken template
        for name, size in (("qty", qty), ("position_size", position_size)):
            if size is not None and size != size.to_integral_value():
                raise _invalid(
                    f"The field {name} must be a whole number of {symbol} contracts, not {size}."
                )
    sizes = [named_qty] if named_qty else []
    for name, size in [*sizes, ("position_size", position_size)]:
        if size is not None:
            _within_limits(name, size, recorder, platform_max)
    price = _positive(obj, "price")
    side = {"buy": "long", "sell": "short"}.get(action or "", market_position)
    tp_price, sl_price, tp_ticks, sl_ticks = _levels(obj, action, side, price)
    message = SignalMessage(
        signal_id=signal_id,
        recorder_id=recorder.recorder_id,
        action=action,
        ticker=ticker,
        symbol=symbol,
        price=price,
        qty=qty,
        position_size=position_size,
        market_position=market_position,
        received_at=received_at_ms,
        raw=raw,
        tp_price=tp_price,
        sl_price=sl_price,
        tp_ticks=tp_ticks,
        sl_ticks=sl_ticks,
        test=test,
    )
    return ParsedWebhook(message, alert_id)
