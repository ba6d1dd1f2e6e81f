"""A bounded, I/O-free log of what happens on WebSocket connections.

Servers and clients append :class:`LogEvent` records; views (the notebook widget, the
command line's logger) subscribe to them. Nothing here touches a socket or a widget, so
the log is testable on its own and the same log can feed several views at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from .close_codes import CloseCode

__all__ = ["CloseCode", "EventLog", "LogEvent", "LogKind", "close_label"]

#: Longest text shown for one message; a log line is a glance, not a transcript.
PREVIEW_CHARS = 80


class LogKind(StrEnum):
    """What a log line records, from the point of view of whoever owns the log: a connection
    opening or ending, a message received or sent, a ping or pong, or a note."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    RECEIVED = "recv"
    SENT = "send"
    PING = "ping"
    PONG = "pong"
    NOTE = "note"


_ARROWS = {
    LogKind.CONNECT: "+",
    LogKind.DISCONNECT: "x",
    LogKind.RECEIVED: "<",
    LogKind.SENT: ">",
    LogKind.PING: "?",
    LogKind.PONG: "!",
    LogKind.NOTE: "#",
}


def close_label(code: int | None) -> str:
    """``1009 (message too big)`` style label for a close code."""
    if code is None:
        return "no close code"
    try:
        name = CloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        return str(code)
    return f"{code} ({name})"


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """Quote ``text`` for a log line, shortened to ``limit`` characters."""
    if len(text) > limit:
        quoted = repr(text[:limit])  # ends with ' or ", whichever repr chose
        return f"{quoted[:-1]}...{quoted[-1]} ({len(text)} chars)"
    return repr(text)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One line of the log.

    A message carries either ``text`` or, for binary frames, only its ``size``: binary
    payloads are never rendered. A disconnect carries the close ``code`` and ``reason``.
    """

    direction: LogKind
    peer: str
    text: str | None = None
    size: int | None = None
    code: int | None = None
    reason: str = ""
    at: float = field(default_factory=time.time)

    def describe(self) -> str:
        """The event without its time and peer: what happened."""
        match self.direction:
            case LogKind.CONNECT:
                return "connected" + (f": {self.text}" if self.text else "")
            case LogKind.DISCONNECT:
                reason = f" {self.reason!r}" if self.reason else ""
                by = f" {self.text}" if self.text else ""
                return f"disconnected{by}, {close_label(self.code)}{reason}"
            case _ if self.text is not None:
                return f"{self.direction.value} text {preview(self.text)}"
            case _ if self.size is not None:
                return f"{self.direction.value} binary {self.size} bytes"
            case _:
                return self.direction.value

    def format(self) -> str:
        """A complete log line: ``HH:MM:SS.mmm  peer  marker  description``."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at)) + f".{int(self.at % 1 * 1000):03d}"
        return f"{stamp}  {self.peer:<21} {_ARROWS[self.direction]} {self.describe()}"


Listener = Callable[[LogEvent], None]


class EventLog:
    """The last ``maxlen`` events, plus running totals that never forget.

    Keeping only a window of events bounds memory during an hour-long live demo; the
    totals (messages, connections) stay exact because they are counted, not derived from
    the window.
    """

    def __init__(self, *, maxlen: int = 500) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._events: deque[LogEvent] = deque(maxlen=maxlen)
        self._listeners: list[Listener] = []
        self.total = 0
        self.open_connections = 0

    @property
    def maxlen(self) -> int:
        return self._events.maxlen or 0

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[LogEvent]:
        return iter(tuple(self._events))

    def append(self, event: LogEvent) -> None:
        self._events.append(event)
        self.total += 1
        if event.direction is LogKind.CONNECT:
            self.open_connections += 1
        elif event.direction is LogKind.DISCONNECT:
            self.open_connections = max(0, self.open_connections - 1)
        for listener in tuple(self._listeners):
            listener(event)

    def record(self, direction: LogKind, peer: str, **details: object) -> LogEvent:
        """Build a :class:`LogEvent` and append it; returns the event."""
        event = LogEvent(direction, peer, **details)  # type: ignore[arg-type]
        self.append(event)
        return event

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every new event; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def lines(self) -> list[str]:
        return [event.format() for event in self._events]

    def texts(self, direction: LogKind | None = None) -> list[str]:
        """The text of each text message in the window, optionally of one direction."""
        return [
            e.text
            for e in self._events
            if e.text is not None
            and e.direction in (LogKind.RECEIVED, LogKind.SENT)
            and (direction is None or e.direction is direction)
        ]

    def clear(self) -> None:
        self._events.clear()
