"""Who is the client behind a reverse proxy? ``X-Forwarded-For``, believed from trusted proxies only.

Behind a proxy, every connection a server accepts comes from the proxy: ``remote_address``
is the proxy's. The proxy says whom it forwarded for in ``X-Forwarded-For``, a list to
which each proxy on the way appends the address it saw. Anyone can send that header, so a
server believes it only when the connection comes from a proxy it trusts, and then takes
the rightmost address that is not one of its trusted proxies: the same rule as uvicorn's
``--forwarded-allow-ips`` (``proxy_headers``). websockets itself ignores the header.

No I/O here: give it the peer's address and the header's value.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["client_address"]


def client_address(peer: str, forwarded_for: str | None, *, trusted: Collection[str]) -> str:
    """The real client's address, from the peer's address and the ``X-Forwarded-For`` header.

    ``trusted`` holds the addresses of your own proxies (``"*"`` trusts every peer). A peer
    outside it is the client, whatever the header says.
    """
    trust_all = "*" in trusted
    if not forwarded_for or not (trust_all or peer in trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if trust_all:
        return hops[0] if hops else peer
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer
