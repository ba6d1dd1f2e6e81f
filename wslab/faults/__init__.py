"""A TCP proxy that injects network faults between a client and a server on loopback.

On loopback nothing ever goes wrong, so lesson 05 puts this proxy in the path to show
what a real network does to a WebSocket connection: it can add latency, stall (read and
hold every byte without closing anything, like a hung middlebox whose TCP still
acknowledges; unlike a NAT gateway that forgot the mapping, where bytes go
unacknowledged), cut (reset both ends, like a crashed middlebox) and, as every reverse proxy
and load balancer does, close connections that stay idle too long (lesson 08)::

    server = await wslab.serve(echo, ping_interval=None)
    proxy = await FaultProxy.start(server.host, server.port)
    async with connect(proxy.url) as ws:  # the client talks to the proxy
        proxy.stall()                     # ws stays OPEN, its messages pile up
        proxy.resume()                    # the held bytes go out, in order

The proxy works on bytes, not frames: it knows nothing about WebSockets, exactly like
the routers and gateways it imitates. Fault settings belong to the proxy, not to one
connection, so a change applies at once to every current connection and to every new
one. It lives in the registry of the lesson servers (:mod:`wslab.runtime.handles`): running
the cell again restarts it, and :func:`wslab.stop_all` stops it.

The modules: ``proxy`` (:class:`FaultProxy`), ``links`` (one proxied connection, its two
directions), ``stats`` (what went through, by :class:`Flow`). Each name loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .proxy import FaultProxy
    from .stats import Flow

__all__ = ["FaultProxy", "Flow"]

lazy_exports(globals(), {"FaultProxy": ".proxy", "Flow": ".stats"})
