"""One connection in a chat room, as the room sees it. No I/O.

In a module of its own because the room keeps members and the actions it returns name them:
both import it, neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .limits import TokenBucket
from .protocol import Dialect
from .room_event import RoomEvent

__all__ = ["Member"]


@dataclass(eq=False, slots=True)
class Member:
    """One connection in the room, as the room sees it; ``connection`` is the shell's own."""

    connection: Any
    name: str
    dialect: Dialect
    #: The last sequence number the client says it saw (json hello), or None.
    resume: int | None = None
    #: The fingerprint of the event it saw under ``resume``, to check against the broker's.
    fingerprint: str | None = None
    #: Its resume was from a numbering the broker lost since: the last seq it had there.
    lost_after: int | None = None
    #: The room's last seq and event when its history was asked for (see ChatRoom.history_arrived).
    room_mark: tuple[int, RoomEvent | None] = (0, None)
    #: Highest sequence number handed to this client; nothing at or below is sent again.
    last_seq: int = 0
    #: While the client is sent its welcome and replay, live events wait here (a reset sends it away);
    #: None once it is live.
    waiting: list[RoomEvent] | None = field(default_factory=list)
    limiter: TokenBucket | None = None
    #: When anything last arrived from this client: its heartbeat.
    last_heard: float = 0.0
    #: Its welcome went out: what follows is replay.
    welcomed: bool = False
    #: Its join was published (or waits for the tick): its leave will be, exactly once.
    joined: bool = False
    #: In the room: False once it left, was replaced, evicted or dropped.
    present: bool = True
