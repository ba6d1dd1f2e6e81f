"""wslab: the helper package of a Jupyter course on real-time WebSockets in Python.

The lessons import from a few packages, one path for each name (``tests/test_exports.py``
pins them, and checks that every lesson keeps to them):

* ``wslab``: servers that live in the kernel (:func:`serve`, :func:`stop_all`, ...), the
  connection log they keep (:class:`EventLog`), and :func:`where` (where this kernel runs);
* :mod:`wslab.core`: the I/O-free rules (the chat room, the client session, heartbeats, ...);
* :mod:`wslab.runtime`: what the asyncio shells stand on (ports, TLS, logs, browser URLs);
* :mod:`wslab.servers`, :mod:`wslab.clients`, :mod:`wslab.brokers`, :mod:`wslab.services`,
  :mod:`wslab.faults`: the asyncio shells;
* :mod:`wslab.widgets`: live views; ``wslab.checks.lessonNN``: exercise checks;
  ``wslab.solutions.lessonNN``: their reference solutions; :mod:`wslab.bench`: lesson 07's
  measurement.

Every name loads its module on first use: ``import wslab`` starts no asyncio server code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .imports import lazy_exports

if TYPE_CHECKING:
    from .core.close_codes import CloseCode
    from .core.connection_log import LogEvent, LogKind
    from .orientation import where
    from .runtime.event_log import EventLog
    from .runtime.handles import ServerHandle, running, serve, stop, stop_all, wait_until

__all__ = [
    "CloseCode",
    "EventLog",
    "LogEvent",
    "LogKind",
    "ServerHandle",
    "running",
    "serve",
    "stop",
    "stop_all",
    "wait_until",
    "where",
]
__version__ = "0.1.0"

lazy_exports(
    globals(),
    {
        "CloseCode": ".core.close_codes",
        "EventLog": ".runtime.event_log",
        "LogEvent": ".core.connection_log",
        "LogKind": ".core.connection_log",
        "ServerHandle": ".runtime.handles",
        "running": ".runtime.handles",
        "serve": ".runtime.handles",
        "stop": ".runtime.handles",
        "stop_all": ".runtime.handles",
        "wait_until": ".runtime.handles",
        "where": ".orientation",
    },
)
