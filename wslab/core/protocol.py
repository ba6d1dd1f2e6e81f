"""The chat's wire protocol in one place: every message a client or a server sends, typed.

Two dialects share one server. **plain** is the original tutorial's: the first text message
is the username and every event arrives as a line of text. **json** is this course's fix:
the client opens with a :class:`Hello`, and every room event carries the room's sequence
number ``seq``, so a client can see what it missed and resume after a reconnect.

Each message is a dataclass. :func:`encode` gives the json dialect's text of any message,
:func:`render_plain` the plain dialect's line (or None when that dialect has no such
message); :func:`parse_hello`, :func:`parse_client_message` and :func:`parse_server_message`
read them back. The browser page (``static/README.md``) speaks the same messages.

No I/O here: the server, :class:`~wslab.clients.ChatClient`, the benchmarks and the tests
all build and read messages through this module.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, overload

from .close_codes import CloseCode
from .errors import WslabError
from .room_event import EventKind, RoomEvent, moderation_line, presence_line
from .room_event import json_message as _json

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_REF_LENGTH",
    "MAX_TEXT_LENGTH",
    "Ack",
    "BadHello",
    "ClientMessage",
    "Dialect",
    "Error",
    "Hello",
    "HistoryLost",
    "Live",
    "Ping",
    "Pong",
    "ProtocolViolation",
    "Reset",
    "Say",
    "ServerMessage",
    "UsernameError",
    "Users",
    "Welcome",
    "Who",
    "clean_text",
    "dialect_of",
    "encode",
    "parse_client_message",
    "parse_hello",
    "parse_server_message",
    "ref_of",
    "render_plain",
    "validate_username",
]

MAX_NAME_LENGTH = 32
MAX_TEXT_LENGTH = 4000
#: A client's ``ref`` is cut to this many characters: it is an id, not a message.
MAX_REF_LENGTH = 64
#: Names a person may not take, because the server speaks under them.
RESERVED_NAMES = frozenset({"system", "server"})


class Dialect(StrEnum):
    """How a connection speaks: the tutorial's lines of text, or this course's json messages."""

    PLAIN = "plain"
    JSON = "json"


class ProtocolViolation(WslabError, ValueError):
    """A message that does not follow the protocol; answered with an error reply."""

    reply_code = "bad-message"


class BadHello(ProtocolViolation):
    """A first message that is not a username nor a json hello; the connection is refused."""

    reply_code = "bad-hello"
    close_code = CloseCode.POLICY_VIOLATION


class UsernameError(WslabError, ValueError):
    """A username the server refuses; the message says why, for the person who chose it."""

    close_code = CloseCode.POLICY_VIOLATION
    reply_code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.reply_code = code

    @property
    def code(self) -> str:
        """The reply code (``name-taken``, ...), under the name lessons print."""
        return self.reply_code


def validate_username(raw: str, *, taken: Iterable[str] = (), folded: bool = False) -> str:
    """The cleaned-up name, or :class:`UsernameError` saying what is wrong with it.

    ``folded``: ``taken`` already holds casefolded names (a room's set, so that a
    thousandth arrival costs no more than the first).
    """
    name = raw.strip()
    if not name:
        raise UsernameError("name-empty", "a username cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UsernameError("name-too-long", f"a username has at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise UsernameError("name-invalid", "a username cannot contain control characters")
    if name.casefold() in RESERVED_NAMES:
        raise UsernameError("name-reserved", f"{name!r} is reserved for the server")
    taken_folded = taken if folded else {other.casefold() for other in taken}
    if name.casefold() in taken_folded:
        raise UsernameError("name-taken", f"the username {name!r} is already taken")
    return name


def clean_text(text: str) -> str:
    """A chat text as the room publishes it: surrounding whitespace stripped.

    The client applies the same rule to what it keeps in its outbox, so its own transcript
    shows what everyone else sees.
    """
    return text.strip()


# --- client to server -----------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """The first message of a connection: a bare name (plain) or ``{"type": "hello", ...}``."""

    name: str
    dialect: Dialect
    #: The last sequence number the client saw, when it reconnects.
    resume: int | None = None
    #: Proof of the name, from ``POST /api/token`` (lesson 04); None in the plain dialect.
    token: str | None = None
    #: The :func:`~wslab.core.room_event.fingerprint` of the event the client saw under ``resume``:
    #: lets the server tell a resume into a numbering its broker has since lost.
    last: str | None = None

    def to_json(self) -> str:
        fields: dict[str, Any] = {"name": self.name}
        if self.resume is not None:
            fields["resume"] = self.resume
        if self.last is not None:
            fields["last"] = self.last
        if self.token is not None:
            fields["token"] = self.token
        return _json("hello", **fields)


@dataclass(frozen=True)
class Say:
    """A chat message from a client (``{"type": "chat", "text", "ref"}``); ``ref`` is the
    client's own id for it, echoed in the :class:`Ack`."""

    text: str
    ref: str = ""

    def to_json(self) -> str:
        return _json("chat", text=self.text, ref=self.ref) if self.ref else _json("chat", text=self.text)


