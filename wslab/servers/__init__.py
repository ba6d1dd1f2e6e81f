"""The lessons' servers: handlers that :func:`wslab.runtime.serve` can run."""

from .chat import ChatServer, ChatStats, OverflowPolicy
from .echo import echo, echo_reply

__all__ = ["ChatServer", "ChatStats", "OverflowPolicy", "echo", "echo_reply"]
