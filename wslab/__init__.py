"""wslab: the helper package of a Jupyter course on real-time WebSockets in Python.

Lessons import what they need from here so that each notebook shows only the idea it
teaches: servers that live in the kernel (:mod:`wslab.runtime`), an I/O-free event log
(:mod:`wslab.events`), live widgets (:mod:`wslab.widgets`) and exercise checks.

The names below load their modules on first use: ``import wslab.protocol`` (the I/O-free
core) must not start importing asyncio servers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.close_codes import CloseCode
    from .core.connection_log import LogEvent, LogKind
    from .orientation import where
    from .runtime.event_log import EventLog
    from .runtime.handles import ServerHandle, running, serve, stop, stop_all, wait_until

#: Each public name, and the module that defines it.
_EXPORTS = {
    "CloseCode": "core.close_codes",
    "EventLog": "runtime.event_log",
    "LogEvent": "core.connection_log",
    "LogKind": "core.connection_log",
    "ServerHandle": "runtime.handles",
    "running": "runtime.handles",
    "serve": "runtime.handles",
    "stop": "runtime.handles",
    "stop_all": "runtime.handles",
    "wait_until": "runtime.handles",
    "where": "orientation",
}

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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value
