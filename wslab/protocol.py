"""The chat protocol, without sockets: message formats, names, sequence numbers, history.

Two dialects share one server:

* **plain**, the original tutorial's: the first text message is the username, and every
  event arrives as a line of text (``[alice] hi``, ``>>> bob joined the chat``). Nothing
  numbers the lines, so a client cannot tell what it missed.
* **json**, this course's fix: the client opens with ``{"type": "hello", "name": ...}``
  (optionally ``"resume": <last seq seen>``), and every room event carries a per-room
  sequence number ``seq``. A client that sees ``seq`` jump knows it missed something;
  one that reconnects asks for everything after the last ``seq`` it saw. On the wire an
  event is ``{"type", "seq", "name", "text", "via"}`` (:meth:`RoomEvent.to_wire`); the
  brokers carry the whole :class:`RoomEvent`.

Sequence numbers are assigned once, by the broker, so they mean the same on every server
of a scaled-out deployment.
"""

from __future__ import annotations

import json
import random
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_TEXT_LENGTH",
    "PONG",
    "AppCloseCode",
    "Dialect",
    "EventKind",
    "Hello",
    "History",
    "HistoryTooOld",
    "ProtocolViolation",
    "RoomEvent",
    "SequenceTracker",
    "Tracked",
    "UsernameError",
    "backoff_delays",
    "encode",
    "parse_client_message",
    "parse_hello",
    "render_plain",
    "validate_username",
]

MAX_NAME_LENGTH = 32
MAX_TEXT_LENGTH = 4000
#: Names a person may not take, because the server speaks under them.
RESERVED_NAMES = frozenset({"system", "server"})


class AppCloseCode(IntEnum):
    """Close codes this application defines (RFC 6455 leaves 4000-4999 to applications)."""

    #: The client fell too far behind; it should reconnect and resume from its last seq.
    TOO_SLOW = 4001
    #: A newer connection of the same user (a reconnect) replaced this one.
    REPLACED = 4002


class Dialect(StrEnum):
    PLAIN = "plain"
    JSON = "json"


class EventKind(StrEnum):
    """What happened in a room. Every kind gets a sequence number and lands in history."""

    CHAT = "chat"
    JOIN = "join"
    LEAVE = "leave"


