"""Request bodies of the execution routes: accounts, traders, manual trades."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from libs.common.futures.instruments import MAX_ORDER_CONTRACTS
from services.ui.api.schemas import FIELD_RULES, Name

Clock = Annotated[str, StringConstraints(strict=True, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Multiplier = Annotated[
    Decimal, Field(gt=0, le=1000, max_digits=12, decimal_places=4, allow_inf_nan=False)
]
Money = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
Contracts = Annotated[StrictInt, Field(ge=1, le=MAX_ORDER_CONTRACTS)]
# A trader saved without a maximum gets this one: an unbounded trader is one bad alert away from
# an account-sized order.
DEFAULT_TRADER_MAX_CONTRACTS = 10

FIELD_RULES.update(
    {
        "broker": 'broker must be "paper" or "tradovate"',
        "recorder_id": "recorder_id must be the id of one of your recorders",
        "subaccount_id": "subaccount_id must be the id of one of your subaccounts",
        "multiplier": "multiplier must be a number above 0 and at most 1000",
        "max_contracts": "max_contracts must be a whole number from 1 to 10000 (default 10)",
        "daily_loss_limit": "daily_loss_limit must be null or a positive amount in USD",
        "window": 'window must be null or {"start": "HH:MM", "end": "HH:MM", '
        '"tz": "America/New_York"}',
    }
)


class PaperAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    broker: Literal["paper"]
    name: Name = "Paper"


# Tradovate's login fields (docs/outside/tradovate.md §2.1). Secrets are never stripped or echoed.
Word = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=100)
]
Secret = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
ApiKeyId = (
    Annotated[StrictInt, Field(ge=1)]
    | Annotated[str, StringConstraints(strict=True, pattern=r"^\d{1,18}$")]
)

FIELD_RULES.update(
    {
        "environment": 'environment must be "demo" or "live"',
        "username": "username must be your Tradovate user name",
        "password": "password must be your Tradovate password "
        "(or the API key's dedicated password)",
        "app_id": "app_id must be the name given to the API key in Tradovate",
        "app_version": "app_version must be null or text such as 1.0",
        "cid": "cid must be the API key's numeric id",
        "sec": "sec must be the API key's secret",
    }
)


class TradovateAccountCreate(BaseModel):
    # Pydantic would otherwise copy the password into its error text.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    broker: Literal["tradovate"]
    environment: Literal["demo", "live"]
    name: Name | None = Field(None, description="default: username@environment")
    username: Word
    password: Secret = Field(repr=False)
    app_id: Word
    app_version: Word | None = None
    cid: ApiKeyId
    sec: Secret = Field(repr=False)


class TradingWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Clock
    end: Clock
    tz: str = "America/New_York"


class TraderFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    multiplier: Multiplier = Decimal(1)
    enabled: StrictBool = True
    max_contracts: Contracts = DEFAULT_TRADER_MAX_CONTRACTS
    daily_loss_limit: Money | None = None
    window: TradingWindow | None = None


class TraderCreate(TraderFields):
    recorder_id: StrictInt
    subaccount_id: StrictInt


class TraderUpdate(TraderFields):
    """Only the fields present in the body change."""


Ticker = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=64)
]
Ticks = Annotated[StrictInt, Field(ge=1, le=100_000)]
Price = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=12, allow_inf_nan=False)]

FIELD_RULES.update(
    {
        "action": 'action must be "buy", "sell", "close" or "flatten"',
        "ticker": "ticker must name a contract, such as MNQ1! or MNQZ6",
        "quantity": "quantity must be a whole number of contracts from 1 to 10000",
        "order_type": 'order_type must be "market" or "limit"',
        "confirm": "confirm must be true or false",
        "limit_price": "limit_price must be a positive price",
        "tp_ticks": "tp_ticks must be null or a whole number of at least 1",
        "sl_ticks": "sl_ticks must be null or a whole number of at least 1",
        "copy": "copy must be true or false",
        "leader_subaccount_id": "leader_subaccount_id must be the id of one of your subaccounts",
        "followers": 'followers must be a list of {"subaccount_id": id, "multiplier": number, '
        '"inverted", "symbol_map", "max_contracts"}',
    }
)


class ManualTrade(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subaccount_id: StrictInt
    action: Literal["buy", "sell", "close", "flatten"]
    ticker: Ticker | None = None
    quantity: Contracts = 1
    order_type: Literal["market", "limit"] = "market"
    limit_price: Price | None = None
    tp_ticks: Ticks | None = None
    sl_ticks: Ticks | None = None
    # `copy` in JSON; renamed here because BaseModel.copy exists.
    copy_to_followers: StrictBool = Field(True, alias="copy")
    # Above the user's `manual_confirm_above`, an order is sent only with `confirm: true`.
    confirm: StrictBool = False


Root = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z0-9]{1,8}$")]

FIELD_RULES.update(
    {
        "inverted": "inverted must be true or false",
        "symbol_map": 'symbol_map must be null or {"leader root": "follower root"}, '
        'such as {"NQ": "MNQ"}',
        "realign": "realign must be true or false",
        "follow_risk_lock": "follow_risk_lock must be true or false",
    }
)


class Follower(BaseModel):
    """A follower of a copy group. In an update, the fields left out keep their values."""

    model_config = ConfigDict(extra="forbid")

    subaccount_id: StrictInt
    multiplier: Multiplier = Decimal(1)
    enabled: StrictBool = True
    inverted: StrictBool = Field(False, description="take the other side of each order")
    symbol_map: dict[Root, Root] | None = Field(
        None, max_length=50, description='trade another contract, e.g. {"NQ": "MNQ"}'
    )
    max_contracts: Contracts | None = Field(
        None, description="never hold more than this many contracts of a root"
    )


class CopyGroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = "Copy group"
    leader_subaccount_id: StrictInt
    followers: list[Follower] = Field(default_factory=list, max_length=100)
    enabled: StrictBool = True
    realign: StrictBool = Field(False, description="bring drifted followers back in step")
    follow_risk_lock: StrictBool = Field(
        False, description="lock and flatten the followers when the leader's risk desk locks it"
    )


class CopyGroupUpdate(BaseModel):
    """Only the fields present change; `followers`, when present, is the whole list (a follower
    left out leaves the group, a listed one keeps the fields it does not name)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    followers: list[Follower] | None = Field(None, max_length=100)
    enabled: StrictBool | None = None
    realign: StrictBool | None = None
    follow_risk_lock: StrictBool | None = None
