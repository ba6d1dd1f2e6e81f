"""What a log of WebSocket connections records: one :class:`LogEvent` per line, and how it reads.

The log itself, which stamps each event with the time and feeds the views, is
:class:`wslab.runtime.event_log.EventLog`; these are its lines, with no clock and no I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from .close_codes import CloseCode

__all__ = ["LogEvent", "LogKind", "close_label", "preview"]

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
    #: When it happened (wall-clock seconds), as the log that recorded it stamped it.
    at: float = 0.0

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
