"""Connecting a Tradovate account on the broker simulator, as POST /api/accounts does, for tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from libs.common.config import Settings
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.rolls import front_contract
from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import Account, OrderIntent
from libs.common.tradovate.accounts import (
    login,
    new_credentials,
    seal_credentials,
    store_token,
    sync_subaccounts,
)

USER, PASSWORD = "jdoe", "correct horse"
FRONT = front_contract("MNQ", trade_date(datetime.now(UTC)))  # MNQZ6 in late November 2026


@dataclass(frozen=True)
class Connected:
    account_id: int
    subaccount_id: int
    broker_account_id: int
    account_spec: str


def connect_demo_account(
    settings: Settings, sessions: sessionmaker[Session], user_id: int
) -> Connected:
    creds = new_credentials(USER, PASSWORD, "JustTrades", "1.0", "1234", "sim-api-secret")
    client, token = login(settings, "demo", creds)
    box = SecretBox(settings.encryption_key)
    with db.transaction(sessions) as s:
        account = Account(
            user_id=user_id,
            broker="tradovate",
            name="demo",
            environment="demo",
            auth_method="credentials",
            credentials_encrypted=seal_credentials(box, creds),
        )
        store_token(box, account, token)
        s.add(account)
        s.flush()
        sync_subaccounts(s, account, client)
        s.flush()
        sub = account.subaccounts[0]
        return Connected(account.id, sub.id, sub.broker_account_id, sub.name)


def queue_intent(
    sessions: sessionmaker[Session],
    user_id: int,
    subaccount_id: int,
    kind: str,
    side: str,
    quantity: Decimal | int | str,
    **fields: Any,
) -> uuid.UUID:
    """An order intent as the engine writes it (kind, side, levels, `targets`), queued for the
    subaccount on the front MNQ contract; exits (closes, reduces, stop moves) at exit priority."""
    intent_id = uuid.uuid4()
    exit_kinds = ("close", "flatten", "reduce", "move_stop", "move_target")
    with db.transaction(sessions) as s:
        s.add(
            OrderIntent(
                id=intent_id,
                user_id=user_id,
                subaccount_id=subaccount_id,
                source="signal",
                kind=kind,
                symbol="MNQ",
                ticker=FRONT,
                side=side,
                quantity=Decimal(quantity),
                priority="exit" if kind in exit_kinds else "entry",
                status="queued",
                cl_ord_id=f"jt-{intent_id.hex[:24]}",
                **fields,
            )
        )
    return intent_id


def target_legs(entry_price: str, *legs: tuple[str, str]) -> dict[str, Any]:
    """`OrderIntent.targets` (docs/contract.md §3b) from (price, qty) pairs."""
    return {"entry_price": entry_price, "legs": [{"price": p, "qty": q} for p, q in legs]}
