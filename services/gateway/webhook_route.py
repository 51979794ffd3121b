"""`POST /webhook/<token>`, answered in front of Flask: the one address that must be fast.

Flask's request context, routing, `after_request` hooks and `jsonify` cost about as much CPU as
everything else an accepted webhook needs (docs/operations.md, "What profiling found"), so this
WSGI callable answers webhook posts itself, with a bare werkzeug `Request`, and hands every other
request (`/healthz`, 404, 405 …) to the Flask app. What a webhook gets is unchanged: the same
checks, statuses, JSON answers, refused-webhook list, metrics and log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from prometheus_client import Counter
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from libs.common.streams import now_ms
from services.gateway import refused
from services.gateway.parsing import WebhookError
from services.gateway.redaction import redact_path
from services.gateway.spool import SpoolFull

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from services.gateway.app import Gateway, GatewayMetrics, Published

log = logging.getLogger("services.gateway.app")  # the gateway's request lines, as before

PREFIX = "/webhook/"
MAX_BODY_BYTES = 16 * 1024
TOO_LARGE = "The body is larger than 16 KiB."
REDIS_DOWN = "The signal could not be stored right now; TradingView will send it again."
SPOOL_FULL = (
    "The gateway is holding too many signals while Redis is unreachable; "
    "TradingView will send it again."
)
UNEXPECTED = "The gateway failed unexpectedly; TradingView will send the alert again."
HEADERS_JSON = "application/json"


class StaleToken(Exception):
    """The worker's copy of the token map was out of date for this token."""


@dataclass
class WebhookCall:
    """One webhook request as it goes: what its log line and refused-webhook record need."""

    request: Request
    remote: str | None
    received_at: int
    body: bytes | None = None  # once read
    signal_id: str = "-"
    recorder_id: int | str = "-"
    error: str | None = None


