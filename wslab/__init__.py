"""wslab: the helper package of a Jupyter course on real-time WebSockets in Python.

Lessons import what they need from here so that each notebook shows only the idea it
teaches: servers that live in the kernel (:mod:`wslab.runtime`), an I/O-free event log
(:mod:`wslab.events`), live widgets (:mod:`wslab.widgets`) and exercise checks.
"""

from .events import CloseCode, Direction, EventLog, LogEvent
from .runtime import ServerHandle, running, serve, stop, stop_all, wait_until

__all__ = [
    "CloseCode",
    "Direction",
    "EventLog",
    "LogEvent",
    "ServerHandle",
    "running",
    "serve",
    "stop",
    "stop_all",
    "wait_until",
]
__version__ = "0.1.0"