@dataclass(frozen=True)
class Pong:
    """The answer to a :class:`Ping`: proof of life, never counted against the rate limit."""

    t: float | None = None

    def to_json(self) -> str:
        return _json("pong", t=self.t)


@dataclass(frozen=True)
class Who:
    """``{"type": "who"}``: who is in the room? Answered with :class:`Users`; a big room sends
    no names otherwise."""

    def to_json(self) -> str:
        return _json("who")


ClientMessage = Hello | Say | Pong | Who


# --- server to client -----------------------------------------------------------------


@dataclass(frozen=True)
class Welcome:
    """Admission: the room's last ``seq``, who is in, and what the client should expect."""

    name: str
    seq: int
    users: list[str]
    server: str = ""
    #: ``(interval, timeout)`` of the application heartbeat, if the server pings.
    heartbeat: tuple[float, float] | None = None
    #: ``(messages per second, burst)`` the server allows, if it limits.
    rate: tuple[float, float] | None = None
    #: In a big room: how many are in; ``users`` is then left empty (ask with :class:`Who`).
    count: int | None = None

    def to_json(self) -> str:
        extras: dict[str, Any] = {}
        if self.count is not None:
            extras["count"] = self.count
        if self.heartbeat is not None:
            extras["heartbeat"] = {"interval": self.heartbeat[0], "timeout": self.heartbeat[1]}
        if self.rate is not None:
            extras["rate"] = list(self.rate)
        return _json("welcome", name=self.name, seq=self.seq, users=self.users, server=self.server, **extras)

    def to_plain(self) -> str:
        return f"Welcome, {self.name}!"


@dataclass(frozen=True)
class Ack:
    """The author's own message, published as ``seq``; ``ref`` is the id the author gave it."""

    seq: int
    ref: str

    def to_json(self) -> str:
        return _json("ack", seq=self.seq, ref=self.ref)


@dataclass(frozen=True)
class Live:
    """Replay is over: what follows is live, and unacknowledged messages may be resent."""

    seq: int

    def to_json(self) -> str:
        return _json("live", seq=self.seq)


@dataclass(frozen=True)
class HistoryLost:
    """Events ``first..last`` are no longer kept: the client cannot get them back."""

    first: int
    last: int
    text: str = ""

    def to_json(self) -> str:
        return _json("history-lost", first=self.first, last=self.last, text=self.text)


@dataclass(frozen=True)
class Reset:
    """The room's numbering started again after ``seq`` (its broker came back without its data).

    A new epoch: the client takes ``seq`` as the last one seen, or it would ignore every
    new event as already seen. Events of the old numbering that it missed are gone.
    """

    seq: int
    text: str = "the room's history was reset; earlier messages cannot be replayed"
    #: The last seq of the old numbering this client had: what came after it and had not
    #: reached the client is gone (None: not known).
    lost_after: int | None = None

    def to_json(self) -> str:
        if self.lost_after is None:
            return _json("reset", seq=self.seq, text=self.text)
        return _json("reset", seq=self.seq, text=self.text, lost_after=self.lost_after)

    @classmethod
    def lost(cls, seq: int, lost_after: int) -> Reset:
        """The reset a client gets when its broker lost the room: says what it may have missed."""
        text = (
            f"the room's history was reset (its message broker lost it): messages after seq {lost_after}"
            " that had not reached you are gone"
        )
        return cls(seq, text, lost_after)


