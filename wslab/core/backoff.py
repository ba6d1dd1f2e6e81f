"""Reconnection delays: exponential backoff with full jitter, for clients and broker connections."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

__all__ = ["backoff_delays"]


def backoff_delays(
    *, first: float = 0.1, factor: float = 2.0, cap: float = 10.0, jitter: Callable[[], float] = random.random
) -> Iterator[float]:
    """Delays before each reconnection attempt: exponential, capped, with full jitter.

    Attempt ``n`` waits a random time between 0 and ``min(cap, first * factor**n)``: the
    jitter spreads a crowd of clients that lost the same server, so they do not all
    come back in the same instant.
    """
    ceiling = first
    while True:
        yield jitter() * ceiling
        ceiling = min(cap, ceiling * factor)
