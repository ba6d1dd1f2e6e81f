"""Live-audience mode: the addresses a room can reach, and a QR code to get there.

Nothing here sends a packet: addresses come from the machine's own interface table.
"""

from __future__ import annotations

import io
import socket
import struct
import sys

import segno

from ..runtime.urls import browser_url

__all__ = ["join_urls", "lan_addresses", "qr_svg", "qr_text", "reach_url"]


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, e.g. ``["192.168.1.20"]``."""
    found: list[str] = []
    if sys.platform.startswith("linux"):
        import fcntl

        siocgifaddr = 0x8915  # ask the kernel for an interface's address; no traffic
        for _, name in socket.if_nameindex():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    packed = fcntl.ioctl(probe.fileno(), siocgifaddr, struct.pack("256s", name[:15].encode()))
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append(socket.inet_ntoa(packed[20:24]))
    else:
        try:
            infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        except OSError:
            infos = []
        found = [info[4][0] for info in infos]
    unique = dict.fromkeys(a for a in found if not a.startswith("127."))
    return list(unique)


def join_urls(
    port: int, *, host: str = "0.0.0.0", code: str | None = None, scheme: str = "http"
) -> list[str]:
    """The URLs an audience opens; the join code rides in the fragment, which no server logs.

    A server on loopback is reached as :func:`wslab.runtime.browser_url` says: itself locally,
    the Jupyter server's proxy on Binder or a hub (there only the learner, who is logged in).
    ``scheme`` is ``"https"`` for a server with TLS.
    """
    fragment = f"#code={code}" if code else ""
    if host in ("127.0.0.1", "localhost"):
        url = browser_url(port, fragment)
        return [url.replace("http://", "https://", 1) if scheme == "https" else url]
    hosts = lan_addresses() if host in ("0.0.0.0", "::", "") else [host]
    return [f"{scheme}://{h}:{port}/{fragment}" for h in hosts or ["127.0.0.1"]]


def reach_url(join_url: str) -> str:
    """The "can you reach me?" page beside a join URL: what to open from a phone first."""
    return join_url.split("#", 1)[0] + "reach"


def qr_text(url: str) -> str:
    """A QR code for a terminal, two rows per character."""
    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def qr_svg(url: str, *, scale: int = 4) -> str:
    """A QR code as inline SVG, for a notebook or a page."""
    return segno.make(url, error="m").svg_inline(scale=scale, dark="#000", light="#fff")
