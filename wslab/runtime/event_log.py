"""A bounded log of what happens on WebSocket connections, stamped with the time.

Servers, proxies and clients record :class:`~wslab.core.connection_log.LogEvent` lines
here; views (the notebook widget, the command line's logger) subscribe to them. The log
reads the wall clock (each line says when it happened), so it lives beside the shells; the
lines, and how they read, are the I/O-free :mod:`wslab.core.connection_log`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from ..core.connection_log import LogEvent, LogKind

__all__ = ["EventLog", "Listener"]

Listener = Callable[[LogEvent], None]


class EventLog:
    """The last ``maxlen`` events, plus running totals that never forget.

    Keeping only a window of events bounds memory during an hour-long live demo; the
    totals (messages, connections) stay exact because they are counted, not derived from
    the window. ``clock`` stamps each event (wall-clock seconds).
    """

    def __init__(self, *, maxlen: int = 500, clock: Callable[[], float] = time.time) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._events: deque[LogEvent] = deque(maxlen=maxlen)
        self._listeners: list[Listener] = []
        self._clock = clock
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

    def record(
        self,
        direction: LogKind,
        peer: str,
        *,
        text: str | None = None,
        size: int | None = None,
        code: int | None = None,
        reason: str = "",
    ) -> LogEvent:
        """Build a :class:`LogEvent`, stamped now, and append it; returns the event."""
        event = LogEvent(direction, peer, text, size, code, reason, self._clock())
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