class UsernameError(ValueError):
    """A username the server refuses; the message says why, for the person who chose it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ProtocolViolation(ValueError):
    """A message that does not follow the protocol; answered with an error reply."""


def validate_username(raw: str, *, taken: Iterable[str] = ()) -> str:
    """The cleaned-up name, or :class:`UsernameError` saying what is wrong with it."""
    name = raw.strip()
    if not name:
        raise UsernameError("name-empty", "a username cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UsernameError("name-too-long", f"a username has at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise UsernameError("name-invalid", "a username cannot contain control characters")
    if name.casefold() in RESERVED_NAMES:
        raise UsernameError("name-reserved", f"{name!r} is reserved for the server")
    if name.casefold() in {other.casefold() for other in taken}:
        raise UsernameError("name-taken", f"the username {name!r} is already taken")
    return name


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One event of a room, as the broker carries it and history keeps it.

    ``seq`` is 0 until the broker assigns it. ``via`` names the server the author is
    connected to; ``at`` is the publishing time (for latency measurements).
    """

    kind: EventKind
    name: str
    text: str = ""
    room: str = "lobby"
    seq: int = 0
    via: str = ""
    at: float = field(default_factory=time.time)
    #: The author's own id for the message, echoed in its ack so the author can match it.
    ref: str = ""

    def with_seq(self, seq: int) -> RoomEvent:
        return RoomEvent(self.kind, self.name, self.text, self.room, seq, self.via, self.at, self.ref)

    def to_dict(self) -> dict[str, Any]:
        return {"type": str(self.kind), **{k: v for k, v in asdict(self).items() if k != "kind"}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomEvent:
        return cls(
            EventKind(data["type"]),
            str(data["name"]),
            str(data.get("text", "")),
            str(data.get("room", "lobby")),
            int(data.get("seq", 0)),
            str(data.get("via", "")),
            float(data.get("at", 0.0)),
            str(data.get("ref", "")),
        )

    def to_json(self) -> str:
        """The whole event, as brokers carry it and history stores it."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def to_wire(self) -> str:
        """The event as a json-dialect client receives it: only what a client uses.

        ``room`` (a server serves one), ``at`` and ``ref`` (the author alone needs it, and
        gets it in its ack) stay behind. Each byte left out is left out a thousand times
        over in a room of a thousand, and with permessage-deflate each one is also
        compressed once per connection; ``seq`` and ``at``, new in every event, compress
        worst of all.
        """
        return encode(str(self.kind), seq=self.seq, name=self.name, text=self.text, via=self.via)

    @classmethod
    def from_json(cls, payload: str | bytes) -> RoomEvent:
        return cls.from_dict(json.loads(payload))


def render_plain(event: RoomEvent) -> str:
    """The original tutorial's line for an event."""
    match event.kind:
        case EventKind.CHAT:
            return f"[{event.name}] {event.text}"
        case EventKind.JOIN:
            return f">>> {event.name} joined the chat"
        case EventKind.LEAVE:
            return f">>> {event.name} left the chat"


def encode(message_type: str, **fields: Any) -> str:
    """A JSON control message (``welcome``, ``ack``, ``error``, ``history-lost``, ...)."""
    return json.dumps({"type": message_type, **fields}, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Hello:
    """The first message of a connection."""

    name: str
    dialect: Dialect
    resume: int | None = None
    #: Proof of the name, from ``POST /api/token`` (lesson 04); None in the plain dialect.
    token: str | None = None


def parse_hello(message: str | bytes) -> Hello:
    """Read a first message: a JSON ``hello`` or, as in the original tutorial, a bare name."""
    if isinstance(message, bytes):
        raise ProtocolViolation("the first message must be text: your username")
    stripped = message.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ProtocolViolation(f"the hello message is not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict) or data.get("type") != "hello" or not isinstance(data.get("name"), str):
            raise ProtocolViolation('expected {"type": "hello", "name": "<your name>"}')
        resume = data.get("resume")
        if resume is not None and (not isinstance(resume, int) or isinstance(resume, bool) or resume < 0):
            raise ProtocolViolation("resume must be the last sequence number you saw (an integer >= 0)")
        token = data.get("token")
        return Hello(data["name"], Dialect.JSON, resume, token if isinstance(token, str) else None)
    return Hello(message, Dialect.PLAIN)


#: What :func:`parse_client_message` returns for a heartbeat ``pong`` (compare with ``is``).
PONG: tuple[str, str] = ("", "pong")


def parse_client_message(message: str | bytes, dialect: Dialect) -> tuple[str, str] | None:
    """``(text, ref)`` of a client's chat message, or None when there is nothing to say.

    ``ref`` is the client's own id for the message (json dialect, optional), returned in
    the ack so the client knows which of its messages got which sequence number. A
    heartbeat ``pong`` returns :data:`PONG`.

    Raises:
        ProtocolViolation: for binary frames, malformed JSON, unknown types, long texts.
    """
    if isinstance(message, bytes):
        raise ProtocolViolation("binary messages are not part of the chat protocol; send text")
    if dialect is Dialect.JSON:
        try:
            data = json.loads(message)
        except json.JSONDecodeError as exc:
            raise ProtocolViolation(f"not valid JSON: {exc.msg}") from None
        if isinstance(data, dict) and data.get("type") == "pong":
            return PONG  # the application heartbeat's answer: proof of life, nothing to say
        if not isinstance(data, dict) or data.get("type") != "chat" or not isinstance(data.get("text"), str):
            raise ProtocolViolation('expected {"type": "chat", "text": "..."}')
        message, ref = data["text"], str(data.get("ref") or "")[:64]
    else:
        ref = ""
    text = message.strip()
    if len(text) > MAX_TEXT_LENGTH:
        raise ProtocolViolation(f"a message has at most {MAX_TEXT_LENGTH} characters")
    return (text, ref) if text else None


def backoff_delays(
    *, first: float = 0.1, factor: float = 2.0, cap: float = 10.0, jitter: Callable[[], float] = random.random
) -> Iterator[float]:
    """Delays before each reconnection attempt: exponential, capped, with full jitter.

    Attempt ``n`` waits a random time between 0 and ``min(cap, first * factor**n)``: the
    jitter spreads a crowd of clients that lost the same server, so they do not all
    come back in the same instant.
    """
    ceiling = first
    while True:
        yield jitter() * ceiling
        ceiling = min(cap, ceiling * factor)


class HistoryTooOld(LookupError):
    """The history no longer reaches back to what a client asked for."""

    def __init__(self, wanted_after: int, oldest: int) -> None:
        super().__init__(f"history starts at seq {oldest}; events {wanted_after + 1}..{oldest - 1} are gone")
        self.wanted_after = wanted_after
        self.oldest = oldest


class History:
    """The newest ``maxlen`` events of one room, in sequence order."""

    def __init__(self, *, maxlen: int = 1000) -> None:
        self._events: deque[RoomEvent] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._events)

    @property
    def last_seq(self) -> int:
        return self._events[-1].seq if self._events else 0

    def append(self, event: RoomEvent) -> None:
        if event.seq <= self.last_seq:
            raise ValueError(f"seq {event.seq} is not after {self.last_seq}")
        self._events.append(event)

    def after(self, seq: int) -> list[RoomEvent]:
        """Every kept event with a sequence number above ``seq``.

        Raises:
            HistoryTooOld: when events after ``seq`` existed but have been dropped.
        """
        if not self._events or seq >= self.last_seq:
            return []
        oldest = self._events[0].seq
        if seq + 1 < oldest:
            raise HistoryTooOld(seq, oldest)
        return [event for event in self._events if event.seq > seq]


class Tracked(StrEnum):
    NEXT = "next"
    DUPLICATE = "duplicate"
    GAP = "gap"
    FIRST = "first"


class SequenceTracker:
    """A client's view of a room's sequence: spots duplicates and gaps.

    ``missing`` lists every range ``(first, last)`` of sequence numbers that never
    arrived, so a test or a lesson can show that nothing was lost.
    """

    def __init__(self, last: int | None = None) -> None:
        self.last = last
        self.missing: list[tuple[int, int]] = []
        self.duplicates = 0

    def observe(self, seq: int) -> Tracked:
        if self.last is None:
            self.last = seq
            return Tracked.FIRST
        if seq <= self.last:
            self.duplicates += 1
            return Tracked.DUPLICATE
        result = Tracked.NEXT
        if seq > self.last + 1:
            self.missing.append((self.last + 1, seq - 1))
            result = Tracked.GAP
        self.last = seq
        return result