@dataclass(frozen=True)
class Error:
    """Something the client sent was refused; ``ref`` names the message, when it had one."""

    code: str
    text: str
    ref: str = ""

    def to_json(self) -> str:
        if self.ref:
            return _json("error", code=self.code, text=self.text, ref=self.ref)
        return _json("error", code=self.code, text=self.text)

    def to_plain(self) -> str:
        return f"error: {self.text}"


@dataclass(frozen=True)
class Ping:
    """The application heartbeat (lesson 05): answer with a :class:`Pong` carrying ``t``
    (the server's time; None from a server that sent none)."""

    t: float | None

    def to_json(self) -> str:
        return _json("ping", t=self.t)


@dataclass(frozen=True)
class Users:
    """The answer to :class:`Who`: everyone in the room, as this server knows, and how many."""

    users: list[str]
    count: int

    def to_json(self) -> str:
        return _json("users", users=self.users, count=self.count)


ServerMessage = Welcome | RoomEvent | Ack | Live | HistoryLost | Reset | Error | Ping | Users


def encode(message: ServerMessage | ClientMessage) -> str:
    """The json dialect's text of ``message``."""
    return message.to_wire() if isinstance(message, RoomEvent) else message.to_json()


@overload
def render_plain(message: RoomEvent) -> str: ...
@overload
def render_plain(message: ServerMessage) -> str | None: ...
def render_plain(message: ServerMessage) -> str | None:
    """The plain dialect's line for ``message``, or None: that dialect has no such message.

    Room events become the original tutorial's lines: ``[alice] hi``, ``>>> bob joined the chat``.
    """
    if isinstance(message, RoomEvent):
        match message.kind:
            case EventKind.CHAT:
                return f"[{message.name}] {message.text}"
            case _ if message.coalesced:
                return f">>> {presence_line(message)}"
            case EventKind.JOIN:
                return f">>> {message.name} joined the chat"
            case EventKind.LEAVE:
                return f">>> {message.name} left the chat"
            case _:  # an instructor's kick, mute, unmute or clear
                return f">>> {moderation_line(message)}"
    if isinstance(message, Welcome | Error):
        return message.to_plain()
    return None


# --- parsing --------------------------------------------------------------------------


