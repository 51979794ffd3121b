"""Browser logins kept on the server (table `login_sessions`), so that a login can end.

The signed cookie carries only a random login id; the table keeps its sha256. A request is
logged in while its row exists, has not ended (logout, a password change, "log out everywhere")
and has not expired, whatever the cookie says. The Socket.IO connections each login opened are
listed in Redis, so ending a login can close them too (services/ui/live.py).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import redis
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from libs.common.storage.db import transaction
from libs.common.storage.models import LoginSession, User

LIFETIME = timedelta(days=31)  # as long as Flask accepts the signed cookie
SEEN_EVERY = timedelta(minutes=1)  # one write a minute per login, not one per request
USER_AGENT_CHARS = 200
ADDRESS_CHARS = 64

# Why a login ended (column `ended_reason`).
LOGOUT = "logout"
PASSWORD_CHANGED = "password_changed"
LOGGED_OUT_EVERYWHERE = "logged_out_everywhere"
PASSWORD_RESET = "password_reset"  # `justtrades user password`
REPLACED = "replaced"  # the same browser logged in again


def new_login_id() -> str:
    return secrets.token_urlsafe(32)


def login_hash(login_id: str) -> str:
    """The row's key: a leaked table gives nobody a cookie."""
    return hashlib.sha256(login_id.encode()).hexdigest()


def start_login(s: Session, user_id: int, user_agent: str, address: str, now: datetime) -> str:
    """Record a new login; returns the id for the cookie (never stored)."""
    login_id = new_login_id()
    s.add(
        LoginSession(
            id_hash=login_hash(login_id),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
            user_agent=_printable(user_agent)[:USER_AGENT_CHARS],
            address=_printable(address)[:ADDRESS_CHARS],
        )
    )
    return login_id


def _printable(text: str) -> str:
    # Headers are the client's to write; PostgreSQL text cannot hold a NUL.
    return "".join(ch for ch in text if ch.isprintable())


def _live(now: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (LoginSession.ended_at.is_(None), LoginSession.expires_at > now)


def live_login(s: Session, login_id: str, now: datetime) -> tuple[LoginSession, User] | None:
    """The login and its user while the login is live; None once it ended or expired."""
    row = s.execute(
        select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.id_hash == login_hash(login_id), *_live(now))
    ).first()
    return None if row is None else (row[0], row[1])


def is_live(s: Session, id_hash: str, now: datetime) -> bool:
    found = s.scalar(
        select(LoginSession.id_hash).where(LoginSession.id_hash == id_hash, *_live(now))
    )
    return found is not None


def touch_login(sessions: sessionmaker[Session], id_hash: str, now: datetime) -> None:
    # The WHERE clause keeps concurrent requests of one login to a single write a minute.
    with transaction(sessions) as s:
        s.execute(
            update(LoginSession)
            .where(LoginSession.id_hash == id_hash)
            .where(
                or_(
                    LoginSession.last_seen_at <= now - SEEN_EVERY,
                    LoginSession.last_seen_at > now,  # a clock that went back
                )
            )
            .values(last_seen_at=now)
        )


def live_logins(s: Session, user_id: int, now: datetime) -> list[LoginSession]:
    """The user's live logins, the most recently seen first."""
    return list(
        s.scalars(
            select(LoginSession)
            .where(LoginSession.user_id == user_id, *_live(now))
            .order_by(LoginSession.last_seen_at.desc(), LoginSession.created_at.desc())
        )
    )


def end_logins(
    s: Session,
    user_id: int,
    reason: str,
    now: datetime,
    *,
    only: str | None = None,
    keep: str | None = None,
) -> list[str]:
    """End the user's live logins (just the one hashed `only`, or all but `keep`); returns the
    hashes ended, whose sockets the caller closes once this commits."""
    query = update(LoginSession).where(LoginSession.user_id == user_id, *_live(now))
    if only is not None:
        query = query.where(LoginSession.id_hash == only)
    if keep is not None:
        query = query.where(LoginSession.id_hash != keep)
    ended = s.execute(
        query.values(ended_at=now, ended_reason=reason).returning(LoginSession.id_hash)
    )
    return list(ended.scalars())


class LoginSockets:
    """Which Socket.IO connections (their sids) each login opened, in Redis so every UI
    process sees them. A set per login, expiring with the login at the latest."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.client = client
        self.prefix = prefix

    def key(self, id_hash: str) -> str:
        return f"{self.prefix}login_sockets:{id_hash}"

    def add(self, id_hash: str, sid: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self.key(id_hash), sid)
        pipe.expire(self.key(id_hash), int(LIFETIME.total_seconds()))
        pipe.execute()

    def remove(self, id_hash: str, sid: str) -> None:
        self.client.srem(self.key(id_hash), sid)

    def take(self, id_hashes: list[str]) -> list[str]:
        """The sids of these logins, forgetting them."""
        sids: set[str] = set()
        # A transaction per login: on a Redis Cluster their keys sit in different slots.
        for id_hash in id_hashes:
            pipe = self.client.pipeline(transaction=True)
            pipe.smembers(self.key(id_hash))
            pipe.delete(self.key(id_hash))
            found, _deleted = pipe.execute()
            sids.update(_text(sid) for sid in found)
        return sorted(sids)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
