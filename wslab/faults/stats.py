"""What the fault proxy reports: directions, modes and counters (plain values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Flow", "FlowStats", "Mode", "ProxyStats"]


class Flow(StrEnum):
    """Which way the bytes a fault applies to travel.

    Not :class:`wslab.LogKind`, which says what an event log line records:
    import this one as ``faults.Flow`` where both are in use.
    """

    CLIENT_TO_SERVER = "client->server"
    SERVER_TO_CLIENT = "server->client"
    BOTH = "both"

    @property
    def flows(self) -> tuple[Flow, ...]:
        """The one-way directions this value covers."""
        if self is Flow.BOTH:
            return (Flow.CLIENT_TO_SERVER, Flow.SERVER_TO_CLIENT)
        return (self,)


class Mode(StrEnum):
    """What the proxy currently does to the traffic, at a glance.

    STALLED wins over DELAYED: a stall in either direction makes the proxy STALLED (see
    :attr:`ProxyStats.client_to_server` and ``server_to_client`` for which one).
    """

    FORWARD = "forward"
    DELAYED = "delayed"
    STALLED = "stalled"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class FlowStats:
    """One direction of traffic through the proxy.

    ``forwarded`` and ``dropped`` count since the proxy started, over every connection;
    ``held`` and ``paused`` describe the connections open now.
    """

    forwarded: int  #: bytes delivered to the receiving side
    held: int  #: bytes read from the sender and not yet delivered (stall, latency, slow reader)
    dropped: int  #: bytes read but never delivered: cut, stop, or the receiver went away
    paused: int  #: connections whose sender the proxy stopped reading: held buffer full
    latency: float  #: seconds added to each chunk
    stalled: bool


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of the proxy's counters (read ``proxy.stats`` again for fresh numbers)."""

    client_to_server: FlowStats
    server_to_client: FlowStats
    connections: int  #: open now
    accepted: int  #: since the proxy started
    cut: int  #: connections reset by :meth:`~wslab.faults.FaultProxy.cut`
    idle_closed: int = 0  #: connections closed for being idle (see ``set_idle_timeout``)

    def flow(self, direction: Flow) -> FlowStats:
        if direction is Flow.BOTH:
            raise ValueError("a flow has one direction")
        return self.client_to_server if direction is Flow.CLIENT_TO_SERVER else self.server_to_client
