"""One reconnecting Tradovate WebSocket (docs/outside/tradovate.md §6.1–6.3): connect, authorize,
heartbeats, frames, silence, reconnect with back-off. The market-data source and the account sync
each supply only what differs: the URL and token, what follows authorization, what a message does.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import websocket

from libs.common.backoff import backoff_delay, quota_pause
from libs.common.tradovate.frames import (
    HEARTBEAT,
    Close,
    Event,
    FrameError,
    Messages,
    Open,
    Response,
    build_request,
    parse_frame,
)

log = logging.getLogger(__name__)

QUOTA_REASONS = frozenset({"ConnectionQuotaReached", "IPQuotaReached"})
_WAKE = object()  # put in the inbox to make the loop look at its timers (or at `stop`) at once
_CLOSED = object()  # put by a reader when its socket is gone

# Why a connection ended (`Ending.why`); a user's own reasons come back as it returned them.
UNREACHABLE = "unreachable"
CLOSED = "closed"
SILENT = "silent"
REFUSED = "token refused"
SHUTDOWN = "shutdown"
QUOTA = "quota"
STOPPED = "stopped"
ERROR = "error"


@dataclass(frozen=True)
class SocketTimings:
    heartbeat_s: float = 2.5  # the client's `[]` (§6.3), sent even while data streams in
    silence_s: float = 15.0  # no frame (or no authorize answer) for this long: the socket is dead
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    quota_backoff_s: float = 300.0  # after a shutdown for ConnectionQuotaReached / IPQuotaReached


@dataclass(frozen=True)
class Dial:
    """Where the next connection goes and the access token it authorizes with."""

    url: str
    token: str


@dataclass(frozen=True)
class Ending:
    """Why one connection (or one attempt at one) ended."""

    why: str
    detail: str = ""  # an exception's name, a close frame's code and reason, a shutdown's reason
    authorized: bool = False

    def __str__(self) -> str:
        return f"{self.why} ({self.detail})" if self.detail else self.why


@dataclass
class Connection:
    """One open socket: what the user sends on, and when it last heard or spoke."""

    ws: websocket.WebSocket
    token: str
    generation: int
    opened: float
    last_frame: float
    last_beat: float
    authorized: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))  # 0: authorize

    def send(self, text: str) -> None:
        # A failed send needs no handling here: the reader sees the socket go and ends the session.
        with contextlib.suppress(OSError, websocket.WebSocketException):
            self.ws.send(text)

    def request(self, endpoint: str, body: Any = None) -> int:
        """Send one request; its id, which the answer will carry."""
        request_id = next(self._ids)
        self.send(build_request(endpoint, request_id, "", body))
        return request_id


class SocketUser(Protocol):
    """What one kind of socket (market data, account) does with the session."""

    def dial(self) -> Dial | str:
        """The next connection's URL and token, or why there is none now (tried again later)."""

    def authorized(self, conn: Connection) -> None:
        """The token was accepted: subscribe, sync, ..."""

    def refused(self, conn: Connection, answer: Response) -> None:
        """The token was refused; the connection ends after this."""

    def on_messages(self, conn: Connection, messages: list[Response | Event]) -> str | None:
        """Answers and events of one frame (not authorize's, not `shutdown`); a reason ends it."""

    def next_due(self) -> float:
        """The monotonic time the user's next timer is due (`math.inf`: none)."""

    def tick(self, conn: Connection, now: float) -> str | None:
        """Run the timers that are due; a reason ends the connection."""

    def ended(self, ending: Ending) -> bool:
        """The connection is over; True when it went well enough to start the back-off afresh."""


