"""Who is in a room, and how joins and leaves are announced, without I/O.

Announcing every join to everyone already there costs N²/2 deliveries for N arrivals
(10,000 people: 50 million messages), and while a server fans those out it cannot
accept anyone else. Large chat systems stop doing it past a size: Discord's gateway
leaves members out of guilds above ``large_threshold`` (50 by default) and sends them on
request; Slack sends presence changes only to clients that subscribe, in batches.

:class:`Presence` does the same for a :class:`ChatRoom`:

* up to :attr:`PresencePolicy.exact_up_to` people, every join and leave is announced at
  once, one event each, in order with the chat (what lessons 02-06 show);
* past it, the joins and leaves of one ``tick`` are gathered and announced in one
  coalesced event each ("alice, bob, carol and 37 others joined the chat (1,204 here)"):
  N arrivals cost N deliveries per tick instead of N per arrival; names are given on
  request (``{"type": "who"}``, ``/api/users``) and welcomes carry only the count.

The tick is an input, like everything else here: the shell calls :meth:`tick` with the
time on a timer. Presence events are room events: the broker numbers them and carries
them to every server, whose :class:`Presence` learns the other servers' people from them
(:meth:`seen`). Chat messages are untouched: their numbering, history and resume stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .room_event import EventKind, RoomEvent

__all__ = ["Presence", "PresencePolicy"]


@dataclass(frozen=True)
class PresencePolicy:
    """When presence turns from exact to coalesced, and how often a big room hears of it.

    Args:
        exact_up_to: rooms of at most this many people announce each join and leave at
            once (Discord's ``large_threshold`` default is 50).
        tick: seconds between a big room's coalesced announcements (at most one join
            event and one leave event per tick).
        budget: presence deliveries per second a big room may cost: past ``budget * tick``
            people, announcements come every ``people / budget`` seconds instead (10,000
            people: one a second), so presence never grows into the chat's share.
    """

    exact_up_to: int = 50
    tick: float = 0.5
    budget: int = 10_000

    def __post_init__(self) -> None:
        if self.exact_up_to < 0 or self.tick <= 0 or self.budget <= 0:
            raise ValueError("exact_up_to must be >= 0, tick and budget > 0")

    def interval(self, size: int) -> float:
        """Seconds between a room of ``size`` people's coalesced announcements."""
        return max(self.tick, size / self.budget)


#: Builds an unnumbered event of this room: ``(kind, names, total)``; a ``total`` of None
#: makes the per-user event of a small room (one name, no counts).
EventMaker = Callable[[EventKind, tuple[str, ...], int | None], RoomEvent]


class Presence:
    """One server's view of who is in a room, and the announcements still to make.

    ``local`` is the room's own members (the room owns them); this class keeps the people
    other servers announced (``remote``), and the joins and leaves waiting for the tick.
    """

    def __init__(self, policy: PresencePolicy, server_id: str, make_event: EventMaker) -> None:
        self.policy = policy
        self.server_id = server_id
        self._make_event = make_event
        #: People on other servers, learned from their presence events: (name, server) in order.
        self.remote: dict[tuple[str, str], None] = {}
        self._joins: dict[str, None] = {}
        self._leaves: dict[str, None] = {}
        self._last_tick = float("-inf")

    def size(self, local: int) -> int:
        """How many people are in the room, as far as this server knows."""
        return local + len(self.remote)

    def big(self, local: int) -> bool:
        """Past the threshold: presence by counts, coalesced per tick."""
        return self.size(local) > self.policy.exact_up_to

    def everyone(self, local: Iterable[str]) -> list[str]:
        """Every name in the room: this server's in order of arrival, then the others'."""
        return [*local, *(name for name, _ in self.remote)]

    # What this server's members do

    def joined(self, name: str, local: int) -> RoomEvent | None:
        """``name`` went live: its join to publish now, or None if it waits for the tick."""
        if not (self._joins or self._leaves or self.big(local)):
            return self._make_event(EventKind.JOIN, (name,), None)
        self._joins[name] = None
        return None

    def left(self, name: str, local: int) -> RoomEvent | None:
        """``name``, whose join was announced or is waiting, left: its leave to publish now,
        or None (it waits for the tick, or its join never went out: nobody needs to hear)."""
        if name in self._joins:
            del self._joins[name]
            return None
        if not (self._joins or self._leaves or self.big(local)):
            return self._make_event(EventKind.LEAVE, (name,), None)
        self._leaves[name] = None
        return None

    def tick(self, now: float, local: int) -> list[RoomEvent]:
        """The coalesced leave, then join, gathered since the last tick (leaves first: someone
        who left and came back within a tick is in)."""
        total = self.size(local)
        # 0.9: the shell's timer, ticking every ``policy.tick``, may wake a little early.
        if now - self._last_tick < 0.9 * self.policy.interval(total) or not (self._joins or self._leaves):
            return []
        self._last_tick = now
        events = [
            self._make_event(kind, tuple(names), total)
            for kind, names in ((EventKind.LEAVE, self._leaves), (EventKind.JOIN, self._joins))
            if names
        ]
        self._joins, self._leaves = {}, {}
        return events

    # What the broker delivers

    def seen(self, event: RoomEvent) -> None:
        """Learn who came and went on other servers from their presence events."""
        if event.via == self.server_id or event.kind not in (EventKind.JOIN, EventKind.LEAVE):
            return
        names = event.names or (event.name,)
        if event.kind is EventKind.JOIN:
            self.remote.update(dict.fromkeys((name, event.via) for name in names))
        else:
            for name in names:
                self.remote.pop((name, event.via), None)
