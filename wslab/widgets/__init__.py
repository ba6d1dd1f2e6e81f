"""Live views for the notebook: logs, chat panels, the audience and fleet views (``views.py``),
an in-notebook browser client (``browser_chat.py``), the join links and QR code of audience
mode (``audience.py``) and its moderation controls (``moderation_panel.py``). They show what the
shells do; they decide nothing. ``projector()`` scales every view's text (``style.py``); new
lines are read out to screen readers (``live_region.py``).

Each name loads its module on first use (and ipywidgets with it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .audience import join_urls, qr_svg
    from .browser_chat import BrowserChat
    from .style import projector
    from .views import AudienceView, ChatBox, ChatPanel, FleetView, MessageLog, ServerPanel

__all__ = [
    "AudienceView",
    "BrowserChat",
    "ChatBox",
    "ChatPanel",
    "FleetView",
    "MessageLog",
    "ServerPanel",
    "join_urls",
    "projector",
    "qr_svg",
]

lazy_exports(
    globals(),
    {
        "AudienceView": ".views",
        "BrowserChat": ".browser_chat",
        "ChatBox": ".views",
        "ChatPanel": ".views",
        "FleetView": ".views",
        "MessageLog": ".views",
        "ServerPanel": ".views",
        "join_urls": ".audience",
        "projector": ".style",
        "qr_svg": ".audience",
    },
)
