"""Request bodies as pydantic models, and their errors turned into one plain sentence (plus one
sentence per field, so a form can show each beside its input).

Types are strict where JSON has the right type (a flag must be true/false, a tick count a whole
number), because a trading setting silently coerced from `"yes"` or `1.5` is worse than an error.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from flask import current_app, request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from libs.common.authenticator import BadSecret, normalize_secret
from services.ui.errors import BadRequest, ValidationFailed

M = TypeVar("M", bound=BaseModel)

Name = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=100)
]
# NUMERIC(18, 6) in the database: up to 12 whole digits and 6 decimals.
Quantity = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]
Ticks = Annotated[StrictInt, Field(ge=1, le=1_000_000)]

FIELD_RULES = {
    "name": "name must be text of 1 to 100 characters, not blank",
    "default_qty": "default_qty must be a positive number",
    "max_qty": "max_qty must be a positive number of contracts",
    "tp_ticks": "tp_ticks must be null (no take-profit) or a whole number of at least 1",
    "sl_ticks": "sl_ticks must be null (no stop-loss) or a whole number of at least 1",
    "on_opposite": 'on_opposite must be "reverse" or "close"',
    "allow_dca": "allow_dca must be true or false",
    "enabled": "enabled must be true or false",
    "allow_delayed_exits": "allow_delayed_exits must be true or false",
    "exits": "exits must be an exit plan object (stop, targets, breakeven, trail) or null",
    "sessionid": "sessionid must be the value of the sessionid cookie (no spaces or semicolons)",
    "sessionid_sign": "sessionid_sign must be the value of the sessionid_sign cookie, or null",
    "username": "username must be the TradingView username or e-mail, not empty",
    "password": "password must be the TradingView password, not empty",
    "totp_secret": "totp_secret must be the base32 key of the authenticator app (letters A-Z and "
    "digits 2-7, spaces allowed), at least 16 characters",
    "kind": 'kind must be "webhook", "discord", "telegram" or "email"',
    "events": "events must be a list of at least one of fill, rejection, risk_lock, risk_breach, "
    "broker_lockout, broker_penalty, feed_delayed, feed_down, feed_signin_failed, "
    "reconcile_difference, daily_summary",
}
# Which pydantic error types get a more precise sentence than the field's rule.
PRECISE = {
    "decimal_max_places": "{field} must have at most 6 decimal places",
    "decimal_max_digits": "{field} must have at most 12 whole digits",
    "decimal_whole_digits": "{field} must have at most 12 whole digits",
    "less_than_equal": "{field} must be at most {le}",
}


class RecorderFields(BaseModel):
    """Every recorder setting with its default; also the body of a partial update (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: Name = "Recorder"
    default_qty: Quantity = Decimal(1)
    max_qty: Quantity = Field(
        Decimal(100),
        description="the most contracts one signal may carry (at most MAX_SIGNAL_QTY); "
        "the gateway answers 422 above it",
    )
    tp_ticks: Ticks | None = Field(None, description="take-profit distance in ticks; null for none")
    sl_ticks: Ticks | None = Field(None, description="stop-loss distance in ticks; null for none")
    on_opposite: Literal["reverse", "close"] = "reverse"
    allow_dca: StrictBool = True
    enabled: StrictBool = True
    allow_delayed_exits: StrictBool = Field(
        False,
        description="take TP/SL exits on delayed quotes (TradingView serves CME 10 minutes late)",
    )
    exits: dict[str, Any] | None = Field(
        None,
        description="exit plan (several targets, break-even, trailing); replaces tp/sl_ticks",
    )


# A cookie value as a browser shows it: printable, no separators that would split the header.
CookieValue = Annotated[
    str,
    StringConstraints(
        strict=True, strip_whitespace=True, min_length=1, max_length=1024, pattern=r"^[^\s;,]+$"
    ),
]


class TradingViewCookies(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sessionid: CookieValue
    sessionid_sign: CookieValue | None = None


def _authenticator_key(value: str) -> str:
    try:
        return normalize_secret(value)
    except BadSecret as exc:
        raise ValueError(str(exc)) from None  # its sentence never repeats the key


class TradingViewCredentialsBody(BaseModel):
    """The feed's TradingView sign-in; the key is kept in the form codes are computed from."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    username: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=200)
    ]
    # Not stripped: a password may begin or end with a space. Blank is refused all the same.
    password: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1024)]
    totp_secret: Annotated[
        str, StringConstraints(strict=True, max_length=256), AfterValidator(_authenticator_key)
    ]

    @field_validator("password")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("password is blank")
        return value


class RecorderCreate(RecorderFields):
    name: Name


class RecorderUpdate(RecorderFields):
    """Only the fields present in the body change."""


def _rule(error: ErrorDetails) -> str:
    field = str(error["loc"][0])
    if error["type"] == "missing":
        return f"{field} is required"
    if error["type"] in PRECISE:
        return PRECISE[error["type"]].format(field=field, **error.get("ctx", {}))
    return FIELD_RULES.get(field, f"{field}: {error['msg']}")


def field_sentences(exc: PydanticValidationError) -> dict[str, str]:
    """Each body field that failed with its own sentence, for a form to show beside its input.
    Sentences start with the field name as the client spells it, so no capital letter."""
    sentences: dict[str, str] = {}
    for error in exc.errors():
        if not error["loc"]:
            continue
        field = str(error["loc"][0])
        if field not in sentences:
            unknown = error["type"] == "extra_forbidden"
            sentences[field] = (f"unknown field: {field}" if unknown else _rule(error)) + "."
    return sentences


def plain_sentence(exc: PydanticValidationError) -> str:
    unknown = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden"]
    sentences = []
    if unknown:
        sentences.append(
            "unknown field" + ("s: " if len(unknown) > 1 else ": ") + ", ".join(unknown)
        )
    for field, sentence in field_sentences(exc).items():
        if field not in unknown:
            sentences.append(sentence.removesuffix("."))
    return "; ".join(sentences or ["the request body is not valid"]) + "."


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, whatever the Content-Type (like the webhook)."""
    data = request.get_data(cache=True)
    if not data.strip():
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        body = current_app.json.loads(data)
    except ValueError as exc:  # a JSONDecodeError, bytes that are not UTF-8, or too deep
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def parse(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except PydanticValidationError as exc:
        raise ValidationFailed(plain_sentence(exc), field_sentences(exc)) from None