def _load_object(message: str, complaint: str, error: type[ProtocolViolation]) -> dict[str, Any]:
    try:
        data = json.loads(message)
    except json.JSONDecodeError as exc:
        raise error(f"{complaint}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise error("expected a JSON object")
    return data


def parse_hello(message: str | bytes) -> Hello:
    """Read a first message: a JSON ``hello`` or, as in the original tutorial, a bare name."""
    if isinstance(message, bytes):
        raise BadHello("the first message must be text: your username")
    stripped = message.strip()
    if not stripped.startswith("{"):
        return Hello(message, Dialect.PLAIN)
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise BadHello(f"the hello message is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("type") != "hello" or not isinstance(data.get("name"), str):
        raise BadHello('expected {"type": "hello", "name": "<your name>"}')
    resume = data.get("resume")
    if resume is not None and (not isinstance(resume, int) or isinstance(resume, bool) or resume < 0):
        raise BadHello("resume must be the last sequence number you saw (an integer >= 0)")
    token = data.get("token")
    last = data.get("last")  # a fingerprint; anything else leaves nothing to check
    last = last if isinstance(last, str) and 0 < len(last) <= 16 else None
    return Hello(data["name"], Dialect.JSON, resume, token if isinstance(token, str) else None, last)


def dialect_of(first: str | bytes) -> Dialect:
    """The dialect a first message speaks, even a malformed one: how to answer it."""
    return Dialect.JSON if isinstance(first, str) and first.lstrip().startswith("{") else Dialect.PLAIN


def parse_client_message(message: str | bytes, dialect: Dialect) -> Say | Pong | Who | None:
    """A client's message after its hello: :class:`Say`, :class:`Pong`, :class:`Who`, or None
    for nothing to say.

    Raises:
        ProtocolViolation: for binary frames, malformed JSON, unknown types, long texts.
    """
    if isinstance(message, bytes):
        raise ProtocolViolation("binary messages are not part of the chat protocol; send text")
    if dialect is Dialect.JSON:
        data = _load_object(message, "not valid JSON", ProtocolViolation)
        if data.get("type") == "pong":
            t = data.get("t")
            return Pong(t if isinstance(t, int | float) and not isinstance(t, bool) else None)
        if data.get("type") == "who":
            return Who()
        if data.get("type") != "chat" or not isinstance(data.get("text"), str):
            raise ProtocolViolation('expected {"type": "chat", "text": "..."}')
        said, ref = str(data["text"]), str(data.get("ref") or "")[:MAX_REF_LENGTH]
    else:
        said, ref = message, ""
    text = clean_text(said)
    if len(text) > MAX_TEXT_LENGTH:
        raise ProtocolViolation(f"a message has at most {MAX_TEXT_LENGTH} characters")
    return Say(text, ref) if text else None


def ref_of(message: str | bytes) -> str:
    """The ``ref`` a malformed json message carried, if one can be read: the error reply names
    it, so the client can drop that message from its outbox instead of resending it forever."""
    try:
        data = json.loads(message)
    except (ValueError, TypeError):
        return ""
    ref = data.get("ref") if isinstance(data, dict) else None
    return str(ref)[:MAX_REF_LENGTH] if ref else ""


def _parse_welcome(data: dict[str, Any]) -> Welcome:
    beat = data.get("heartbeat")
    rate = data.get("rate")
    return Welcome(
        str(data["name"]),
        int(data["seq"]),
        [str(user) for user in data.get("users", [])],
        str(data.get("server", "")),
        (float(beat["interval"]), float(beat["timeout"])) if isinstance(beat, dict) else None,
        (float(rate[0]), float(rate[1])) if isinstance(rate, list) and len(rate) == 2 else None,
        int(data["count"]) if data.get("count") is not None else None,
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


_SERVER_PARSERS: dict[str, Callable[[dict[str, Any]], ServerMessage]] = {
    "welcome": _parse_welcome,
    "ack": lambda d: Ack(int(d["seq"]), str(d.get("ref", ""))),
    "live": lambda d: Live(int(d.get("seq", 0))),
    "history-lost": lambda d: HistoryLost(int(d["first"]), int(d["last"]), str(d.get("text", ""))),
    "reset": lambda d: Reset(int(d["seq"]), str(d.get("text", "")), _optional_int(d.get("lost_after"))),
    "error": lambda d: Error(str(d.get("code", "")), str(d.get("text", "")), str(d.get("ref") or "")),
    "ping": lambda d: Ping(float(d["t"]) if isinstance(d.get("t"), int | float) else None),
    "users": lambda d: Users([str(user) for user in d["users"]], int(d.get("count", len(d["users"])))),
    **{str(kind): RoomEvent.from_dict for kind in EventKind},
}


def parse_server_message(message: str | bytes) -> ServerMessage:
    """Read a json-dialect message from the server (what :class:`~wslab.clients.ChatClient` gets).

    Raises:
        ProtocolViolation: not a server message this protocol defines (clients ignore those,
            so the server can grow the protocol).
    """
    text = message if isinstance(message, str) else message.decode(errors="replace")
    data = _load_object(text, "not valid JSON", ProtocolViolation)
    parser = _SERVER_PARSERS.get(str(data.get("type")))
    if parser is None:
        raise ProtocolViolation(f"unknown message type {data.get('type')!r}")
    try:
        return parser(data)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ProtocolViolation(f"malformed {data['type']} message: {exc!r}") from None
