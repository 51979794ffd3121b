"""Account routes: broker connections and their subaccounts (paper, and Tradovate through
`tradovate_connect`). No answer carries a token or a credential."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from libs.common.serialize import iso
from libs.common.storage.models import Account, Subaccount
from services.ui.api.execution_schemas import PaperAccountCreate, TradovateAccountCreate
from services.ui.api.recorders import MAX_ID
from services.ui.api.schemas import json_object, parse
from services.ui.api.tradovate_connect import connect_with_credentials, rediscover
from services.ui.context import db, user_id
from services.ui.errors import NotFound

bp = Blueprint("accounts", __name__, url_prefix="/api/accounts")


def subaccount_dict(s: Subaccount) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "broker_account_id": s.broker_account_id,
        "active": s.active,
        "risk_status": s.risk_status,
        "refreshed_at": iso(s.refreshed_at),
    }


def account_dict(a: Account) -> dict[str, Any]:
    return {
        "id": a.id,
        "broker": a.broker,
        "name": a.name,
        "environment": a.environment,
        "auth_method": a.auth_method,
        "status": a.status,
        "status_message": a.status_message,
        "token_expires_at": iso(a.token_expires_at),
        "created_at": iso(a.created_at),
        "subaccounts": [subaccount_dict(s) for s in a.subaccounts],
    }


def owned_account(account_id: int) -> Account:
    account = db().get(Account, account_id) if 0 < account_id <= MAX_ID else None
    if account is None or account.user_id != user_id():
        raise NotFound("Account not found.")
    return account


def owned_subaccount(subaccount_id: int) -> Subaccount:
    sub = db().get(Subaccount, subaccount_id) if 0 < subaccount_id <= MAX_ID else None
    if sub is None or sub.account.user_id != user_id():
        raise NotFound("Subaccount not found.")
    return sub


@bp.post("")
def create_account() -> ResponseReturnValue:
    body = json_object()
    if body.get("broker") == "tradovate":
        account, created = connect_with_credentials(parse(TradovateAccountCreate, body))
        # Connecting a Tradovate user again renews that account rather than adding a twin.
        return jsonify(ok=True, **account_dict(account)), 201 if created else 200
    fields = parse(PaperAccountCreate, body)
    session = db()
    account = Account(user_id=user_id(), broker="paper", name=fields.name, status="connected")
    session.add(account)
    session.flush()
    session.add(
        Subaccount(
            account_id=account.id, name=f"PAPER{account.id:06d}", broker_account_id=account.id
        )
    )
    session.commit()
    session.refresh(account)
    return jsonify(ok=True, **account_dict(account)), 201


@bp.get("")
def list_accounts() -> ResponseReturnValue:
    accounts = db().scalars(
        select(Account).where(Account.user_id == user_id()).order_by(Account.id)
    )
    return jsonify(ok=True, accounts=[account_dict(a) for a in accounts])


@bp.get("/<int:account_id>")
def get_account(account_id: int) -> ResponseReturnValue:
    return jsonify(ok=True, **account_dict(owned_account(account_id)))


@bp.post("/<int:account_id>/refresh")
def refresh_account(account_id: int) -> ResponseReturnValue:
    """Ask the broker for the subaccounts again: new ones, closed ones, liquidate-only or locked."""
    account = owned_account(account_id)
    if account.broker == "tradovate":
        rediscover(account)
    return jsonify(ok=True, **account_dict(account))


@bp.delete("/<int:account_id>")
def delete_account(account_id: int) -> ResponseReturnValue:
    session = db()
    session.delete(owned_account(account_id))
    session.commit()
    return jsonify(ok=True, id=account_id)
