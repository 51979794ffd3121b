"""The gateway's app: `POST /webhook/<token>` puts one signal on its recorder's partition's
signals stream (`jt:signals` with one partition); `/healthz`. Nothing else is served on this
public port (metrics have their own internal one: server.py). Webhook posts are answered by
webhook_route.py in front of Flask; the Gateway here admits and publishes them.

Checks run cheapest first and the body is parsed after the token is known; a well-formed signal
is then counted against its token's rate limit and stored in one Redis script. A worker admits a
token from its copy of the token map and the script checks it against Redis's, so an accepted
request costs one round trip and one AOF write. PostgreSQL is never touched on a request (the
token map lives in Redis). A webhook's errors map to a status and one sentence in
webhook_route.py, the rest of the app's in `_error`. A refused webhook (400, 413, 422, 429, or a
404 naming a recorder) is kept for the recorder's owner in one more round trip (refused.py); an
accepted one never is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

import redis
from flask import Flask, Response, g, jsonify, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request as BareRequest

from libs.common import partitions, recorder_tokens, redis_conn
from libs.common.config import Settings
from libs.common.metrics import LATENCY_BUCKETS
from libs.common.recorder_tokens import RecorderRef
from libs.common.storage.models import new_signal_id
from libs.common.streams import SignalMessage
from services.gateway import guards, refused
from services.gateway.parsing import WebhookError, parse_signal
from services.gateway.redaction import redact_path
from services.gateway.signal_store import LIMITED, SPOOL_ALERT_KEY, STALE, SignalStore
from services.gateway.spool import (
    KnownTokens,
    LocalAlertIds,
    LocalRateWindow,
    Spool,
    SpoolDrainer,
)
from services.gateway.token_sync import TokenMapSync
from services.gateway.webhook_route import (
    MAX_BODY_BYTES,
    TOO_LARGE,
    UNEXPECTED,
    StaleToken,
    WebhookCall,
    WebhookRoute,
)

log = logging.getLogger(__name__)

# Keeping a refused webhook may add at most about this much to its answer, even with Redis away.
REFUSALS_TIMEOUT_S = 0.25
# While Redis is down the gateway admits the tokens of its copy of the map, read from Redis
# before the outage or from PostgreSQL during it; only without a database is a miss unknowable.
UNKNOWN_WHILE_DOWN = (
    "The webhook token cannot be checked while Redis is unreachable; "
    "TradingView will send it again."
)


@dataclass(frozen=True)
class Published:
    """What became of an accepted signal."""

    signal_id: str  # the stored signal's, or for a repeat the first signal's
    spooled: bool = False  # on disk until Redis is back
    duplicate: bool = False  # a repeat of an alert id seen within the window: not stored


def connect_redis(url: str, timeout_s: float = 1.0, retries: int = 1) -> redis.Redis:
    """TradingView gives up after 3 s, so fail fast: short timeouts, one reconnect, no backoff.
    A `redis+cluster://` URL gives a cluster client (redis_conn)."""
    return redis_conn.connect(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries),
        health_check_interval=30,
    )


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    client: redis.Redis
    allowlist: tuple[guards.Network, ...]
    spool: Spool
    known: KnownTokens
    local_rate: LocalRateWindow
    signals: SignalStore
    alert_ids: LocalAlertIds
    # Reads the whole token map from PostgreSQL, for when Redis is down (None: no database).
    tokens_from_database: Callable[[], dict[str, RecorderRef]] | None = None
    # Keeps refused webhooks: shorter timeouts than `client`, so a refusal is never held up.
    refusals_client: redis.Redis | None = None

    def keep_refusal(
        self, token: str, refusal: WebhookError, body: bytes | None, remote: str | None
    ) -> None:
        """Keep a refused webhook on its recorder's list; a 404 on the recorders its `recorder`
        field names, marked as sent with an unknown token. `body` None: not read (413)."""
        client = self.refusals_client or self.client
        if refusal.status == 404:
            name = refused.named_recorder(body)
            recorders = [] if name is None else self.known.named(name, refused.MAX_NAMED)
        else:
            recorder = self._recorder_of(token, client)
            recorders = [] if recorder is None else [recorder]
        if not recorders:
            return
        record = refused.Refusal(
            at=refused.now_iso(),
            status=refusal.status,
            error=refusal.message,
            body=refused.body_text(body, token, lambda text: self.known.get(text) is not None),
            remote=remote,
            unknown_token=refusal.status == 404,
        )
        recorder_ids = [r.recorder_id for r in recorders]
        refused.keep(client, self.settings.stream_prefix, recorder_ids, record)

    def _recorder_of(self, token: str, client: redis.Redis) -> RecorderRef | None:
        """The token's recorder from this worker's copy, else from Redis (None if it fails)."""
        recorder = self.known.get(token)
        if recorder is not None or not guards.well_formed_token(token):
            return recorder
        try:
            return recorder_tokens.lookup(client, self.settings, token)
        except redis.RedisError:
            return None

    def admit(
        self, token: str, call: WebhookCall, *, from_copy: bool = True
    ) -> tuple[RecorderRef, bool]:
        """The recorder the request is for, once address, size and token allow it, and whether
        it was read from Redis just now. `from_copy`: take it from this worker's copy of the map
        when the copy has the token; the store script then checks it against Redis's map."""
        s = self.settings
        if not guards.address_allowed(call.remote, self.allowlist):
            raise WebhookError(403, "This address may not send webhooks.")
        if (call.request.content_length or 0) > MAX_BODY_BYTES:
            raise WebhookError(413, TOO_LARGE)
        # The map is keyed by the token's SHA-256: how long a lookup takes says nothing about how
        # close a guess came to a real token, so there is no timing to leak it.
        if not guards.well_formed_token(token):
            raise WebhookError(404, "No recorder has this webhook token.")
        if from_copy and (copied := self.known.get(token)) is not None:
            return copied, False
        confirmed = True
        try:
            recorder = recorder_tokens.lookup(self.client, s, token)
            self.known.remember(token, recorder)
        except redis.RedisError:
            confirmed = False
            recorder = self.known.get(token)
            if recorder is None:  # a recorder made since our copy was taken? ask PostgreSQL
                answered = self.tokens_from_database is not None and self.known.reload(
                    self.tokens_from_database
                )
                recorder = self.known.get(token)
                if recorder is None and not answered:
                    # Not in our copy, and nothing could say it is unknown: not a 404.
                    raise WebhookError(503, UNKNOWN_WHILE_DOWN) from None
        if recorder is None:
            raise WebhookError(404, "No recorder has this webhook token.")
        return recorder, confirmed

    def _too_many(self) -> WebhookError:
        limit, window = self.settings.webhook_rate_limit, self.settings.webhook_rate_window_s
        return WebhookError(
            429, f"Too many signals for this webhook: at most {limit} every {window} seconds."
        )

    def publish(
        self,
        token: str,
        message: SignalMessage,
        unconfirmed: RecorderRef | None,
        alert_id: str | None = None,
    ) -> Published:
        """Count the signal against its token's rate limit and store it for the engine, in Redis
        or, while Redis is down, in the spool; a repeat of `alert_id` is neither. `unconfirmed`:
        the recorder the message was made for, from this worker's copy of the token map, stored
        only if Redis's map agrees.

        Raises StaleToken when Redis's map says otherwise (look the token up and parse again),
        WebhookError 429 past the limit, SpoolFull, or OSError when the spool cannot be written.
        """
        fields = message.to_fields()
        alert_key = self.signals.alert_key(token, alert_id, message.recorder_id)
        with self.spool.routing():
            # Behind spooled signals a new one waits its turn, or the engine would see it first.
            redis_up = True
            if self.spool.is_empty():
                try:
                    outcome = self.signals.store_within_limit(token, fields, unconfirmed, alert_key)
                    if isinstance(outcome, str):
                        return Published(outcome, duplicate=True)
                    if outcome == STALE:
                        self.known.remember(token, None)
                        raise StaleToken
                    if outcome == LIMITED:
                        raise self._too_many()
                    return Published(message.signal_id)
                except redis.RedisError as exc:
                    redis_up = False
                    kv = {"error": type(exc).__name__, "signal_id": message.signal_id}
                    log.warning("redis error, spooling", extra={"kv": kv})
            elif unconfirmed is not None:
                self._confirm(token, unconfirmed)
            first = self._seen(alert_key, message.signal_id, redis_up)
            if first is not None:
                return Published(first, duplicate=True)
            try:
                if not self._within_rate_limit(token, message.recorder_id, redis_up):
                    raise self._too_many()
                self.spool.put(
                    fields if alert_key is None else {**fields, SPOOL_ALERT_KEY: alert_key}
                )
            except BaseException:
                if alert_key is not None:
                    self.alert_ids.release(alert_key)
                raise
        return Published(message.signal_id, spooled=True)

    def _seen(self, alert_key: str | None, signal_id: str, redis_up: bool) -> str | None:
        """On the spool's path: the signal an alert id already stands for, from Redis when it
        answers, else from what this process spooled; otherwise the id is claimed for
        `signal_id`."""
        if alert_key is None:
            return None
        if redis_up:
            try:
                first = self.client.get(alert_key)
            except redis.RedisError:
                first = None
            if first is not None:
                return str(first)
        return self.alert_ids.claim(alert_key, signal_id)

    def _confirm(self, token: str, recorder: RecorderRef) -> None:
        """Raise StaleToken unless Redis's map has `recorder` for the token (or cannot say)."""
        try:
            current = recorder_tokens.lookup(self.client, self.settings, token)
        except redis.RedisError:
            return  # down: the copy is what the gateway goes by, as for any token meanwhile
        if current != recorder:
            self.known.remember(token, current)
            raise StaleToken

    def _within_rate_limit(self, token: str, recorder_id: int, redis_up: bool) -> bool:
        """Count one signal: in Redis, shared by every worker, or while it is down in this one."""
        s = self.settings
        if redis_up:
            limit, window = s.webhook_rate_limit, s.webhook_rate_window_s
            key = self.signals.rate_key(token, recorder_id)
            try:
                return guards.within_rate_limit(self.client, key, limit, window)
            except redis.RedisError:
                pass
        return self.local_rate.allow(token)

    def store(self, spooled: dict[str, str]) -> None:
        """The drainer's store (see SignalStore.store_spooled)."""
        self.signals.store_spooled(spooled)


