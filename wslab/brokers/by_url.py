"""The broker a URL names: how the CLI, the dashboard and the chat processes pick one."""

from __future__ import annotations

from .base import Broker
from .memory import MemoryBroker

__all__ = ["BROKER_SCHEMES", "broker_from_url"]

#: URL schemes :func:`broker_from_url` knows, and the broker each one makes.
BROKER_SCHEMES = {
    "memory": "memory",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "tls": "nats",
    "kafka": "kafka",
}


def broker_from_url(url: str | None, *, history: int = 1000) -> Broker:
    """A broker for ``url``: ``redis://`` Redis, ``nats://`` NATS JetStream, ``kafka://`` Kafka, None
    the in-process one.

    The Redis, NATS and Kafka brokers are imported only here, when asked for: their client
    libraries are not needed by a lesson that never leaves one process.
    """
    if not url or url == "memory":
        return MemoryBroker(history=history)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    kind = BROKER_SCHEMES.get(scheme)
    if kind == "redis":
        from .redis import RedisBroker

        return RedisBroker(url, history=history)
    if kind == "nats":
        from .nats import NatsBroker

        return NatsBroker(url, history=history)
    if kind == "kafka":
        from .kafka import KafkaBroker

        return KafkaBroker(url, history=history)
    if kind == "memory":
        return MemoryBroker(history=history)
    raise ValueError(f"unknown broker URL {url!r}: expected redis://, nats:// or kafka://host:port")
