"""How a connection ended, and whom it was with: read from a websockets connection, client or server.

The server registry (:mod:`wslab.runtime.handles`) logs each disconnect with these, and the
chat client (:mod:`wslab.clients.chat`) decides from them what to do next: both import them
from here, neither from the other.
"""

from __future__ import annotations

from websockets.asyncio.connection import Connection

from ..core import addresses
from ..core.close_codes import CloseCode

__all__ = ["close_details", "peer_name"]


def peer_name(connection: Connection) -> str:
    """``host:port`` of the other end, with IPv6 hosts in brackets."""
    address = connection.remote_address
    if not address:
        return "unknown"
    return addresses.host_port(address[0], address[1])


def close_details(
    connection: Connection, *, us: str = "server", them: str = "client"
) -> tuple[int, str, str]:
    """``(code, reason, who)`` of a closed connection; ``who`` says which side closed first.

    The code is the one the closing side sent: after the server rejects an oversize
    message, that is the server's 1009, whatever the client answered.
    """
    protocol = connection.protocol
    sent, rcvd = protocol.close_sent, protocol.close_rcvd
    if rcvd is not None and (sent is None or protocol.close_rcvd_then_sent):
        return rcvd.code, rcvd.reason, f"by {them}"
    if sent is not None:
        return sent.code, sent.reason, f"by {us}"
    return CloseCode.ABNORMAL_CLOSURE, "", "without a close frame"
