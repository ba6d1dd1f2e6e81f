"""The chat server, its clients and its broker, over real sockets: the suite in ``chat_contract``.

The ``broker`` fixture decides which broker carries the room; every test of the suite
runs once per kind. Lesson 06 adds ``"redis"`` and ``"nats"`` to its parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from chat_contract import *  # noqa: F403  (the tests and fixtures of the suite)
from helpers import stop_servers  # noqa: F401  (stop_servers: autouse fixture)

import wslab
from wslab.brokers import Broker, MemoryBroker


@pytest.fixture
def history() -> int:
    """Events a broker keeps per room; a test that needs another size parametrizes ``history``."""
    return 1000


@pytest.fixture(params=["memory"], ids=["memory"])
async def broker(request: pytest.FixtureRequest, history: int) -> AsyncIterator[Broker]:
    """A fresh, empty broker of each kind; closed after the test, once its servers have stopped."""
    match request.param:
        case "memory":
            instance: Broker = MemoryBroker(history=history)
        case kind:
            raise ValueError(f"unknown broker kind {kind!r}")
    yield instance
    await wslab.stop_all()  # the servers' handlers still publish (leaves) while they stop
    await instance.close()
