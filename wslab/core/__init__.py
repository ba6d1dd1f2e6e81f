"""The I/O-free core: every rule of the chat and the lessons' protocols, and no I/O.

Nothing here opens a socket, starts a task, reads a clock it was not given or imports
asyncio, websockets, starlette or widgets (``tests/test_core_imports.py`` checks). Each module
takes inputs and returns what to do; the asyncio shells in :mod:`wslab.servers`,
:mod:`wslab.clients` and :mod:`wslab.brokers` carry it out. So every rule can be tested,
and read, without a network.

What the lessons use (each loads its module on first use):

* :class:`ChatRoom` (``room.py``): every decision of the chat server (lessons 02, 06);
* :class:`ChatSession` (``session.py``): the client's rules (lesson 03);
* :func:`render_plain` (``protocol.py``): an event as the tutorial's plain text;
* :class:`PresencePolicy` (``presence.py``): presence in big rooms (lesson 06);
* :class:`HeartbeatPolicy` (``heartbeat.py``): when a silent peer is dead (lesson 05);
* :data:`GUID` (``handshake.py``): RFC 6455's constant (lesson 01);
* :class:`FleetSimulation` (``fleet.py``) and :class:`SseParser` (``sse.py``): lesson 07;
* :func:`client_address` (``forwarded.py``): the client behind a proxy (lesson 08);
* :data:`AUDIENCE` (``audience.py``) and :func:`new_join_code` (``join_code.py``): audience
  mode's limits and its join code (lesson 04).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .audience import AUDIENCE
    from .fleet import FleetSimulation
    from .forwarded import client_address
    from .handshake import GUID
    from .heartbeat import HeartbeatPolicy
    from .join_code import new_join_code
    from .presence import PresencePolicy
    from .protocol import render_plain
    from .room import ChatRoom
    from .session import ChatSession
    from .sse import SseParser

__all__ = [
    "AUDIENCE",
    "GUID",
    "ChatRoom",
    "ChatSession",
    "FleetSimulation",
    "HeartbeatPolicy",
    "PresencePolicy",
    "SseParser",
    "client_address",
    "new_join_code",
    "render_plain",
]

lazy_exports(
    globals(),
    {
        "AUDIENCE": ".audience",
        "GUID": ".handshake",
        "ChatRoom": ".room",
        "ChatSession": ".session",
        "FleetSimulation": ".fleet",
        "HeartbeatPolicy": ".heartbeat",
        "PresencePolicy": ".presence",
        "SseParser": ".sse",
        "client_address": ".forwarded",
        "new_join_code": ".join_code",
        "render_plain": ".protocol",
    },
)
