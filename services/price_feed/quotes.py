"""What every price source produces and the interface the feed drives them through."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Quote:
    symbol: str  # canonical root, e.g. MNQ
    price: Decimal
    ts: int  # epoch ms, when the feed received it
    source: str
    delayed: bool = False


Emit = Callable[[Quote], None]


@dataclass
class SourceStatus:
    """What a source reports about itself; the feed adds its own fields for `GET /status`."""

    connected: bool = False
    authenticated: bool | None = None  # None where the source has no notion of it
    reconnects: int = 0
    delayed_symbols: set[str] = field(default_factory=set)
    failed_symbols: set[str] = field(default_factory=set)  # the source said it cannot serve them
    error: str | None = None  # the last problem, one plain sentence

    def as_dict(self) -> dict:
        return {
            "connected": self.connected,
            "authenticated": self.authenticated,
            "reconnects": self.reconnects,
            "delayed_symbols": sorted(self.delayed_symbols),
            "failed_symbols": sorted(self.failed_symbols),
            "error": self.error,
        }


class PriceSource(ABC):
    """A connection to one kind of price source, running in background threads of its own.

    `start` returns at once; the source calls `emit` for every new price of a wanted symbol
    (from any thread), reconnects by itself, and follows `set_symbols` while running.
    """

    name: str = "source"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._symbols: set[str] = set()
        self._status = SourceStatus()

    @abstractmethod
    def start(self, emit: Emit) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def set_symbols(self, symbols: set[str]) -> None:
        """Follow exactly these canonical roots from now on."""
        with self._lock:
            self._symbols = set(symbols)

    @property
    def symbols(self) -> set[str]:
        with self._lock:
            return set(self._symbols)

    def status(self) -> SourceStatus:
        return self._status

    def credentials_changed(self) -> None:
        """The stored credentials changed: sources that log in reconnect with the new ones."""
        return None  # sources without credentials have nothing to do

    @property
    def connected(self) -> bool:
        return self._status.connected


class ThreadedSource(PriceSource):
    """A source whose work is one loop, `_run(emit)`, in a daemon thread that `stop` ends."""

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, emit: Emit) -> None:
        self._stop.clear()
        self._status.connected = True
        self._thread = threading.Thread(
            target=self._run, args=(emit,), daemon=True, name=f"{self.name}-source"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self._status.connected = False

    @abstractmethod
    def _run(self, emit: Emit) -> None: ...
