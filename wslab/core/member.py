"""One connection in a chat room, as the room sees it. No I/O.

In a module of its own because the room keeps members and the actions it returns name them:
both import it, neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .limits import TokenBucket
from .protocol import Dialect
from .room_event import BrokerReset, RoomEvent

__all__ = ["Member"]


@dataclass(eq=False, slots=True)
class Member:
    """One connection in the room, as the room sees it; ``connection`` is the shell's own."""

    connection: Any
    name: str
    dialect: Dialect
    #: The last sequence number the client says it saw (json hello), or None.
    resume: int | None = None
    #: Highest sequence number handed to this client; nothing at or below is sent again.
    last_seq: int = 0
    #: While the client is sent its welcome and replay, live events (and resets) wait here;
    #: None once it is live.
    waiting: list[RoomEvent | BrokerReset] | None = field(default_factory=list)
    limiter: TokenBucket | None = None
    #: When anything last arrived from this client: its heartbeat.
    last_heard: float = 0.0
    #: Its welcome went out: what follows is replay.
    welcomed: bool = False
    #: Its join was published (or waits for the tick): its leave will be, exactly once.
    joined: bool = False
    #: In the room: False once it left, was replaced, evicted or dropped.
    present: bool = True
