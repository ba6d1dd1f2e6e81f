"""Heartbeats: how a server (or client) learns that the other end is gone.

A TCP connection can die without a sound: a laptop lid closes, a phone leaves the Wi-Fi,
a NAT gateway forgets its mapping. Nothing arrives, not even a FIN, and the connection
looks open forever; the original tutorial has seen "thousands of dead connections" pile
up that way. The cure is to expect to hear from the other end regularly (a ping
answered by a pong, or any message at all) and to give up on a connection that has been
silent for too long.

:class:`HeartbeatPolicy` is that rule, with no I/O, so it is testable with a fake clock;
:func:`keep_alive` applies it to a :mod:`websockets` connection with protocol pings
(what the tutorial's Rust code does by hand). Browsers cannot send protocol pings from
JavaScript, so the chat also has an application-level heartbeat (JSON ``ping``/``pong``)
driven by the same policy (see :class:`wslab.servers.chat.ChatServer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["HeartbeatPolicy", "Verdict", "keep_alive"]


class Verdict(StrEnum):
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

    @property
    def detection_bound(self) -> float:
        """The longest a dead connection can go unnoticed."""
        return self.interval + self.timeout

    def verdict(self, *, last_heard: float, now: float) -> Verdict:
        return Verdict.DEAD if now - last_heard > self.timeout else Verdict.ALIVE


async def keep_alive(
    connection: Any,
    policy: HeartbeatPolicy,
    *,
    on_dead: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Ping ``connection`` every ``policy.interval``; abort it once ``policy`` says it is dead.

    Any pong counts as hearing from the peer. Aborting (not closing) is deliberate: a
    close handshake needs the peer to answer, and a dead peer never will. ``on_dead``
    gets the seconds of silence when the connection is declared dead. Returns when the
    connection ends, for whatever reason.
    """
    last_heard = clock()

    def heard(pong: asyncio.Future[float]) -> None:
        nonlocal last_heard
        if not pong.cancelled() and pong.exception() is None:  # a real pong, not a closing connection
            last_heard = clock()

    while True:
        await asyncio.sleep(policy.interval)
        if connection.protocol.close_rcvd is not None or connection.transport.is_closing():
            return
        now = clock()
        if policy.verdict(last_heard=last_heard, now=now) is Verdict.DEAD:
            if on_dead is not None:
                on_dead(now - last_heard)
            connection.transport.abort()
            return
        with contextlib.suppress(Exception):  # a connection closing under us: the next turn returns
            waiter = await connection.ping()
            waiter.add_done_callback(heard)