@dataclass
class GatewayMetrics:
    """Answers by status code and how long an accepted signal took; one registry per app."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.answers = Counter(
            "jt_webhook_answers",
            "Webhook answers by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.accept_seconds = Histogram(
            "jt_webhook_accept_seconds",
            "Time to accept a signal (202).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, response: Response) -> Response:
        """Count an answer of the Flask app (never a 202: WebhookRoute.count observes those)."""
        if request.path == "/healthz":  # probes are not webhook answers
            return response
        self.answers.labels(code=str(response.status_code)).inc()
        return response


def _sender(req: BareRequest, settings: Settings) -> str | None:
    forwarded_for = req.headers.getlist("X-Forwarded-For")
    return guards.source_address(req.remote_addr, forwarded_for, settings.trust_proxy)


def _error(status: int, message: str) -> tuple[Response, int]:
    g.error = message
    return jsonify(ok=False, error=message), status


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    if isinstance(exc, RequestEntityTooLarge):
        return _error(413, TOO_LARGE)
    if exc.code == 404:
        return _error(
            404, "There is nothing at this address; webhooks go to POST /webhook/<token>."
        )
    if exc.code == 405:
        valid = getattr(exc, "valid_methods", None) or []
        allowed = ", ".join(m for m in valid if m not in ("HEAD", "OPTIONS"))
        return _error(
            405, f"This address does not accept {request.method}; use {allowed or 'POST'}."
        )
    return _error(exc.code or 500, f"{exc.name}.")


def _unexpected(exc: Exception) -> tuple[Response, int]:
    # Logged here rather than by Flask, whose message would carry the request path (the token).
    log.error("unexpected error", exc_info=exc)
    return _error(500, UNEXPECTED)


def _log_request(settings: Settings, response: Response) -> Response:
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    kv = {
        "method": request.method,
        "path": redact_path(request.path),
        "status": response.status_code,
        "duration_ms": f"{duration_ms:.1f}",
        "signal_id": "-",  # webhooks, which have these, are logged by webhook_route.py
        "recorder_id": "-",
        "remote": _sender(request, settings),
    }
    if "error" in g:
        kv["error"] = json.dumps(g.error, ensure_ascii=False)
    probe = request.path == "/healthz" and response.status_code == 200
    log.log(logging.DEBUG if probe else logging.INFO, "request", extra={"kv": kv})
    return response


def _refusals_client(url: str) -> redis.Redis:
    return connect_redis(url, REFUSALS_TIMEOUT_S, retries=0)


def _tokens_from_database(sessions: sessionmaker[Session]) -> dict[str, RecorderRef]:
    with sessions() as session:
        return recorder_tokens.token_map(session)


def _check_partitions(client: redis.Redis, settings: Settings) -> None:
    """Refuse to start (PartitionMismatch) when Redis records another ENGINE_PARTITIONS: the
    gateway writes each signal to its recorder's partition. With Redis down the count cannot be
    read; the gateway starts anyway and spools, and the drainer writes by the same count."""
    try:
        partitions.check(client, settings)
    except redis.RedisError as exc:
        kv = {"error": type(exc).__name__}
        log.warning("engine partitions not checked: redis unreachable", extra={"kv": kv})


def create_app(
    settings: Settings,
    redis_client: redis.Redis | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> Flask:
    """The WSGI app; with `sessions` it also fills the token map now and keeps it filled."""
    if redis_client is None and not settings.redis_url:
        raise ValueError("REDIS_URL must be set for the gateway")
    client = redis_client or connect_redis(settings.redis_url or "")
    _check_partitions(client, settings)
    gateway = Gateway(
        settings,
        client,
        guards.parse_allowlist(settings.webhook_ip_allowlist),
        Spool(settings.gateway_spool_dir, settings.gateway_spool_max),
        KnownTokens(settings.stream_prefix),
        LocalRateWindow(settings.webhook_rate_limit, settings.webhook_rate_window_s),
        SignalStore(client, settings),
        LocalAlertIds(settings.webhook_dedupe_window_s),
        None if sessions is None else partial(_tokens_from_database, sessions),
        # A client given by the caller (tests) keeps refusals too.
        None if redis_client is not None else _refusals_client(settings.redis_url or ""),
    )
    gateway.known.refresh(client, gateway.tokens_from_database)
    drainer = SpoolDrainer(
        gateway.spool,
        gateway.store,
        on_tick=lambda: gateway.known.refresh(client, gateway.tokens_from_database),
    )
    drainer.start()
    app = Flask(__name__)
    # One byte over the limit, as WebhookRoute reads webhook bodies (see there).
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    app.extensions["gateway"] = gateway
    app.extensions["spool_drainer"] = drainer
    if sessions is not None:
        sync = TokenMapSync(client, settings, sessions)
        sync.sync()
        sync.start()
        app.extensions["token_sync"] = sync

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    platform_max = Decimal(settings.max_signal_qty)

    def accept(
        token: str, call: WebhookCall, body: bytes, recorder: RecorderRef, confirmed: bool
    ) -> Published:
        call.recorder_id = recorder.recorder_id
        parsed = parse_signal(body, recorder, new_signal_id(), call.received_at, platform_max)
        unconfirmed = None if confirmed else recorder
        return gateway.publish(token, parsed.message, unconfirmed, parsed.alert_id)

    # Webhook posts are answered by WebhookRoute before Flask sees them; the rule is here so
    # that Flask answers other methods on the address with 405.
    app.add_url_rule("/webhook/<token>", endpoint="webhook", methods=["POST"])

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        # Degraded is still 200: with Redis down the gateway keeps accepting signals into the
        # spool, and a probe that restarted it would only interrupt that.
        spooled = gateway.spool.count()
        try:
            client.ping()
            synced = recorder_tokens.is_synced(client, settings)
            state = "ok"
        except redis.RedisError:
            state = "down"
        if state == "ok" and not spooled:
            return jsonify(ok=True, redis="ok", tokens_synced=synced), 200
        return jsonify(ok=True, status="degraded", redis=state, spooled=spooled), 200

    app.register_error_handler(WebhookError, lambda exc: _error(exc.status, exc.message))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)

    # No /metrics here: this port faces the internet. server.py serves the workers' metrics on
    # an internal port; in one process, `app.extensions["metrics"].registry` holds them.
    metrics = GatewayMetrics()
    app.extensions["metrics"] = metrics
    app.after_request(lambda response: _log_request(settings, metrics.observe(response)))
    app.wsgi_app = WebhookRoute(  # type: ignore[method-assign]
        app.wsgi_app,
        gateway,
        metrics,
        accept,
        drainer.wake,
        lambda req: _sender(req, settings),
    )
    return app
