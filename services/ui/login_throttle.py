"""Failed logins counted in Redis, so every UI process and worker sees the same counts.

Three fixed windows: one per (email, address) pair, small, against guessing one user's password;
one per email whatever the address, against the same guessing spread over many addresses; one per
address, larger, against trying many users from one place. A correct password does not get in
while any is full. A success clears its pair's count.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginLimits:
    per_account: int = 5  # failures per email and address
    per_address: int = 50  # failures per address, whatever the email
    window_s: int = 900
    per_email: int = 20  # failures per email, whatever the address


class TooManyLogins(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"Too many failed logins; try again in {_minutes(retry_after_s)}.")
        self.retry_after_s = retry_after_s


def _minutes(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


class LoginThrottle:
    def __init__(self, client: redis.Redis, prefix: str, limits: LoginLimits):
        self.client = client
        self.prefix = prefix
        self.limits = limits

    def _keys(self, email: str, address: str) -> tuple[str, str, str]:
        # The email is hashed so Redis never holds who tried to log in.
        who = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return (
            f"{self.prefix}login_failures:{who}:{address}",
            f"{self.prefix}login_failures:{address}",
            f"{self.prefix}login_failures:{who}",
        )

    def check(self, email: str, address: str) -> None:
        """Raise TooManyLogins while a window is full. Without Redis the check is skipped: a
        Redis outage must not lock everyone out (password hashing still slows guessing)."""
        keys = self._keys(email, address)
        try:
            pipe = self.client.pipeline(transaction=False)
            # One call per line: redis-py types each as the client's reply, not the pipeline.
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            account, account_ttl, by_address, address_ttl, by_email, email_ttl = pipe.execute()
        except redis.RedisError as exc:
            log.warning(
                "login throttle skipped: redis unreachable",
                extra={"kv": {"error": type(exc).__name__}},
            )
            return
        if int(account or 0) >= self.limits.per_account:
            raise TooManyLogins(max(1, int(account_ttl)))
        if int(by_address or 0) >= self.limits.per_address:
            raise TooManyLogins(max(1, int(address_ttl)))
        if int(by_email or 0) >= self.limits.per_email:
            raise TooManyLogins(max(1, int(email_ttl)))

    def failed(self, email: str, address: str) -> None:
        with contextlib.suppress(redis.RedisError):
            # A transaction per key: the three keys may sit on different Redis Cluster nodes.
            for key in self._keys(email, address):
                pipe = self.client.pipeline(transaction=True)
                # The window starts at the first failure (SET NX); later ones only count.
                pipe.set(key, 0, ex=self.limits.window_s, nx=True)
                pipe.incr(key)
                pipe.execute()

    def succeeded(self, email: str, address: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.delete(self._keys(email, address)[0])
