"""RQ jobs that run only our own functions.

RQ pickles job data by default and a job may name any function and callbacks, so whoever can
write to Redis could make a worker run what they like. Every queue of ours uses JSON job data
(`JSONSerializer`) and a subclass of `OwnJob` naming the functions its workers may run; anything
else fails before a name is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

__all__ = ["JSONSerializer", "OwnJob", "RefusedJob"]


class RefusedJob(Exception):
    """A queued job that is not ours to run: its function, an instance or a callback."""


class OwnJob(Job):
    """A job that runs only a function of `functions`, with no instance and no callbacks.

    The check reads the job's JSON; the callback properties never resolve a name (RQ would import
    it to call it)."""

    functions: ClassVar[frozenset[str]] = frozenset()
    _refusal_logged = False

    def refusal(self) -> str | None:
        """Why this job must not run, or None for one of ours."""
        try:
            name, instance = self.func_name, self.instance
        except DeserializationError:
            return "its data is not JSON"
        if name not in self.functions:
            return f"the function {name!r} is not one of this queue's jobs"
        if instance is not None:
            return "it names an instance"
        callbacks = (
            self._success_callback_name,
            self._failure_callback_name,
            self._stopped_callback_name,
        )
        if any(callbacks):
            return "it names a callback"
        return None

    def _deserialize_data(self) -> None:
        # RQ reads the function's name (for its process title) before `perform`; pickled data
        # fails there, so it is refused, and logged, here.
        try:
            super()._deserialize_data()  # type: ignore[no-untyped-call]  # untyped in RQ
        except DeserializationError:
            self._log_refusal("its data is not JSON", "(unreadable)")
            raise

    def _log_refusal(self, reason: str, function: str) -> None:
        if not self._refusal_logged:
            self._refusal_logged = True
            log.warning(
                "job refused",
                extra={"kv": {"job_id": self.id, "function": function, "reason": reason}},
            )

    @property
    def func(self) -> Callable[..., Any]:
        reason = self.refusal()
        if reason is not None:
            raise RefusedJob(f"job {self.id} refused: {reason}")
        return super().func  # type: ignore[no-any-return]

    def perform(self) -> Any:
        reason = self.refusal()
        if reason is not None:
            self._log_refusal(reason, str(self._func_name)[:200])  # the sender chose it
            raise RefusedJob(f"job {self.id} refused: {reason}")
        return super().perform()

    # RQ resolves these by importing the stored name; our jobs have none, so nothing is.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None
