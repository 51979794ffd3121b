"""One Tradovate request as the executor makes it: a slot from the broker user's shared limiter,
then the call; a penalty ticket pauses every worker of that user for p-time and the identical
request goes again with the ticket; a captcha, 423 or 429 pauses the user for an hour.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from libs.common.tradovate import client as tradovate
from services.executor.brokers import BrokerPaused
from services.executor.limiter import (
    CAPTCHA_PAUSE_S,
    LOCKOUT_PAUSE_S,
    BrokerLimiter,
    Penalty,
    Priority,
    SlotTimeout,
)

log = logging.getLogger("executor")

MAX_PENALTY_RETRIES = 3
WAIT_FOR_SLOT_S = 90.0  # a worker waits this long for budget; longer pauses put the intent back


class Caller:
    """One broker request: a slot from the shared limiter, then the call; penalties handled."""

    def __init__(
        self,
        limiter: BrokerLimiter,
        user: str,
        priority: Priority,
        alert: Callable[[str, str], None],
    ):
        self.limiter, self.user, self.priority, self.alert = limiter, user, priority, alert

    def __call__(
        self, fn: Callable[..., Any], *args: Any, ticket: bool = True, **kwargs: Any
    ) -> Any:
        p_ticket = None
        for _ in range(MAX_PENALTY_RETRIES + 1):
            self._slot()
            try:
                return fn(
                    *args, **kwargs, **({"p_ticket": p_ticket} if ticket and p_ticket else {})
                )
            except tradovate.PenaltyTicket as exc:
                if exc.captcha:
                    self._pause(
                        CAPTCHA_PAUSE_S,
                        "Tradovate asked for a captcha; requests for this user stop for an hour",
                    )
                self.limiter.apply_penalty(
                    self.user, Penalty(max(1, math.ceil(exc.wait_s)), "p-ticket", False, exc.ticket)
                )
                p_ticket = exc.ticket if ticket else None
                log.warning(
                    "tradovate penalty ticket",
                    extra={"kv": {"user": self.user, "wait_s": exc.wait_s}},
                )
            except tradovate.RateLimited as exc:
                self._pause(
                    LOCKOUT_PAUSE_S,
                    f"Tradovate locked this user out (HTTP {exc.status}); requests stop "
                    "for an hour",
                )
        pause = self.limiter.paused(self.user)
        raise BrokerPaused(
            "Tradovate kept answering with penalty tickets", (pause and pause.remaining_s) or 1.0
        )

    def _slot(self) -> None:
        pause = self.limiter.paused(self.user)
        if pause is not None and (pause.remaining_s is None or pause.remaining_s > WAIT_FOR_SLOT_S):
            raise BrokerPaused(pause.reason, pause.remaining_s or LOCKOUT_PAUSE_S)
        try:
            self.limiter.acquire_request_slot(self.user, self.priority, timeout_s=WAIT_FOR_SLOT_S)
        except SlotTimeout:
            raise BrokerPaused(
                "the request budget for this Tradovate user is used up for now", WAIT_FOR_SLOT_S
            ) from None

    def _pause(self, seconds: float, reason: str) -> None:
        self.limiter.record_penalty(self.user)
        self.limiter.pause(self.user, seconds, reason)
        self.alert(self.user, reason)
        raise BrokerPaused(reason, seconds)
