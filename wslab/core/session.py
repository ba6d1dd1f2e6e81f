"""A chat client's rules without I/O: sequence tracking, outbox, acks, resume, epochs.

:class:`ChatSession` is to :class:`wslab.clients.ChatClient` what :class:`~wslab.core.room.ChatRoom`
is to the server: it takes what arrived (a server message) or what the person did (a text
to send) and returns what to do; the asyncio client only moves bytes. Tests drive it with
plain strings.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum

from .close_codes import AppCloseCode, CloseCode
from .heartbeat import HeartbeatPolicy
from .history import SequenceTracker, Tracked
from .protocol import (
    Ack,
    Dialect,
    Error,
    Hello,
    HistoryLost,
    Live,
    Ping,
    Pong,
    ProtocolViolation,
    Reset,
    Say,
    Users,
    Welcome,
    Who,
    clean_text,
    encode,
    parse_server_message,
    render_plain,
)
from .room_event import EventKind, RoomEvent

__all__ = ["AfterClose", "Answer", "ChatSession", "Reaction", "ResendOutbox", "WatchServer"]


@dataclass(frozen=True)
class Answer:
    """Send ``text`` to the server at once (a heartbeat's pong)."""

    text: str


@dataclass(frozen=True)
class ResendOutbox:
    """Replay is over, the client is live: send every unacknowledged message again, in order
    (see :meth:`ChatSession.resend`)."""


@dataclass(frozen=True)
class WatchServer:
    """The server pings: declare it dead after ``policy.timeout`` of silence."""

    policy: HeartbeatPolicy


Reaction = Answer | ResendOutbox | WatchServer


class AfterClose(StrEnum):
    """What the client does once a connection ended, as far as the session can tell."""

    #: Refused for good (a bad name, a bad token): coming back would be refused again.
    GIVE_UP = "give-up"
    #: Asked to come back later (room full, the name still held, the server's broker down).
    BACK_OFF = "back-off"
    #: Reconnect as usual.
    RECONNECT = "reconnect"


class ChatSession:
    """One user's view of a chat room across connections: each event once, in order.

    Its own messages wait in an outbox until their ack, matched by ``ref``; after a
    reconnect the hello asks to resume after the last seq seen, and what was never
    acknowledged is sent again once the server says replay is over.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        #: The room's transcript: each event once, in sequence order (own messages from acks),
        #: from the instructor's last ``clear`` on (that event first).
        self.events: list[RoomEvent] = []
        #: How many times the instructor cleared the room (and so :attr:`events`).
        self.clears = 0
        self.tracker = SequenceTracker()
        self.notices: list[str] = []
        #: Who is in, as far as this client knows: everyone in a small room; in a big one,
        #: the names seen since the last ``users`` reply (ask with :meth:`who`).
        self.users: list[str] = []
        #: How many are in the room: from the welcome, each coalesced event, each ``users`` reply.
        self.count = 0
        #: The ``server_id`` of the server of the current connection (from its welcome).
        self.server = ""
        #: Welcomes received: connections that got in.
        self.connects = 0
        #: The ``resume`` sent in the latest hello: the last seq seen before that connection.
        self.resumed_after: int | None = None
        self.live = False
        #: Why the server refused this user for good (bad name or token), or None.
        self.rejected: str | None = None
        #: The server asked to come back later (name still held, room full): back off first.
        self.retry_later = False
        self.outbox: dict[str, str] = {}
        #: Per reset the server told of: the last seq of the old numbering this client had
        #: (what came after it and had not arrived is gone).
        self.lost_after_reset: list[int] = []
        self._refs = itertools.count(1)

    # What the client sends

    def hello(self, token: str | None = None) -> str:
        """The first message of a connection: resume after the last seq seen, if any, with that
        event's fingerprint (the server checks it is still the event under that number)."""
        self.resumed_after = last = self.tracker.last
        seen = self.events[-1] if self.events and self.events[-1].seq == last else None
        return encode(Hello(self.name, Dialect.JSON, last, token, seen.fingerprint if seen else None))

    def say(self, text: str) -> tuple[str, str]:
        """Put ``text`` in the outbox; returns ``(ref, wire text)`` for sending now if live."""
        ref = f"{self.name}-{next(self._refs)}"
        self.outbox[ref] = clean_text(text)  # as the server publishes it, so the transcript matches
        return ref, encode(Say(text, ref))

    def who(self) -> str:
        """Ask who is in the room (a big room sends counts, and names only on request)."""
        return encode(Who())

    def resend(self, already: set[str]) -> list[tuple[str, str]]:
        """``(ref, wire text)`` of outbox messages not in ``already`` sent, oldest first."""
        return [(ref, encode(Say(text, ref))) for ref, text in self.outbox.items() if ref not in already]

    @property
    def unacknowledged(self) -> list[str]:
        return list(self.outbox.values())

    def disconnected(self) -> None:
        """The connection is gone, or as good as gone (a silent server): sends wait in the
        outbox until the next ``live``."""
        self.live = False

    def closed(self, code: int) -> AfterClose:
        """The connection ended with close ``code``: what to do next."""
        self.live = False
        if code == AppCloseCode.KICKED and self.rejected is None:  # its error reply was lost (a proxy)
            self.rejected = "the instructor removed you from the room"
        if self.rejected is not None:
            return AfterClose.GIVE_UP
        if self.retry_later or code == CloseCode.TRY_AGAIN_LATER:  # 1013: e.g. its broker is down
            self.retry_later = False
            return AfterClose.BACK_OFF
        return AfterClose.RECONNECT

    def note(self, text: str) -> None:
        """Something the connection's shell saw (a server unreachable, restarting, silent)."""
        self.notices.append(text)

    # What the server sends

    def receive(self, raw: str | bytes) -> list[Reaction]:
        """Take one server message into account; returns what the client must do about it."""
        try:
            message = parse_server_message(raw)
        except ProtocolViolation as exc:
            self.notices.append(f"ignored a message: {exc}")
            return []
        match message:
            case Ping(t):
                return [Answer(encode(Pong(t)))]
            case Welcome():
                return self._welcomed(message)
            case RoomEvent():
                self._record(message)
            case Ack(seq, ref):
                self._acknowledged(seq, ref)
            case Live():
                self.live = True
                return [ResendOutbox()]
            case HistoryLost(first, last):
                self.notices.append(f"history lost: seq {first}..{last} can no longer be replayed")
                self.tracker.missing.append((first, last))
                self.tracker.last = last
            case Reset(seq, text, lost_after):
                self.notices.append(f"{text} (numbering starts again after seq {seq})")
                if lost_after is not None:
                    self.lost_after_reset.append(lost_after)
                self.tracker.last = seq
            case Error():
                self._refused(message)
            case Users(users, count):
                self.users, self.count = list(users), count
        return []

    def _welcomed(self, welcome: Welcome) -> list[Reaction]:
        self.connects += 1
        self.server = welcome.server
        self.users = list(welcome.users)
        self.count = welcome.count if welcome.count is not None else len(self.users)
        self.notices.append(f"welcome as {welcome.name} (server {welcome.server or '?'}, seq {welcome.seq})")
        if self.tracker.last is None:
            self.tracker.last = welcome.seq
        elif welcome.seq < self.tracker.last:
            # The room's numbering went backwards: its broker lost the room and began again.
            # The server says so in a reset that follows, before replaying the new numbering.
            self.notices.append(f"the room's numbering went back to seq {welcome.seq}")
        return [WatchServer(HeartbeatPolicy(*welcome.heartbeat))] if welcome.heartbeat else []

    def _acknowledged(self, seq: int, ref: str) -> None:
        text = self.outbox.pop(ref, None)
        if seq == 0:  # published before a reset: it may not have reached everyone, its number is gone
            self.notices.append(f"{text!r} was published before the room's reset")
            return
        self._record(RoomEvent(EventKind.CHAT, self.name, text or "", seq=seq, ref=ref))

    def _refused(self, error: Error) -> None:
        self.notices.append(f"error: {error.text}")
        self.outbox.pop(error.ref, None)  # refused: it would never be acknowledged
        code = error.code
        if (code == "name-taken" and self.connects > 0) or code == "room-full":
            # Our own old connection still holds the name (the server has not noticed it
            # died), or the room is full: both pass, so try again later.
            self.retry_later = True
        elif code.startswith("name-") or code.endswith("token") or code in ("token-required", "kicked"):
            self.rejected = error.text

    def _record(self, event: RoomEvent) -> None:
        previous = self.tracker.last
        outcome = self.tracker.observe(event.seq)
        if outcome is Tracked.DUPLICATE:
            return
        if outcome is Tracked.GAP:
            self.notices.append(
                f"gap: seq {previous + 1 if previous is not None else '?'}..{event.seq - 1} missing"
            )
        if event.kind in (EventKind.JOIN, EventKind.LEAVE):
            self._presence(event)
        elif event.kind is EventKind.CLEAR:  # the instructor cleared every screen: this one too
            self.events.clear()
            self.clears += 1
        self.events.append(event)

    def _presence(self, event: RoomEvent) -> None:
        """A join or leave: one person's (a small room), or a tick's, with names shown and counts."""
        for name in event.names or (event.name,):
            if event.kind is EventKind.JOIN and name not in self.users:
                self.users.append(name)
                self.count += 1
            elif event.kind is EventKind.LEAVE and (name in self.users or self.count > len(self.users)):
                # In a big room the list is partial: someone not in it can still leave.
                if name in self.users:
                    self.users.remove(name)
                self.count -= 1
        if event.coalesced:
            self.count = event.total

    # Reading the transcript

    def lines(self) -> list[str]:
        """The transcript as the original tutorial prints it: ``[alice] hi``, ``>>> bob joined``."""
        return [render_plain(event) or "" for event in self.events]

    def texts(self, *, author: str | None = None) -> list[str]:
        """Chat texts in order, optionally only one author's."""
        return [
            e.text for e in self.events if e.kind is EventKind.CHAT and (author is None or e.name == author)
        ]
