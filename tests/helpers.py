"""Shared helpers for the wslab tests: ``from helpers import ...`` in a test module.

Kept out of ``conftest.py`` on purpose: fixtures are imported explicitly by the modules
that use them, so each test file shows where its servers get stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from websockets.asyncio.client import ClientConnection

import wslab
from wslab.runtime.waiting import poll, run_async
from wslab.services import start_services
from wslab.services.broker_servers import BrokerServer
from wslab.services.process import ServiceUnavailable

#: Upper bound for any single wait in the suite; a healthy run needs a fraction of it.
TIMEOUT = 5.0


async def wait_for(predicate: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll ``predicate`` every 10 ms until it is true; fail the test after ``timeout`` s."""
    clock = asyncio.get_running_loop().time
    if not await run_async(poll(predicate, timeout=timeout, clock=clock)):
        raise AssertionError(f"condition {what or predicate!r} still false after {timeout:g} s")


async def wait_while_progressing(
    predicate: Callable[[], object], progress: Callable[[], object], stall: float = TIMEOUT, what: str = ""
) -> None:
    """Like :func:`wait_for`, for long work: fail only if ``progress()`` stays the same for ``stall`` s.

    A burst of thousands of messages through a real broker takes a few seconds on an idle
    machine and many more on a busy one; what must not happen is that it stops moving.
    """
    loop = asyncio.get_running_loop()
    seen, deadline = progress(), loop.time() + stall
    while not predicate():
        if (now := progress()) != seen:
            seen, deadline = now, loop.time() + stall
        elif loop.time() >= deadline:
            raise AssertionError(f"condition {what or predicate!r} still false, no progress for {stall:g} s")
        await asyncio.sleep(0.01)


async def close_code(connection: ClientConnection, timeout: float = TIMEOUT) -> int | None:
    """Wait until ``connection`` is closed and return the close code the client received."""
    await asyncio.wait_for(connection.wait_closed(), timeout)
    return connection.close_code


async def refuses_connections(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` any more (the TCP connect is refused)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections until the ``with`` block ends.

    Bound but not listening: a connect gets a reset (refused) on Linux and macOS, and no
    other program can take the port meanwhile, as it could one picked free and closed.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def unavailable(reason: str) -> None:
    """Skip, or under ``CI=true`` fail: CI must run every broker test against a real server."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs this broker server: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def own_broker_server(kind: str) -> AsyncIterator[BrokerServer]:
    """A ``redis``, ``nats`` or ``kafka`` server for one test alone, so restarting it disturbs no other."""
    try:
        services = await start_services(
            redis=kind == "redis", nats=kind == "nats", kafka=kind == "kafka", required=True, register=False
        )
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    server = getattr(services, kind)
    try:
        if server is None:
            unavailable(f"{kind} comes from an environment URL; restarting it is not up to the tests")
        assert server is not None
        yield server
    finally:
        await services.stop()


@pytest.fixture(autouse=True)
async def stop_servers() -> AsyncIterator[None]:
    """Autouse once imported into a test module: every server a test starts is stopped."""
    yield
    await wslab.stop_all()
