"""Each message's number, by its author's ``ref``, across broker resets: the decision alone, no I/O.

A client resends what was not acknowledged; the room must acknowledge a resend, never publish
it twice. So it remembers the seq each ``(author, ref)`` got, and in which *epoch* (how many
times the broker lost the room's data: a number from another epoch means nothing now). It also
keeps this server's own messages that were numbered and not yet delivered back by the
subscription: when a reset comes, those are in doubt (:mod:`wslab.core.in_doubt`) until the new
numbering says whether it has them, whatever number they got (a broker that came back may have
numbered one already, or given its number to another).
"""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum

from .in_doubt import InDoubt
from .room_event import RoomEvent

__all__ = ["Answer", "Refs"]

#: ``(author, ref)``: one message of one user.
Key = tuple[str, str]


class Answer(StrEnum):
    """What to do with a message a client sent, by what its ref says (else: the seq to ack)."""

    #: Never seen: publish it.
    PUBLISH = "publish"
    #: In doubt across a reset: wait, the new numbering settles it.
    WAIT = "wait"


class Refs:
    """The seq and epoch each remembered ``(author, ref)`` got; the messages in doubt."""

    def __init__(self, remembered: int) -> None:
        #: How many times the broker came back without the room's data.
        self.epoch = 0
        self.in_doubt = InDoubt()
        self._seqs: OrderedDict[Key, tuple[int, int]] = OrderedDict()
        self._remembered = remembered
        #: This server's own messages numbered and not delivered yet, with their seq.
        self._undelivered: OrderedDict[Key, int] = OrderedDict()

    def answer(self, key: Key) -> Answer | int:
        """For a message sent again or anew: :class:`Answer`, or the seq to acknowledge it with
        (0: numbered before a reset, its number means nothing now)."""
        if key in self.in_doubt:
            return Answer.WAIT
        known = self._seqs.get(key)
        if known is None:
            return Answer.PUBLISH
        epoch, seq = known
        return seq if epoch == self.epoch else 0

    def numbered(self, event: RoomEvent, *, own: bool) -> None:
        """``event`` (with a ref) was numbered in this epoch: ``own``, this server published it
        (unless the subscription delivered it first); else it came from another server."""
        key = (event.name, event.ref)
        if own and self.is_news(event):
            self._undelivered[key] = event.seq
            if len(self._undelivered) > self._remembered:
                self._undelivered.popitem(last=False)
        self._seqs[key] = (self.epoch, event.seq)
        while len(self._seqs) > self._remembered:
            self._seqs.popitem(last=False)

    def delivered(self, event: RoomEvent) -> None:
        """The subscription delivered ``event``: not in doubt at a reset."""
        self._undelivered.pop((event.name, event.ref), None)

    def is_news(self, event: RoomEvent) -> bool:
        """Whether ``event`` carries a number not remembered for its ref in this epoch."""
        return self._seqs.get((event.name, event.ref)) != (self.epoch, event.seq)

    def reset(self) -> None:
        """The broker lost the room: a new epoch. Own messages not delivered yet are in doubt."""
        self.in_doubt.add(self._undelivered.items())
        self._undelivered.clear()
        self.epoch += 1
