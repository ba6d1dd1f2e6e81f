"""The chat server, its clients and its broker, over real sockets: the suite in ``chat_contract``.

The ``broker`` fixture decides which broker carries the room; every test of the suite
runs once per kind: the in-process broker, and real Redis (or Valkey), NATS JetStream and
Kafka-protocol (tansu) servers, started once per test session (``redis_url``, ``nats_url``,
``kafka_url`` in ``conftest.py``).
Each test gets its own key prefix there, so no test sees another's rooms.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from chat_contract import *  # noqa: F403  (the tests and fixtures of the suite)
from helpers import stop_servers  # noqa: F401  (stop_servers: autouse fixture)

import wslab
from wslab.brokers import Broker, MemoryBroker
from wslab.brokers.kafka import KafkaBroker
from wslab.brokers.nats import NatsBroker
from wslab.brokers.redis import RedisBroker


@pytest.fixture
def history() -> int:
    """Events a broker keeps per room; a test that needs another size parametrizes ``history``."""
    return 1000


@pytest.fixture(params=["memory", "redis", "nats", "kafka"])
async def broker(request: pytest.FixtureRequest, history: int) -> AsyncIterator[Broker]:
    """A fresh, empty broker of each kind; closed after the test, once its servers have stopped."""
    prefix = f"t{uuid.uuid4().hex[:12]}"  # a fresh namespace on the shared server: empty rooms
    match request.param:
        case "memory":
            instance: Broker = MemoryBroker(history=history)
        case "redis":
            instance = RedisBroker(request.getfixturevalue("redis_url"), history=history, key_prefix=prefix)
        case "nats":
            instance = NatsBroker(request.getfixturevalue("nats_url"), history=history, prefix=prefix)
        case "kafka":
            instance = KafkaBroker(request.getfixturevalue("kafka_url"), history=history, prefix=prefix)
        case kind:
            raise ValueError(f"unknown broker kind {kind!r}")
    yield instance
    await wslab.stop_all()  # the servers' handlers still publish (leaves) while they stop
    await instance.close()
