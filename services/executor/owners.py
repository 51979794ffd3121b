"""Whose an executor event is: the platform users who own an account, a subaccount or a broker
login, so that every `account.*` and `order.bracket_filled` event carries a `user_id`."""

from __future__ import annotations

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, streams
from libs.common.storage.models import Account, Subaccount
from libs.common.tradovate.accounts import limiter_user


def broker_user_owners(session: Session, broker_user: str) -> list[int]:
    """Every platform user with a Tradovate account on that login (its limiter key): a pause or
    lockout of the login stops all of them, so each must hear of it."""
    accounts = session.scalars(select(Account).where(Account.broker == "tradovate"))
    return sorted({a.user_id for a in accounts if limiter_user(a) == broker_user})


def subaccount_owner(session: Session, subaccount_id: int) -> int:
    """The user id of the account the subaccount belongs to (the session caches both rows)."""
    return session.get_one(Subaccount, subaccount_id).account.user_id


def publish_alert(
    client: redis.Redis,
    stream: str,
    sessions: sessionmaker[Session],
    broker_user: str,
    message: str,
) -> int:
    """`account.alert` once per owner of the broker login; returns how many were sent."""
    with sessions() as session:
        owners = broker_user_owners(session, broker_user)
    for user_id in owners:
        data: events.AlertData = {
            "user_id": user_id,
            "broker_user": broker_user,
            "message": message,
        }
        streams.publish_event(client, stream, events.ACCOUNT_ALERT, data)
    return len(owners)
