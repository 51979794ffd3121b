"""Who may call the simulated Tradovate and how often (docs/outside/tradovate.md §2, §3):
users, sessions and tokens, OAuth codes, p-tickets and 429 lockouts, and the request log."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

ANONYMOUS = "-"  # the log and throttle key of requests without a known user
LOCKED = "locked"  # what `admit` answers during a 429 lockout


@dataclass
class Session:
    """One login (§2.2): renewals add tokens to it, a third login evicts the oldest."""

    user: str
    device_id: str | None
    md_token: str
    opened: float
    tokens: dict[str, float] = field(default_factory=dict)  # access token → expiry (epoch s)


@dataclass(frozen=True)
class Penalty:
    """A p-ticket answer (§3.1); the ticket is honoured from `not_before` on."""

    ticket: str
    p_time: float
    captcha: bool
    not_before: float

    def body(self) -> dict[str, object]:
        return {"p-ticket": self.ticket, "p-time": self.p_time, "p-captcha": self.captcha}


@dataclass(frozen=True)
class OAuthCode:
    user: str
    client_id: str
    redirect_uri: str
    expires: float


class OAuthRefused(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


class Access:
    """Sessions and throttles of one simulated environment; time comes from `clock`."""

    def __init__(
        self,
        users: dict[str, str],
        *,
        clock: Callable[[], float],
        token_ttl_s: float,
        max_sessions: int = 2,
        oauth_clients: dict[str, str] | None = None,
        rate_limit_per_minute: int | None = None,
        lockout_per_minute: int | None = None,
        penalty_s: float = 5.0,
        lockout_s: float = 3600.0,
        login_failures_before_penalty: int | None = 5,
    ) -> None:
        self.passwords = dict(users)
        self.clock = clock
        self.token_ttl_s = token_ttl_s
        self.max_sessions = max_sessions
        self.oauth_clients = dict(oauth_clients or {})
        self.rate_limit_per_minute = rate_limit_per_minute  # soft limit: p-tickets
        self.lockout_per_minute = lockout_per_minute  # hard limit: 429 for `lockout_s`
        self.penalty_s = penalty_s
        self.lockout_s = lockout_s
        self.login_failures_before_penalty = login_failures_before_penalty
        self.requests_per_user: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self._sessions: list[Session] = []
        self._by_token: dict[str, Session] = {}
        self._md_tokens: dict[str, Session] = {}
        self._codes: dict[str, OAuthCode] = {}
        self._tickets: dict[str, tuple[str, Penalty]] = {}  # ticket → (key, penalty)
        self._locks: dict[str, tuple[float, float]] = {}  # key, ANONYMOUS = all → (until, span)
        self._login_failures: dict[str, list[float]] = defaultdict(list)
        self._forced: list[tuple[float, bool]] = []  # penalize_next: (p_time, captcha) each

    # -- sessions and tokens ---------------------------------------------------------------------

    def open_session(self, user: str, device_id: str | None = None) -> tuple[Session, str, float]:
        mine = [s for s in self._sessions if s.user == user]
        for old in mine[: max(0, len(mine) - self.max_sessions + 1)]:
            self._close(old)
        session = Session(user, device_id, secrets.token_urlsafe(24), self.clock())
        self._sessions.append(session)
        self._md_tokens[session.md_token] = session
        token, expiry = self._add_token(session)
        return session, token, expiry

    def renew(self, token: str) -> tuple[Session, str, float]:
        """A new token in the same session; the old one stays valid until its own expiry."""
        session = self.session_for(token)
        if session is None:
            raise KeyError("unknown or expired token")
        new, expiry = self._add_token(session)
        return session, new, expiry

    def session_for(self, token: str | None) -> Session | None:
        session = self._by_token.get(token or "")
        if session is None or session.tokens[token or ""] <= self.clock():
            return None
        return session

    def token_valid(self, token: str) -> bool:
        return self.session_for(token) is not None

    def md_token_valid(self, token: str) -> bool:
        """The md socket takes either token (§2.7)."""
        return self.token_valid(token) or token in self._md_tokens

    def expire_tokens(self, user: str | None = None) -> None:
        now = self.clock()
        for session in self._sessions:
            if user in (None, session.user):
                session.tokens = {t: min(e, now - 1) for t, e in session.tokens.items()}

    def _add_token(self, session: Session) -> tuple[str, float]:
        token, expiry = secrets.token_urlsafe(32), self.clock() + self.token_ttl_s
        session.tokens[token] = expiry
        self._by_token[token] = session
        return token, expiry

    def _close(self, session: Session) -> None:
        self._sessions.remove(session)
        self._md_tokens.pop(session.md_token, None)
        for token in session.tokens:
            self._by_token.pop(token, None)

    # -- credentials -----------------------------------------------------------------------------

    def password_ok(self, name: str, password: str) -> bool:
        known = self.passwords.get(name)
        ok = known is not None and secrets.compare_digest(known.encode(), password.encode())
        if not ok:
            self._login_failures[name].append(self.clock())
        return ok

    def login_penalty(self, name: str) -> Penalty | None:
        """After repeated bad passwords even good ones get a captcha ticket (§2.1)."""
        limit = self.login_failures_before_penalty
        recent = [t for t in self._login_failures[name] if t > self.clock() - 3600]
        self._login_failures[name] = recent
        if limit is None or len(recent) < limit:
            return None
        return self._penalty(name, 3600.0, captcha=True)

    # -- OAuth (§2.5) ----------------------------------------------------------------------------

    def issue_code(self, user: str, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(16)
        self._codes[code] = OAuthCode(user, client_id, redirect_uri, self.clock() + 300)
        return code

    def redeem_code(self, form: dict[str, str]) -> str:
        """The user a single-use code was issued for, or `OAuthRefused` with RFC 6749 errors."""
        client_id = form.get("client_id", "")
        secret = self.oauth_clients.get(client_id)
        given = str(form.get("client_secret", "")).encode()
        if secret is None or not secrets.compare_digest(secret.encode(), given):
            raise OAuthRefused("invalid_client", "Unknown client or wrong client secret")
        if form.get("grant_type") != "authorization_code":
            raise OAuthRefused("unsupported_grant_type", "Only authorization_code is supported")
        code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.expires < self.clock() or code.client_id != client_id:
            raise OAuthRefused("invalid_grant", "The code is unknown, used or expired")
        if code.redirect_uri != form.get("redirect_uri"):
            raise OAuthRefused("invalid_grant", "redirect_uri does not match the authorization")
        return code.user

    # -- throttles (§3) --------------------------------------------------------------------------

    def penalize_next(self, n: int, p_time: float, captcha: bool = False) -> None:
        self._forced.extend([(p_time, captcha)] * n)

    def lock_out(self, seconds: float, user: str | None = None) -> None:
        self._locks[user or ANONYMOUS] = (self.clock() + seconds, seconds)

    def admit(self, key: str, path: str, ticket: str | None) -> Penalty | str | None:
        """Log the request; None lets it through, else a Penalty or LOCKED (HTTP 429)."""
        now = self.clock()
        self.requests_per_user[key].append((now, path))
        for who in (key, ANONYMOUS):
            until, span = self._locks.get(who, (0.0, 0.0))
            if now < until:
                # Requests during a lockout extend it (§3.2): callers must really pause.
                self._locks[who] = (max(until, now + span), span)
                return LOCKED
        held = self._tickets.pop(ticket or "", None)
        if held and held[0] == key:
            penalty = held[1]
            return None if now >= penalty.not_before else self._penalty(key, penalty.p_time)
        if self._forced:
            p_time, captcha = self._forced.pop(0)
            return self._penalty(key, p_time, captcha)
        if self.rate_limit_per_minute is None and self.lockout_per_minute is None:
            return None
        recent = self.max_in_window(key, 60.0, until=now)
        if self.lockout_per_minute is not None and recent > self.lockout_per_minute:
            self.lock_out(self.lockout_s, key)
            return LOCKED
        if self.rate_limit_per_minute is not None and recent > self.rate_limit_per_minute:
            return self._penalty(key, self.penalty_s)
        return None

    def max_in_window(self, key: str, window_s: float = 60.0, until: float | None = None) -> int:
        """Requests of `key` in the window ending at `until`, or the most in any such window."""
        stamps = [t for t, _ in self.requests_per_user.get(key, [])]
        if until is not None:
            return sum(1 for t in stamps if until - window_s < t <= until)
        return max((sum(1 for u in stamps if t - window_s < u <= t) for t in stamps), default=0)

    def _penalty(self, key: str, p_time: float, captcha: bool = False) -> Penalty:
        penalty = Penalty(secrets.token_urlsafe(18), p_time, captcha, self.clock() + p_time)
        self._tickets[penalty.ticket] = (key, penalty)
        return penalty
