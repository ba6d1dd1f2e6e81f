"""Asyncio clients, shells over :mod:`wslab.core`: the resuming chat client (``chat.py``,
lesson 03 on), the fleet dashboard's client (``fleet.py``, lesson 07), and the probes lesson
01 uses to show a handshake byte for byte (:func:`capture_handshake`, :func:`exchange`).
Each name loads its module on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .chat import ChatClient, capture_handshake, exchange
    from .fleet import FleetClient

__all__ = ["ChatClient", "FleetClient", "capture_handshake", "exchange"]

lazy_exports(
    globals(),
    {
        "ChatClient": ".chat",
        "FleetClient": ".fleet",
        "capture_handshake": ".chat",
        "exchange": ".chat",
    },
)
