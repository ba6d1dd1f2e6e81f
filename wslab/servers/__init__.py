"""The lessons' servers: handlers that :func:`wslab.runtime.serve` can run."""

from .echo import echo, echo_reply

__all__ = ["echo", "echo_reply"]
