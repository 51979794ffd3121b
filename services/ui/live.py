"""Live updates: Socket.IO rooms per user, and the relay that carries `jt:events` into them.

Every UI process runs Flask-SocketIO with the Redis message queue, so an emit from any process
reaches browsers connected to any other. The relay reads `jt:events` as one consumer of the
group `ui`: Redis hands each entry to exactly one consumer, whichever process that is, so several
UI processes never emit an event twice. Nothing is kept for a browser that is away; a page
reloads its state from the API when its socket reconnects.

A socket opened with a login cookie is listed under that login (login_sessions.LoginSockets);
when the login ends, its sockets are disconnected through the message queue, whichever process
holds them, and a reconnect with the old cookie is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import redis
import socketio as python_socketio
from flask import Flask, request, session
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, SocketIO, join_room

from libs.common import events, redis_conn, streams
from libs.common.config import Settings
from libs.common.storage.models import utcnow
from services.ui import context
from services.ui.login_sessions import LoginSockets, is_live, login_hash

log = logging.getLogger(__name__)

SOCKET_EVENT = "jt_event"  # what the browser listens to: {"type": ..., "data": {...}}
GROUP = "ui"
BROADCAST_TYPES = frozenset({events.PRICE_STATUS})  # system state every logged-in user may see
MAX_AGE_MS = 15_000  # older entries (a backlog from while no UI ran) are acknowledged unsent
CLAIM_IDLE_MS = 5_000  # entries a dead UI process took but never acknowledged
CLAIM_EVERY_S = 5.0
FORGET_CONSUMER_IDLE_MS = 3_600_000  # a consumer silent for an hour with nothing pending is gone
BLOCK_MS = 1_000
BATCH = 200
CHANNEL = "socketio"  # the message queue's pub/sub channel, under the stream prefix


def user_room(user_id: int | str) -> str:
    return f"user:{user_id}"


def init_live(app: Flask, settings: Settings, async_mode: str = "threading") -> SocketIO:
    """Attach Socket.IO to the app (served at /socket.io by the same gunicorn workers).

    `async_mode` is "gevent" in the server's gevent worker (services/ui/server.py) and
    "threading" in-process (tests); always named, so having gevent installed never switches it.
    """
    socketio = SocketIO(
        app,
        async_mode=async_mode,  # WebSockets through simple-websocket in either mode
        # One node of a cluster: PUBLISH reaches subscribers on every node.
        message_queue=redis_conn.pubsub_url(settings.redis_url),
        channel=settings.stream(CHANNEL),  # pub/sub ignores Redis databases; the prefix does not
        # Same-origin only (python-engineio's default when this is None): another site's page
        # must not open a socket with the user's cookie.
        cors_allowed_origins=None,
    )
    socketio.on_event("connect", _on_connect)
    socketio.on_event("disconnect", _on_disconnect)
    return socketio


def _on_connect(auth: object = None) -> None:
    # The handshake carries the session cookie (or an API key header); nobody else gets a socket.
    if not current_user.is_authenticated:
        raise ConnectionRefusedError("Log in first.")
    if current_user.via == "session" and not _listed_under_login(current_user.login_hash):
        raise ConnectionRefusedError("Log in first.")
    join_room(user_room(current_user.id))


def _login_sockets() -> LoginSockets:
    return LoginSockets(context.redis_client(), context.settings().stream_prefix)


def _listed_under_login(id_hash: str) -> bool:
    """List this socket under its login, then look again: a login ended in between either sees
    the socket in its list or is seen ended here."""
    sid = str(request.sid)  # type: ignore[attr-defined]  # set by Flask-SocketIO
    try:
        _login_sockets().add(id_hash, sid)
    except redis.RedisError as exc:
        # The message queue needs the same Redis: no live updates until it is back anyway.
        log.warning("socket not listed under its login", extra={"kv": {"error": repr(exc)}})
    return is_live(context.db(), id_hash, utcnow())


def _on_disconnect(reason: object = None) -> None:
    login_id = session.get("_user_id")  # Flask-Login's key; no database call on the way out
    if isinstance(login_id, str):
        with contextlib.suppress(redis.RedisError):
            _login_sockets().remove(login_hash(login_id), str(request.sid))  # type: ignore[attr-defined]


def close_login_sockets(socketio: SocketIO, id_hashes: list[str]) -> None:
    """Disconnect the sockets of these (ended) logins, in whichever UI process they are."""
    try:
        sids = _login_sockets().take(id_hashes)
    except redis.RedisError as exc:
        # The logins have ended all the same: their sockets are refused when they reconnect.
        log.warning("sockets of ended logins left open", extra={"kv": {"error": repr(exc)}})
        return
    for sid in sids:
        socketio.server.disconnect(sid, namespace="/")


class _QueueFromOutside(python_socketio.RedisManager):
    """The message queue written from outside any UI process (the CLI): there is no local
    server to disconnect from, only the UI processes that hold the sockets."""

    def _handle_disconnect(self, message: dict) -> None:
        return None


def close_login_sockets_from_outside(
    settings: Settings, client: redis.Redis, id_hashes: list[str]
) -> int:
    """`close_login_sockets` for a process without Socket.IO; returns how many were asked."""
    sids = LoginSockets(client, settings.stream_prefix).take(id_hashes)
    if sids:
        queue = _QueueFromOutside(
            redis_conn.pubsub_url(settings.redis_url or ""),
            channel=settings.stream(CHANNEL),
            write_only=True,
        )
        for sid in sids:
            queue.disconnect(sid, namespace="/")
    return len(sids)


@dataclass(frozen=True)
class Delivery:
    """Where one event goes: a user's room, everyone (room None), or nowhere (skip)."""

    room: str | None
    skip: bool = False


