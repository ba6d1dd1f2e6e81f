"""Is a freshly started broker ready for clients? Asked on a connected socket, in its own protocol.

Accepting a TCP connection is not enough: Redis answers ``-LOADING`` while it reads its
dump, a NATS server accepts clients before JetStream is up, and a Kafka broker is ready when it
answers a Kafka request. Blocking and brief: each
probe is one request and one reply on a socket with a timeout.
"""

from __future__ import annotations

import json
import socket

from ..core.kafka_wire import api_versions_request, parse_api_versions, split_frames

__all__ = ["kafka_ready", "nats_jetstream_ready", "redis_command", "redis_ready"]


def redis_command(sock: socket.socket, *words: str) -> bytes:
    """Send one command in RESP (Redis's wire protocol); the first bytes of the reply."""
    request = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
    sock.sendall(request.encode())
    return sock.recv(4096)


def redis_ready(sock: socket.socket) -> bool:
    """``PING`` answered ``+PONG`` (not ``-LOADING``)."""
    return redis_command(sock, "PING").startswith(b"+PONG")


def nats_jetstream_ready(sock: socket.socket) -> bool:
    """The server's greeting (``INFO {...}``) says JetStream is on."""
    line = sock.recv(65536)
    if not line.startswith(b"INFO "):
        return False
    info = json.loads(line[5:].split(b"\r\n", 1)[0])
    return bool(info.get("jetstream"))


def kafka_ready(sock: socket.socket) -> bool:
    """An ApiVersions request answered without an error."""
    sock.sendall(api_versions_request(1))
    buffer = bytearray()
    while not (frames := split_frames(buffer)):
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buffer += chunk
    try:
        return parse_api_versions(frames[0]) == (1, 0)
    except ValueError:
        return False
