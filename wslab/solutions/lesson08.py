"""Solutions to lesson 08's exercise. The blank of section 3 (the standalone chat server that
stops cleanly on SIGTERM) is a script: ``chat_server.py`` beside this file."""

from __future__ import annotations


def ping_interval_for(idle_timeout: float) -> float:
    """Exercise 1: a third of the proxy's idle timeout: a late ping still beats it."""
    return idle_timeout / 3
