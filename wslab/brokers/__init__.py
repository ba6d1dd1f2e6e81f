"""Pub/sub brokers behind the chat server: the interface (``base.py``), the in-process one
(``memory.py``, lessons 02-05), Redis Streams, NATS JetStream and Kafka (``redis.py``, ``nats.py``,
``kafka.py``, lesson 06), and the pieces they share: a resumable subscription, the broker a URL names.

Each name loads its module on first use: the Redis, NATS and Kafka client libraries only
when a lesson asks for :class:`RedisBroker`, :class:`NatsBroker`, :class:`KafkaBroker` or
the Redis :data:`PUBLISH_SCRIPT`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .base import Broker
    from .kafka import KafkaBroker
    from .memory import MemoryBroker
    from .nats import NatsBroker
    from .redis import PUBLISH_SCRIPT, RedisBroker

__all__ = ["PUBLISH_SCRIPT", "Broker", "KafkaBroker", "MemoryBroker", "NatsBroker", "RedisBroker"]

lazy_exports(
    globals(),
    {
        "PUBLISH_SCRIPT": ".redis",
        "Broker": ".base",
        "KafkaBroker": ".kafka",
        "MemoryBroker": ".memory",
        "NatsBroker": ".nats",
        "RedisBroker": ".redis",
    },
)
