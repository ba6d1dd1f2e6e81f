"""Lesson 07's fleet: services that deploy, fail and roll back, and the state a dashboard shows.

I/O-free, like :mod:`wslab.core.protocol`: no sockets, no clocks of its own (times come in as
arguments), no asyncio. The servers (:mod:`wslab.servers.dashboard`), the benchmark and the
notebook wrap it.

* :class:`FleetSimulation` makes the next change of a seeded fleet: the same seed gives the
  same story, run after run;
* :class:`Fleet` is the state one server holds: each service's newest change, the sequence
  number of the newest change (the broker assigns it), a bounded history to resume from,
  and the snapshot every poll returns with its ``ETag``;
* :func:`etag_matches` is ``If-None-Match`` as RFC 9110 §13.1.2 says: weak comparison,
  a list of tags, or ``*``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_SERVICES",
    "Change",
    "Fleet",
    "FleetSimulation",
    "Status",
    "etag_matches",
    "parse_seq",
]

#: A small company's services: what the lesson's dashboard shows a tile for.
DEFAULT_SERVICES = (
    "api",
    "auth",
    "billing",
    "checkout",
    "search",
    "images",
    "mailer",
    "reports",
    "gateway",
    "scheduler",
    "inventory",
    "notifications",
)


class Status(StrEnum):
    """Where a service stands; a tile shows it."""

    HEALTHY = "healthy"
    DEPLOYING = "deploying"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"


@dataclass(frozen=True)
class Change:
    """One thing that happened to one service: the unit every mode carries.

    ``seq`` is 0 until the broker numbers it; ``at`` is when the server that received it
    published it (``time.time()``), which is what staleness is measured from; ``via``
    names that server.
    """

    service: str
    version: int
    status: Status
    seq: int = 0
    at: float = 0.0
    via: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) on a malformed change."""
        service = str(data["service"])
        if not service or len(service) > 64:
            raise ValueError("a service name has 1 to 64 characters")
        return cls(
            service,
            int(data["version"]),
            Status(data["status"]),
            int(data.get("seq", 0)),
            float(data.get("at", 0.0)),
            str(data.get("via", "")),
        )


def parse_seq(value: str | None) -> int | None:
    """A sequence number from a header or query (``Last-Event-ID``, ``since``); None if absent or not one."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 18 else None


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Does ``If-None-Match`` name the current representation (then the answer is 304)?

    RFC 9110 §13.1.2: ``*`` matches any; otherwise a comma-separated list of entity tags,
    compared **weakly**: ``W/"x"`` matches ``"x"``.
    """
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    mine = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == mine for tag in if_none_match.split(","))


class Fleet:
    """The dashboard's state on one server: every service's newest change, and what changed when.

    Args:
        services: the services known from the start (each at version 1, healthy).
        history: changes kept to resume from; a client further behind gets a snapshot.
    """

    def __init__(self, services: Iterable[str] = DEFAULT_SERVICES, *, history: int = 1000) -> None:
        self._initial = tuple(services)
        self._history_size = history
        self.reset()

    def reset(self, seq: int = 0) -> None:
        """Back to the initial fleet, numbered from ``seq`` (a broker that lost its data)."""
        self.services: dict[str, Change] = {name: Change(name, 1, Status.HEALTHY) for name in self._initial}
        self.seq = seq
        self.history: deque[Change] = deque(maxlen=self._history_size)
        self._body: tuple[int, bytes, str] | None = None

    def apply(self, change: Change) -> bool:
        """Take a numbered change; False (and nothing changes) if it is not newer than what we have."""
        if change.seq <= self.seq:
            return False
        self.services[change.service] = change
        self.seq = change.seq
        self.history.append(change)
        return True

    def load(self, snapshot: dict[str, Any]) -> None:
        """Replace the whole state with a snapshot (what a client gets on connect)."""
        self.reset(int(snapshot["seq"]))
        for data in snapshot["services"]:
            change = Change.from_dict(data)
            self.services[change.service] = change

    def changes_after(self, seq: int) -> list[Change] | None:
        """The changes numbered above ``seq``, oldest first; None if some are no longer kept."""
        if seq == self.seq:
            return []
        if seq > self.seq:  # a number from before the broker lost its data: start over
            return None
        oldest = self.history[0].seq if self.history else self.seq + 1
        if seq + 1 < oldest:
            return None
        return [change for change in self.history if change.seq > seq]

    def snapshot(self) -> dict[str, Any]:
        """The whole state, as ``GET /api/status`` returns it."""
        return {"seq": self.seq, "services": [c.to_dict() for c in self.services.values()]}

    def body(self) -> tuple[bytes, str]:
        """The snapshot as JSON bytes, and its strong ``ETag``; computed once per state.

        The tag is a hash of the bytes: two servers holding the same state give the same
        tag, so a client may poll either of them and still get its 304.
        """
        if self._body is None or self._body[0] != self.seq:
            data = json.dumps(self.snapshot(), separators=(",", ":")).encode()
            self._body = (self.seq, data, f'"{hashlib.sha256(data).hexdigest()[:20]}"')
        return self._body[1], self._body[2]

    @property
    def etag(self) -> str:
        return self.body()[1]


class FleetSimulation:
    """A seeded fleet's next change: deploys, and now and then a failure and its rollback.

    A service is healthy; it starts deploying the next version; the deploy succeeds
    (``success`` of the time) or fails, and a failed service is rolled back to the version
    before. Which service moves next is drawn with ``random.Random(seed)``.
    """

    def __init__(
        self, services: Sequence[str] = DEFAULT_SERVICES, *, seed: int = 7, success: float = 0.8
    ) -> None:
        self.random = random.Random(seed)
        self.success = success
        self.current = {name: Change(name, 1, Status.HEALTHY) for name in services}

    def next_change(self) -> Change:
        """The next change (unnumbered, untimed), already applied to the simulation's own view."""
        service = self.random.choice(sorted(self.current))
        now = self.current[service]
        if now.status is Status.DEPLOYING:
            ok = self.random.random() < self.success
            change = replace(now, status=Status.HEALTHY if ok else Status.FAILED)
        elif now.status is Status.FAILED:
            change = replace(now, version=now.version - 1, status=Status.ROLLED_BACK)
        else:
            change = replace(now, version=now.version + 1, status=Status.DEPLOYING)
        self.current[service] = change
        return change

    def schedule(self, count: int, duration: float) -> list[float]:
        """``count`` seeded moments within ``duration`` seconds, in order: when changes happen."""
        return sorted(self.random.uniform(0.05 * duration, 0.95 * duration) for _ in range(count))
