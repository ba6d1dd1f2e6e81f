"""Limits for a room full of strangers: messages per connection, wrong guesses per address.

No I/O: the caller supplies the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AttemptLimit", "TokenBucket"]


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

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def allow(self) -> bool:
        """Take a token if there is one; False means the message is over the limit."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait(self) -> float:
        """Seconds until a token is there (0 if one is there now); takes nothing."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    @property
    def full(self) -> bool:
        """Refilled to the burst: a bucket in this state can be forgotten and made anew."""
        self._refill()
        return self._tokens >= self.burst


@dataclass(kw_only=True)
class AttemptLimit:
    """At most ``burst`` failed attempts per key (a client's address) at once, then
    ``per_minute``: what makes guessing a join code slow.

    Only failures cost: a right answer, given while the key may still try, takes nothing.
    Over the limit, every attempt of that key is refused until :meth:`retry_after` passes,
    right ones included, or the limit would not slow a guesser down at all. At most
    ``max_keys`` keys are remembered: past that, refilled ones are forgotten first, then the
    oldest (a guesser with that many addresses gets fresh buckets: the code's length is the
    other half of the defence).
    """

    per_minute: float = 5.0
    burst: float = 5.0
    clock: Callable[[], float]
    max_keys: int = 10_000
    _buckets: dict[str, TokenBucket] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1 or self.max_keys < 1:
            raise ValueError("per_minute must be positive, burst and max_keys at least 1")

    @property
    def per_hour(self) -> float:
        """The most failures one key can make in an hour: the burst, then the steady rate."""
        return self.burst + 60 * self.per_minute

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 means now."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait()

    def failed(self, key: str) -> None:
        """``key`` got it wrong: one token less."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room()
            bucket = self._buckets[key] = TokenBucket(
                rate=self.per_minute / 60, burst=self.burst, clock=self.clock
            )
        bucket.allow()

    def _make_room(self) -> None:
        if len(self._buckets) < self.max_keys:
            return
        for key in [key for key, bucket in self._buckets.items() if bucket.full]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)
