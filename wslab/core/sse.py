"""Server-Sent Events framing, both ways, I/O-free (WHATWG HTML §9.2).

A ``text/event-stream`` is lines of UTF-8: ``field: value``. ``data:`` lines make up the
event's data, ``event:`` names its type, ``id:`` sets the id the browser sends back as
``Last-Event-ID`` when it reconnects, ``retry:`` sets its reconnection delay in ms, and a
blank line ends the event. A line starting with ``:`` is a comment (a keep-alive).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SseEvent", "SseParser", "comment", "format_event"]


def format_event(
    data: str, *, id: str | int | None = None, event: str | None = None, retry: int | None = None
) -> str:
    """One event, ready to write; multi-line ``data`` becomes several ``data:`` lines."""
    lines = []
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    if event is not None:
        lines.append(f"event: {_one_line(event)}")
    if id is not None:
        lines.append(f"id: {_one_line(str(id))}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


def comment(text: str = "") -> str:
    """A comment line: ignored by the browser, but it keeps proxies from closing an idle stream."""
    return f": {_one_line(text)}\n\n"


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("an SSE field value cannot contain a line break")
    return value


@dataclass
class SseEvent:
    """One dispatched event as a browser's ``EventSource`` sees it."""

    data: str
    event: str = "message"
    id: str = ""


class SseParser:
    """Feed it the stream's text as it arrives; it returns the events completed so far.

    Like a browser: the last ``id:`` seen persists across events (``last_event_id``),
    ``retry:`` with digits sets :attr:`retry`, an event with no ``data:`` is not dispatched.
    """

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry: int | None = None
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""

    def feed(self, text: str) -> list[SseEvent]:
        self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._buffer = self._buffer.split("\n")
        events = []
        for line in lines:
            if not line:
                if self._data:
                    data = "\n".join(self._data)
                    events.append(SseEvent(data, self._event or "message", self.last_event_id))
                self._data, self._event = [], ""
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                self._data.append(value)
            elif field == "event":
                self._event = value
            elif field == "id" and "\0" not in value:
                self.last_event_id = value
            elif field == "retry" and value.isdigit():
                self.retry = int(value)
        return events
