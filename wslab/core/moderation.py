"""An instructor's decisions about a chat room (kick, mute, unmute, clear), without I/O.

A decision is a room event (:data:`~wslab.core.room_event.MODERATION`): the server the
instructor acts on publishes it through the broker, and every server applies it when it
arrives, like any other event. So a kick reaches a person connected to another server, every
server refuses a muted person's messages, and every screen is cleared, without a second
channel between servers. It also lands in history, so a client that resumes sees it in order.

:class:`Moderation` is what one server's room remembers of those decisions: who is muted, and
who was sent away recently and may not come back yet. The room
(:meth:`~wslab.core.room.ChatRoom.moderate` and its fan-out) does the rest: it finds the person,
closes their connection, clears its transcript.

Why everyone sees a kick or a mute (``bob was muted by the instructor``): every event carries
the room's next sequence number, and a client that skipped one would report a gap. The reason
for a kick is the kicked person's alone (:meth:`~wslab.core.room_event.RoomEvent.to_wire`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .errors import WslabError
from .room_event import MODERATION, EventKind, RoomEvent

__all__ = ["KICK_BAR", "Moderation", "ModerationError", "kicked_text", "muted_text"]

#: Seconds a kicked name is refused by every server that saw the kick: long enough to end a
#: disruption (a page reload, another tab), short enough that a mistaken kick passes by itself.
KICK_BAR = 600.0


class ModerationError(WslabError, ValueError):
    """A decision that names nobody in the room, or someone who is not muted: nothing is published."""


def kicked_text(reason: str) -> str:
    """What the person sent away reads, in the error reply before the close."""
    removed = "the instructor removed you from the room"
    return f"{removed}: {reason}" if reason else removed


def muted_text() -> str:
    """The error reply to a muted person's message."""
    return "the instructor muted you: you can still read, but your messages are not sent"


class Moderation:
    """Who is muted and who may not come back yet, as one server learned it from the room's events.

    Names are compared casefolded, as the room compares them (``Bob`` is ``bob``).

    Args:
        bar: seconds a kicked name is refused after the kick.
        clock: monotonic seconds (the room's).
    """

    def __init__(self, *, bar: float = KICK_BAR, clock: Callable[[], float]) -> None:
        self.bar = bar
        self.clock = clock
        self._muted: dict[str, str] = {}  # casefolded -> as written
        self._barred: dict[str, float] = {}  # casefolded -> until (clock)

    @property
    def muted(self) -> list[str]:
        """The muted names, in the order they were muted."""
        return list(self._muted.values())

    def is_muted(self, name: str) -> bool:
        return name.casefold() in self._muted

    def barred_for(self, name: str) -> float:
        """Seconds left before ``name``, kicked, may join again; 0 when it may now."""
        left = self._barred.get(name.casefold(), 0.0) - self.clock()
        if left <= 0:
            self._barred.pop(name.casefold(), None)
        return max(0.0, left)

    def learn(self, event: RoomEvent) -> None:
        """Take in a decision delivered by the broker (this server's or another's)."""
        folded = event.name.casefold()
        if event.kind is EventKind.KICK:
            self._barred[folded] = self.clock() + self.bar
        elif event.kind is EventKind.MUTE:
            self._muted[folded] = event.name
        elif event.kind is EventKind.UNMUTE:
            self._muted.pop(folded, None)

    def target(self, kind: EventKind, name: str, everyone: Iterable[str]) -> str:
        """The person a ``kind`` decision is about, as the room spells them; raises
        :class:`ModerationError` if there is none (a typo must not pass silently)."""
        if kind not in MODERATION:
            raise ValueError(f"{kind!r} is not a moderation event")
        if kind is EventKind.CLEAR:
            return ""
        wanted = name.strip().casefold()
        if kind is EventKind.UNMUTE:
            if wanted not in self._muted:
                raise ModerationError(f"{name!r} is not muted (muted: {', '.join(self.muted) or 'nobody'})")
            return self._muted[wanted]
        present = list(everyone)
        for person in present:
            if person.casefold() == wanted:
                return person
        raise ModerationError(f"nobody called {name!r} is in the room (in: {', '.join(present) or 'nobody'})")
