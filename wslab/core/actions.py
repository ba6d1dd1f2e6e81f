"""What :class:`~wslab.core.room.ChatRoom` decides, as values the asyncio shell carries out.

:class:`Send`, :class:`Close` and :class:`Publish` are single actions. :class:`FetchHistory`
and :class:`GoLive` ask the shell for something only it can do (ask the broker, wait until
sends are done) and to hand the result back to the room: the room never calls the shell. A
:class:`FanOut` is a whole delivery (each text encoded once, with its recipients) plus the
actions that came with it. No I/O here either.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .member import Member
from .protocol import Dialect, ServerMessage, encode, render_plain
from .room_event import RoomEvent

__all__ = [
    "Action",
    "ChatStats",
    "CheckBroker",
    "CheckInDoubt",
    "Close",
    "Delivery",
    "FanOut",
    "FetchHistory",
    "GoLive",
    "OverflowPolicy",
    "Publish",
    "Send",
    "close_reason",
]


class OverflowPolicy(StrEnum):
    """What to do when a client's unsent backlog exceeds the limit."""

    #: The original tutorial's behaviour: skip messages for that client, silently to it.
    DROP = "drop"
    #: Close with 4001; the client reconnects and resumes from history.
    DISCONNECT = "disconnect"


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to ``to``, in the dialect it speaks."""

    to: Member
    message: ServerMessage

    def text(self) -> str | None:
        """The message as ``to`` receives it; None when its dialect has no such message."""
        return encode(self.message) if self.to.dialect is Dialect.JSON else render_plain(self.message)


@dataclass(frozen=True, slots=True)
class Close:
    """End ``member``'s connection: a close frame, or an abort when the peer is gone."""

    member: Member
    code: int
    reason: str
    abort: bool = False


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``event`` through the broker."""

    event: RoomEvent


@dataclass(frozen=True, slots=True)
class FetchHistory:
    """Ask the broker for the room's last seq and, unless ``after`` is None, the events after
    ``after``; hand both to :meth:`~wslab.core.room.ChatRoom.history_arrived` for ``member``."""

    member: Member
    after: int | None


@dataclass(frozen=True, slots=True)
class GoLive:
    """Once the sends before this one are done, call :meth:`~wslab.core.room.ChatRoom.go_live`
    for ``member``: events may have arrived for it while they were sent."""

    member: Member


@dataclass(frozen=True, slots=True)
class CheckInDoubt:
    """After a reset: ask the broker for the room's events after ``after`` (its new numbering)
    and hand them to :meth:`~wslab.core.room.ChatRoom.in_doubt_checked`."""

    after: int


@dataclass(frozen=True, slots=True)
class CheckBroker:
    """The broker numbers the room otherwise than the subscription has delivered: have the
    subscription look at the room on the broker again (it may find a reset it missed)."""


Action = Send | Close | Publish | FetchHistory | GoLive | CheckInDoubt | CheckBroker


@dataclass(slots=True)
class Delivery:
    """One text, encoded once, for every member in ``to``."""

    text: str
    data: bytes
    to: list[Member] = field(default_factory=list)


@dataclass(slots=True)
class FanOut:
    """What to push now, without waiting: each text once, with its recipients; then ``actions``."""

    deliveries: dict[Any, Delivery] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    #: For an event's fan-out, the last seq fanned out before it: where a client that was too
    #: slow to be sent this one stands.
    before: int | None = None

    def add(self, member: Member, message: ServerMessage, key: Any) -> None:
        """Give ``member`` ``message``, whose text is the same for everyone under ``key``."""
        delivery = self.deliveries.get(key)
        if delivery is None:
            text = encode(message) if member.dialect is Dialect.JSON else render_plain(message)
            if text is None:
                return
            delivery = self.deliveries[key] = Delivery(text, text.encode())
        delivery.to.append(member)


@dataclass
class ChatStats:
    """Counters for the server panel and the benchmarks."""

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    evicted: int = 0
    rejected: int = 0
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=10_000), repr=False)

    def note_published(self, now: float) -> None:
        self.published += 1
        self._recent.append(now)

    def rate(self, window: float = 2.0, *, now: float) -> float:
        """Messages per second published through this server over the ``window`` s before
        ``now`` (on the room's clock)."""
        cutoff = now - window
        return sum(1 for t in self._recent if t >= cutoff) / window


def close_reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."