def route(event_type: str, data: object) -> Delivery:
    if not isinstance(data, dict):
        return Delivery(None, skip=True)
    user_id = data.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        return Delivery(user_room(user_id))
    if event_type in BROADCAST_TYPES:
        return Delivery(None)
    return Delivery(None, skip=True)  # whose it is cannot be told, so nobody gets it


def entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


class EventRelay:
    """One consumer of the group `ui` on `jt:events`; emits each fresh entry to its room."""

    def __init__(self, socketio: SocketIO, client: redis.Redis, stream: str, consumer: str):
        self.socketio = socketio
        self.redis = client
        self.stream = stream
        self.consumer = consumer
        self.stop_event = threading.Event()
        self.sent = 0
        self.thread: threading.Thread | None = None
        self._next_claim = 0.0

    def ensure_group(self) -> None:
        # "$": a new group starts with what happens from now on, not with old history.
        streams.ensure_group(self.redis, self.stream, GROUP, start="$")

    def run(self) -> None:
        # The relay is the pages' only live feed: it pauses and sets up again, never dies.
        streams.keep_consuming(self.ensure_group, self.step, self.stop_event, log, "event relay")

    def step(self) -> None:
        """Claim what a dead consumer left, then read and deliver one batch."""
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + CLAIM_EVERY_S
            self.claim_abandoned()
        answer = self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=BATCH, block=BLOCK_MS
        )
        if answer:
            self.deliver(streams.read_entries(answer))

    def deliver(self, entries: list[streams.Entry]) -> None:
        now = streams.now_ms()
        for entry_id, fields in entries:
            if now - entry_ms(entry_id) > MAX_AGE_MS:
                continue
            try:
                self._emit(entry_id, fields)
            except redis.RedisError:
                raise  # unacknowledged: claimed and sent again once Redis is back
            except Exception:
                log.exception("event not sent", extra={"kv": {"entry_id": entry_id}})
        if entries:
            self.redis.xack(self.stream, GROUP, *(entry_id for entry_id, _ in entries))

    def _emit(self, entry_id: str, fields: dict) -> None:
        event_type = str(fields.get("type", ""))
        try:
            data = json.loads(fields.get("data") or "{}")
        except ValueError:
            log.warning("event with unreadable data", extra={"kv": {"entry_id": entry_id}})
            return
        delivery = route(event_type, data)
        if delivery.skip:
            return
        payload = {"type": event_type, "data": data}
        if delivery.room is None:
            self.socketio.emit(SOCKET_EVENT, payload)
        else:
            self.socketio.emit(SOCKET_EVENT, payload, to=delivery.room)
        self.sent += 1

    def claim_abandoned(self) -> None:
        start = "0-0"
        while True:
            answer = self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, CLAIM_IDLE_MS, start_id=start, count=BATCH
            )
            start, claimed = answer[0], answer[1]
            self.deliver([e for e in claimed if e[1] is not None])
            trimmed = [e[0] for e in claimed if e[1] is None]  # Redis 6.2 still lists them
            if trimmed:
                self.redis.xack(self.stream, GROUP, *trimmed)
            if start in ("0-0", b"0-0"):
                break
        for info in self.redis.xinfo_consumers(self.stream, GROUP):
            if info["pending"] == 0 and info["idle"] > FORGET_CONSUMER_IDLE_MS:
                self.redis.xgroup_delconsumer(self.stream, GROUP, info["name"])

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="jt-event-relay", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 2 * BLOCK_MS / 1000) -> None:
        """Stop reading; waits out a blocked XREADGROUP, which would otherwise still take (and
        send) the next entry."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)


def start_relay(app: Flask, settings: Settings) -> EventRelay:
    """Start this process's relay thread (call once per process, after the fork)."""
    client = redis_conn.connect(settings.redis_url or "", decode_responses=True)
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    relay = EventRelay(
        app.extensions["socketio"], client, settings.stream(streams.EVENTS), consumer
    )
    relay.start()
    log.info("event relay started", extra={"kv": {"consumer": consumer, "group": GROUP}})
    return relay
