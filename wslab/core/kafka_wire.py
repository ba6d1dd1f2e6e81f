"""The one Kafka request wslab speaks itself, ApiVersions: bytes in, bytes out, no I/O.

Two things need to know that a Kafka-protocol broker answers, without a client library's
retries in the way: :mod:`wslab.services` asking whether a freshly started broker is ready, and
the :class:`~wslab.brokers.kafka_lifeline.Lifeline` that notices a broker process going away.
ApiVersions is the request every Kafka client sends first; version 0 has an empty body.

A frame on the wire is a 4-byte big-endian length, then that many bytes. A response starts
with the request's correlation id.
"""

from __future__ import annotations

import struct

__all__ = ["API_VERSIONS", "api_versions_request", "parse_api_versions", "split_frames"]

#: ApiVersions' api key in the Kafka protocol.
API_VERSIONS = 18
_HEADER = struct.Struct(">hhih")  # api key, api version, correlation id, client id length
_LENGTH = struct.Struct(">i")


def api_versions_request(correlation_id: int, client_id: str = "wslab") -> bytes:
    """A framed ApiVersions v0 request (request header v1, empty body)."""
    client = client_id.encode()
    body = _HEADER.pack(API_VERSIONS, 0, correlation_id, len(client)) + client
    return _LENGTH.pack(len(body)) + body


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take every complete frame off the front of ``buffer``; what is left is an incomplete one."""
    frames = []
    while len(buffer) >= _LENGTH.size:
        (length,) = _LENGTH.unpack_from(buffer)
        if len(buffer) < _LENGTH.size + length:
            break
        frames.append(bytes(buffer[_LENGTH.size : _LENGTH.size + length]))
        del buffer[: _LENGTH.size + length]
    return frames


def parse_api_versions(frame: bytes) -> tuple[int, int]:
    """``(correlation id, error code)`` of an ApiVersions v0 response frame (without its length).

    Raises ValueError for bytes too short to be one: not a Kafka broker answering.
    """
    if len(frame) < 6:
        raise ValueError(f"not an ApiVersions response: {frame[:16]!r}")
    correlation_id, error_code = struct.unpack_from(">ih", frame)
    return correlation_id, error_code
