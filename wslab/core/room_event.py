"""A room's events, as brokers carry them, history keeps them and clients receive them.

Part of the wire protocol (:mod:`wslab.core.protocol`), in a module of its own because every
layer reads it: the room, the brokers, the clients. So is :class:`BrokerReset`, the other
thing a broker's subscription yields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "MODERATION",
    "NAMES_SHOWN",
    "BrokerReset",
    "EventKind",
    "RoomEvent",
    "fingerprint",
    "json_message",
    "moderation_line",
    "presence_line",
]

#: Names a coalesced join or leave shows its clients; the rest are counted ("and 38 others").
NAMES_SHOWN = 3


def json_message(message_type: str, **fields: Any) -> str:
    """A json-dialect message: ``{"type": message_type, ...fields}``, compact."""
    return json.dumps({"type": message_type, **fields}, separators=(",", ":"), ensure_ascii=False)


def fingerprint(kind: str, name: str, text: str) -> str:
    """A short hash of what an event says, whatever its number: FNV-1a (32 bits) over the UTF-8
    of ``kind``, ``name`` and ``text``, as eight hex digits; the chat page computes the same.

    A client that resumes after seq N sends its event N's fingerprint; the server compares it with
    the event its broker keeps under N. Another one there means the broker lost the room and
    numbered it again since: the client's N belongs to a numbering that is gone.
    """
    value = 0x811C9DC5
    for byte in f"{kind}\n{name}\n{text}".encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


class EventKind(StrEnum):
    """What happened in a room. Every kind gets a sequence number and lands in history.

    The last four are an instructor's decisions (:mod:`wslab.core.moderation`): they travel
    through the broker like the rest, so every server applies them and every client sees them.
    """

    CHAT = "chat"
    JOIN = "join"
    LEAVE = "leave"
    #: ``name`` was sent away; ``text`` is the reason, for that person only (see :meth:`RoomEvent.to_wire`).
    KICK = "kick"
    #: ``name`` may read but no longer send.
    MUTE = "mute"
    UNMUTE = "unmute"
    #: Everything before this event is removed from every screen.
    CLEAR = "clear"


#: The kinds that are an instructor's decisions rather than something a member did.
MODERATION = frozenset({EventKind.KICK, EventKind.MUTE, EventKind.UNMUTE, EventKind.CLEAR})


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One event of a room, as the broker carries it, history keeps it and clients get it.

    ``seq`` is 0 until the broker assigns it. ``via`` names the server the author is
    connected to; ``at`` is when it was published, for a publisher that measures staleness
    (the fleet feed stamps it; 0.0 when nobody did).

    A *coalesced* join or leave (a big room's, one per tick) has ``names``: every name
    in the broker's copy, so each server's room can keep its roster; only the first
    :data:`NAMES_SHOWN` on the wire. ``count`` is how many people it is about, ``total``
    how many were in the room after it; ``name`` is its first name.
    """

    kind: EventKind
    name: str
    text: str = ""
    room: str = "lobby"
    seq: int = 0
    via: str = ""
    at: float = 0.0
    #: The author's own id for the message, echoed in its ack so the author can match it.
    ref: str = ""
    names: tuple[str, ...] = ()
    count: int = 0
    total: int = 0

    @property
    def coalesced(self) -> bool:
        return bool(self.names)

    @property
    def fingerprint(self) -> str:
        """What it says, hashed (:func:`fingerprint`): tells it from another event under its seq."""
        return fingerprint(str(self.kind), self.name, self.text)

    def with_seq(self, seq: int) -> RoomEvent:
        return replace(self, seq=seq)

    def to_dict(self) -> dict[str, Any]:
        data = {"type": str(self.kind), **{k: v for k, v in asdict(self).items() if k != "kind"}}
        if not self.names:  # a per-user event keeps the shape it always had
            del data["names"], data["count"], data["total"]
        else:
            data["names"] = list(self.names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomEvent:
        names = data.get("names") or ()
        return cls(
            EventKind(data["type"]),
            str(data["name"]),
            str(data.get("text", "")),
            str(data.get("room", "lobby")),
            int(data.get("seq", 0)),
            str(data.get("via", "")),
            float(data.get("at", 0.0)),
            str(data.get("ref", "")),
            tuple(str(name) for name in names) if isinstance(names, list) else (),
            int(data.get("count", 0)),
            int(data.get("total", 0)),
        )

    def to_json(self) -> str:
        """The whole event, as brokers carry it and history stores it."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def to_wire(self) -> str:
        """The event as a json-dialect client receives it: only what a client uses.

        ``room`` (a server serves one), ``at`` and ``ref`` (the author alone needs it, and
        gets it in its ack) stay behind: each byte left out is left out a thousand times over
        in a room of a thousand. So do a coalesced event's names past :data:`NAMES_SHOWN`, and
        a kick's reason: the person sent away gets it in an error reply, the room does not.
        """
        text = "" if self.kind is EventKind.KICK else self.text
        fields: dict[str, Any] = {"seq": self.seq, "name": self.name, "text": text, "via": self.via}
        if self.names:
            fields.update(names=list(self.names[:NAMES_SHOWN]), count=self.count, total=self.total)
        return json_message(str(self.kind), **fields)

    @classmethod
    def from_json(cls, payload: str | bytes) -> RoomEvent:
        return cls.from_dict(json.loads(payload))


@dataclass(frozen=True, slots=True)
class BrokerReset:
    """What a subscription yields, in order among the events, when its broker came back without
    the room's data (a Redis restarted without persistence, a NATS stream recreated).

    The events yielded after it are numbered from ``last_seq + 1`` on, in the broker's new
    numbering; events numbered before the reset will never be delivered, and a client holding
    an older, higher ``seq`` must be told, or it would ignore every new event as already seen.
    The room (:meth:`wslab.core.room.ChatRoom.reset`) takes it as it comes.
    """

    room: str
    #: The events that follow are numbered above this: 0 when the broker kept the new numbering
    #: from its start (events published since it came back follow the reset), more only when
    #: the new numbering's first events were already trimmed.
    last_seq: int


def presence_line(event: RoomEvent) -> str:
    """``alice, bob, carol and 37 others joined`` (plus ``(1,204 here)``) for a coalesced event."""
    verb = "joined" if event.kind is EventKind.JOIN else "left"
    shown = list(event.names[:NAMES_SHOWN])
    others = max(0, event.count - len(shown))
    if others:
        who = f"{', '.join(shown)} and {others:,} other{'s' if others > 1 else ''}"
    else:
        who = " and ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else shown[0]
    return f"{who} {verb} the chat ({event.total:,} here)"


def moderation_line(event: RoomEvent) -> str:
    """What an instructor's decision reads as, for everyone: ``bob was muted by the instructor``."""
    match event.kind:
        case EventKind.KICK:
            return f"{event.name} was removed by the instructor"
        case EventKind.MUTE:
            return f"{event.name} was muted by the instructor"
        case EventKind.UNMUTE:
            return f"{event.name} was unmuted by the instructor"
        case _:
            return "the instructor cleared the chat"
