"""Audience mode's limits, in one place: ``serve web --public`` and lesson 04's class room use
the same :data:`AUDIENCE`. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .heartbeat import HeartbeatPolicy

__all__ = ["AUDIENCE", "AudienceLimits"]


@dataclass(frozen=True, kw_only=True)
class AudienceLimits:
    """What a room of strangers on phones gets.

    Args:
        max_users: people in at once; the next one is refused (HTTP 503) until someone leaves.
        rate: ``(messages per second, burst)`` per person; a flood closes that connection (1008).
        max_message: bytes per message; more closes that connection (1009).
        heartbeat: the application heartbeat (lesson 05): phones drop off Wi-Fi without a word,
            and the page's watchdog needs the server's pings to notice a dead server.
        code_digits: the join code's length (see :mod:`wslab.core.join_code` for the arithmetic).
        wrong_codes: ``(per minute, burst)`` wrong join codes allowed per client address.
    """

    max_users: int = 200
    rate: tuple[float, float] = (5.0, 10.0)
    max_message: int = 4096
    heartbeat: HeartbeatPolicy = field(default_factory=HeartbeatPolicy)
    code_digits: int = 6
    wrong_codes: tuple[float, float] = (5.0, 5.0)


#: The limits of audience mode.
AUDIENCE = AudienceLimits()
