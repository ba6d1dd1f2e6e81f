"""Heartbeats: how a server (or client) learns that the other end is gone.

A TCP connection can die without a sound: a laptop lid closes, a phone leaves the Wi-Fi,
a NAT gateway forgets its mapping. Nothing arrives, not even a FIN, and the connection
looks open forever; the original tutorial has seen "thousands of dead connections" pile
up that way. The cure is to expect to hear from the other end regularly (a ping
answered by a pong, or any message at all) and to give up on a connection that has been
silent for too long.

:class:`HeartbeatPolicy` is that rule, with no I/O, so it is testable with a fake clock;
:func:`wslab.runtime.keep_alive` applies it to a :mod:`websockets` connection, and the
chat room (:mod:`wslab.core.room`) to its application-level ``ping``/``pong``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["HeartbeatPolicy", "Verdict"]


class Verdict(StrEnum):
    """What a :class:`HeartbeatPolicy` says of a connection, given when it was last heard."""

    ALIVE = "alive"
    DEAD = "dead"


@dataclass(frozen=True)
class HeartbeatPolicy:
    """Ping every ``interval`` seconds; dead when nothing was heard for ``timeout`` seconds.

    The tutorial's production values are 15 s and 45 s (three missed intervals). A dead
    connection is noticed at most ``interval + timeout`` seconds after it died: it may die
    just after a check, and the first check that sees ``timeout`` of silence comes at the
    next tick.
    """

    interval: float = 15.0
    timeout: float = 45.0

    def __post_init__(self) -> None:
        if not (0 < self.interval < math.inf and 0 < self.timeout < math.inf):
            raise ValueError("interval and timeout must be positive, finite numbers of seconds")

    def verdict(self, *, last_heard: float, now: float) -> Verdict:
        return Verdict.DEAD if now - last_heard > self.timeout else Verdict.ALIVE
