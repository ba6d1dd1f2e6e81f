"""Per-connection limits for a room full of strangers. No I/O: the caller supplies the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass(kw_only=True)
class TokenBucket:
    """Allows ``rate`` messages per second on average, and bursts of up to ``burst``.

    Each message takes one token; tokens refill continuously. A person typing never
    notices; a script flooding the room runs dry within ``burst`` messages. ``clock`` gives
    monotonic seconds: the room's own.
    """

    rate: float = 5.0
    burst: float = 10.0
    clock: Callable[[], float]
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._tokens = self.burst
        self._updated = self.clock()

    def allow(self) -> bool:
        """Take a token if there is one; False means the message is over the limit."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
