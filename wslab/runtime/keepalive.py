"""The protocol-level heartbeat on a :mod:`websockets` connection: the asyncio shell of
:class:`~wslab.core.HeartbeatPolicy` (lesson 05)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..core.heartbeat import HeartbeatPolicy, Verdict

__all__ = ["keep_alive"]


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
