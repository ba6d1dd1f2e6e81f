"""The lessons' servers: handlers that :func:`wslab.runtime.serve` can run."""

from ..core.actions import ChatStats, OverflowPolicy
from .chat import ChatServer
from .echo import echo, echo_reply

__all__ = ["ChatServer", "ChatStats", "OverflowPolicy", "echo", "echo_reply"]
