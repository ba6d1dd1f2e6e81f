"""The opening handshake of RFC 6455, without sockets.

The upgrade is plain HTTP/1.1: the client asks with ``Upgrade: websocket`` and a random
``Sec-WebSocket-Key``; the server proves it understood by answering ``101 Switching
Protocols`` with ``Sec-WebSocket-Accept``, a hash of that key. This module builds and
reads those messages so a lesson can show the real bytes on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

__all__ = ["GUID", "RFC_SAMPLE_KEY", "Response", "accept_key", "close_frame", "upgrade_request"]

#: Fixed by RFC 6455 section 1.3: every server appends it to the client's key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The example key of RFC 6455 section 1.3; its accept value is ``s3pPLMBiTxaQ9kYGzzhZRbK+xOo=``.
RFC_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server must answer to ``key``."""
    digest = hashlib.sha1((key + GUID).encode()).digest()
    return base64.b64encode(digest).decode()


def upgrade_request(host: str, path: str = "/", *, key: str, origin: str | None = None) -> bytes:
    """The bytes of a minimal, valid upgrade request."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class Response:
    """The head of an HTTP response: status line and headers, in order."""

    status: int
    reason: str
    headers: list[tuple[str, str]]

    @classmethod
    def parse(cls, head: bytes) -> Response:
        """Parse the bytes up to (not including) the blank line ending the head."""
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        status, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not status.isdigit():
            raise ValueError(f"not an HTTP response: {status_line!r}")
        headers = []
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        return cls(int(status), reason, headers)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def close_frame(code: int = 1000, reason: str = "", *, mask: bytes | None = None) -> bytes:
    """A masked close frame, as a client must send it (RFC 6455 section 5.5.1)."""
    payload = struct.pack("!H", code) + reason.encode()
    if len(payload) > 125:
        raise ValueError("a control frame's payload is at most 125 bytes")
    mask = mask if mask is not None else os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x88, 0x80 | len(payload)]) + mask + masked