def answer_body(payload: dict[str, Any]) -> bytes:
    """The JSON answer, byte for byte as Flask's `jsonify` writes it outside debug mode."""
    return (json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n").encode()


def accepted_body(signal_id: str) -> bytes:
    """`answer_body` of a 202, written out: the answer nearly every webhook gets."""
    return b'{"ok":true,"signal_id":' + json.dumps(signal_id).encode() + b"}\n"


def decoded_path(environ: WSGIEnvironment) -> str:
    """PATH_INFO as werkzeug's `Request.path` reads it (WSGI's latin-1 → UTF-8)."""
    raw: str = environ.get("PATH_INFO") or ""
    return raw.encode("latin-1").decode("utf-8", "replace")


class WebhookRoute:
    """The app's WSGI entry (`app.wsgi_app`): webhook posts here, the rest to `flask_app`."""

    def __init__(
        self,
        flask_app: WSGIApplication,
        gateway: Gateway,
        metrics: GatewayMetrics,
        accept: Callable[[str, WebhookCall, bytes, Any, bool], Published],
        wake_drainer: Callable[[], None],
        sender: Callable[[Request], str | None],
    ):
        self._flask = flask_app
        self._gateway = gateway
        self._accept = accept
        self._wake_drainer = wake_drainer
        self._sender = sender
        self._accept_seconds = metrics.accept_seconds
        self._answers = metrics.answers
        self._answer_counts: dict[int, Counter] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            path = decoded_path(environ)
            token = path[len(PREFIX) :]
            if path.startswith(PREFIX) and token and "/" not in token:
                return self.answer(token, path, environ, start_response)
        return self._flask(environ, start_response)

    def answer(
        self, token: str, path: str, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        # One byte over the limit: a chunked body is cut at this length without an error, so
        # reading one byte more is how `read_body` tells "exactly 16 KiB" from "longer".
        request.max_content_length = MAX_BODY_BYTES + 1
        call = WebhookCall(request, self._sender(request), now_ms())
        try:
            status, payload = self.receive(token, call)
        except WebhookError as exc:
            if exc.status in refused.KEPT_STATUSES:
                self.keep_refusal(token, exc, call)
            status, payload = refusal(call, exc.status, exc.message)
        except HTTPException as exc:  # werkzeug's, from reading the body
            status = exc.code or 500
            message = TOO_LARGE if isinstance(exc, RequestEntityTooLarge) else f"{exc.name}."
            status, payload = refusal(call, status, message)
        except Exception as exc:
            # Logged here, without the request path (the token).
            log.error("unexpected error", exc_info=exc)
            status, payload = refusal(call, 500, UNEXPECTED)
        self.count(status, started)
        if log.isEnabledFor(logging.INFO):
            log_request(path, status, started, call)
        body = answer_body(payload) if status != 202 else accepted_body(call.signal_id)
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN')}",
            [("Content-Type", HEADERS_JSON), ("Content-Length", str(len(body)))],
        )
        return [body]

    def receive(self, token: str, call: WebhookCall) -> tuple[int, dict[str, Any]]:
        gateway = self._gateway
        try:
            recorder, confirmed = gateway.admit(token, call)
            body = read_body(call)
            try:
                published = self._accept(token, call, body, recorder, confirmed)
            except (StaleToken, WebhookError) as exc:
                if confirmed or (isinstance(exc, WebhookError) and exc.status == 429):
                    raise
                # Refused or stale by this worker's copy of the map: ask Redis's and go again.
                recorder, confirmed = gateway.admit(token, call, from_copy=False)
                published = self._accept(token, call, body, recorder, confirmed)
            if published.spooled:
                self._wake_drainer()
        except (redis.RedisError, StaleToken) as exc:  # the map changed under us twice: rare
            log.warning("redis error", extra={"kv": {"error": type(exc).__name__}})
            return refusal(call, 503, REDIS_DOWN)
        except SpoolFull:
            return refusal(call, 503, SPOOL_FULL)
        except OSError as exc:
            log.error("spool write failed", extra={"kv": {"error": type(exc).__name__}})
            return refusal(call, 503, REDIS_DOWN)
        call.signal_id = published.signal_id  # logged only once the signal is stored
        if published.duplicate:
            return 200, {"ok": True, "signal_id": published.signal_id, "duplicate": True}
        return 202, {"ok": True, "signal_id": published.signal_id}

    def keep_refusal(self, token: str, exc: WebhookError, call: WebhookCall) -> None:
        try:
            self._gateway.keep_refusal(token, exc, refused_body(call, exc.status), call.remote)
        except Exception as failure:  # keeping it is a courtesy; the answer stands regardless
            log.warning("refused webhook not kept", extra={"kv": {"error": type(failure).__name__}})

    def count(self, status: int, started: float) -> None:
        counter = self._answer_counts.get(status)
        if counter is None:
            counter = self._answer_counts[status] = self._answers.labels(code=str(status))
        counter.inc()
        if status == 202:
            self._accept_seconds.observe(time.perf_counter() - started)


def refusal(call: WebhookCall, status: int, message: str) -> tuple[int, dict[str, Any]]:
    call.error = message
    return status, {"ok": False, "error": message}


def read_body(call: WebhookCall) -> bytes:
    body = call.request.get_data(cache=False)
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(413, TOO_LARGE)
    call.body = body  # for the refused-webhook record, should the body be refused
    return body


def refused_body(call: WebhookCall, status: int) -> bytes | None:
    """The body of a refused request as read, or read now (a 404 is refused before reading it);
    None for a body over the limit, which is never kept."""
    if status == 413:
        return None
    if call.body is not None:
        return call.body
    body = call.request.get_data(cache=False)
    return None if len(body) > MAX_BODY_BYTES else body


def log_request(path: str, status: int, started: float, call: WebhookCall) -> None:
    """The webhook post's one log line: the token redacted, with its signal_id once stored."""
    kv = {
        "method": "POST",
        "path": redact_path(path),
        "status": status,
        "duration_ms": f"{(time.perf_counter() - started) * 1000:.1f}",
        "signal_id": call.signal_id,
        "recorder_id": call.recorder_id,
        "remote": call.remote,
    }
    if call.error is not None:
        kv["error"] = json.dumps(call.error, ensure_ascii=False)
    log.info("request", extra={"kv": kv})