class ReconnectingSocket:
    """Runs a user's connections one after the other until `stop` is set (`run` blocks)."""

    def __init__(
        self,
        user: SocketUser,
        timings: SocketTimings,
        stop: threading.Event,
        *,
        name: str,
        reader_name: str,
        rng: random.Random | None = None,
        logger: logging.Logger = log,
        log_kv: dict[str, Any] | None = None,
    ) -> None:
        self.user, self.timings, self.stop_event = user, timings, stop
        self.name, self.reader_name = name, reader_name  # for logs; for the reader threads
        self.rng = rng or random.Random()
        self.log, self.log_kv = logger, log_kv or {}  # the service's logger, and what to add
        self._inbox: queue.Queue[tuple[int | None, object]] = queue.Queue()
        self._generation = 0

    def wake(self) -> None:
        """Have the loop look at its timers (and at `stop`) now rather than when next due."""
        self._inbox.put((None, _WAKE))

    def run(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            try:
                dialed = self.user.dial()
                ending = Ending(dialed) if isinstance(dialed, str) else self._connect(dialed)
            except Exception:  # a bug met on one connection must not end the socket for good
                self.log.exception(f"{self.name} failed", extra={"kv": self.log_kv})
                ending = Ending(ERROR)
            if self.user.ended(ending):
                attempt = 0
            if self.stop_event.is_set():
                break
            if ending.why == QUOTA:
                wait = quota_pause(self.timings.quota_backoff_s, self.rng)
            else:  # jittered, so sockets dropped together do not return in step
                wait = backoff_delay(
                    attempt, self.timings.backoff_base_s, self.timings.backoff_max_s, self.rng
                )
                attempt += 1
            kv = {**self.log_kv, "why": str(ending), "in_s": round(wait, 2)}
            self.log.info(f"{self.name} reconnect", extra={"kv": kv})
            self.stop_event.wait(wait)

    # -- one connection --------------------------------------------------------------------------

    def _connect(self, dial: Dial) -> Ending:
        try:
            ws = websocket.create_connection(
                dial.url, timeout=min(10.0, self.timings.silence_s), enable_multithread=True
            )
        except (OSError, websocket.WebSocketException) as exc:
            kv = {**self.log_kv, "error": type(exc).__name__}
            self.log.warning(f"{self.name} connect failed", extra={"kv": kv})
            return Ending(UNREACHABLE, type(exc).__name__)
        ws.settimeout(None)  # the reader blocks; silence is judged by the loop, which shuts it
        self._generation += 1
        now = time.monotonic()
        conn = Connection(ws, dial.token, self._generation, now, now, now)
        threading.Thread(
            target=self._read, args=(ws, conn.generation), daemon=True, name=self.reader_name
        ).start()
        try:
            ending = self._serve(conn)
        finally:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.send_close()
            ws.shutdown()  # type: ignore[no-untyped-call]  # websocket-client leaves it untyped
        return Ending(ending.why, ending.detail, conn.authorized)

    def _read(self, ws: websocket.WebSocket, generation: int) -> None:
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self._inbox.put((generation, data.decode("utf-8", errors="replace")))
        except (OSError, websocket.WebSocketException, ValueError):
            pass
        self._inbox.put((generation, _CLOSED))

    def _serve(self, conn: Connection) -> Ending:
        """Frames, heartbeats and timers of one connection, until it has to end."""
        t = self.timings
        while not self.stop_event.is_set():
            unanswered = math.inf if conn.authorized else conn.opened + t.silence_s
            due = min(
                conn.last_beat + t.heartbeat_s,
                conn.last_frame + t.silence_s,
                unanswered,
                self.user.next_due() if conn.authorized else math.inf,
            )
            try:
                generation, item = self._inbox.get(timeout=max(0.0, due - time.monotonic()))
            except queue.Empty:
                generation, item = None, None
            now = time.monotonic()
            if generation == conn.generation and item is not None:  # not a wake, not a stale one
                if item is _CLOSED:
                    return Ending(CLOSED)
                conn.last_frame = now
                ending = self._on_frame(conn, str(item))
                if ending is not None:
                    return ending
            if now - conn.last_beat >= t.heartbeat_s:
                conn.send(HEARTBEAT)
                conn.last_beat = now
            if now - conn.last_frame >= t.silence_s or now >= unanswered:
                self.log.warning(
                    f"{self.name} silent", extra={"kv": {**self.log_kv, "s": t.silence_s}}
                )
                return Ending(SILENT)
            why = self.user.tick(conn, now) if conn.authorized else None
            if why:
                return Ending(why)
        return Ending(STOPPED)

    def _on_frame(self, conn: Connection, text: str) -> Ending | None:
        try:
            frame = parse_frame(text)
        except FrameError as exc:
            self.log.warning(f"{self.name} frame unreadable", extra={"kv": {"error": str(exc)}})
            return None
        if isinstance(frame, Open):
            conn.send(build_request("authorize", 0, "", conn.token))
        elif isinstance(frame, Close):
            return Ending(CLOSED, f"{frame.code} {frame.reason}")
        elif isinstance(frame, Messages):
            return self._on_messages(conn, frame.items)
        return None

    def _on_messages(self, conn: Connection, items: tuple[Response | Event, ...]) -> Ending | None:
        """The session's own messages (authorize's answer, `shutdown`) here, in order with the
        user's, which go to it in runs."""
        run: list[Response | Event] = []
        for message in items:
            if isinstance(message, Response) and message.i == 0 and not conn.authorized:
                ending = self._flush(conn, run) or self._on_authorize(conn, message)
            elif isinstance(message, Event) and message.e == "shutdown":
                ending = self._flush(conn, run) or self._on_shutdown(message)
            else:
                run.append(message)
                continue
            if ending is not None:
                return ending
        return self._flush(conn, run)

    def _flush(self, conn: Connection, run: list[Response | Event]) -> Ending | None:
        if not run:
            return None
        why = self.user.on_messages(conn, list(run))
        run.clear()
        return Ending(why) if why else None

    def _on_authorize(self, conn: Connection, answer: Response) -> Ending | None:
        if not answer.ok:
            kv = {**self.log_kv, "status": answer.s}
            self.log.warning(f"{self.name} authorize refused", extra={"kv": kv})
            self.user.refused(conn, answer)
            return Ending(REFUSED, f"{answer.s} {answer.d}")
        conn.authorized = True
        self.user.authorized(conn)
        return None

    def _on_shutdown(self, event: Event) -> Ending:
        code = str(event.d.get("reasonCode", "")) if isinstance(event.d, dict) else ""
        self.log.warning(
            f"{self.name} shutdown", extra={"kv": {**self.log_kv, "reason_code": code}}
        )
        return Ending(QUOTA if code in QUOTA_REASONS else SHUTDOWN, code)
