"""Pub/sub brokers behind the chat server: in-process now; Redis, NATS and Kafka in lesson 06."""

from ..core.room_event import BrokerReset
from .base import Broker, BrokerUnavailable, Subscription
from .memory import MemoryBroker

__all__ = [
    "BROKER_SCHEMES",
    "Broker",
    "BrokerReset",
    "BrokerUnavailable",
    "KafkaBroker",
    "MemoryBroker",
    "NatsBroker",
    "RedisBroker",
    "Subscription",
    "broker_from_url",
]

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
    """A broker for ``url``: ``redis://`` Redis, ``nats://`` NATS JetStream, ``kafka://`` Kafka,
    None the in-process one."""
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


def __getattr__(name: str) -> object:
    """``RedisBroker``, ``NatsBroker`` and ``KafkaBroker`` import their client libraries when asked for."""
    if name == "RedisBroker":
        from .redis import RedisBroker

        return RedisBroker
    if name == "NatsBroker":
        from .nats import NatsBroker

        return NatsBroker
    if name == "KafkaBroker":
        from .kafka import KafkaBroker

        return KafkaBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
