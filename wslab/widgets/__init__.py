"""Live views for the notebook: logs, chat panels, the audience and fleet views, and an
in-notebook browser client. They show what the shells do; they decide nothing."""

from .audience import join_urls, qr_svg
from .browser_chat import BrowserChat
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
    "qr_svg",
]
