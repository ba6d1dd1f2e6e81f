"""Addresses written the one right way: ``host:port``, and URLs made of them. No I/O.

An IPv6 host goes in brackets (``[::1]:9001``), or its colons would run into the port's.
"""

from __future__ import annotations

__all__ = ["host_port", "url"]


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:9001``) so the port stays readable."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(scheme: str, host: str, port: int, path: str = "") -> str:
    """``scheme://host:port`` then ``path`` as given: ``url("ws", "::1", 9001, "/")`` is ``ws://[::1]:9001/``."""
    return f"{scheme}://{host_port(host, port)}{path}"
