"""Shared helpers for the wslab tests: ``from helpers import ...`` in a test module.

Kept out of ``conftest.py`` on purpose: fixtures are imported explicitly by the modules
that use them, so each test file shows where its servers get stopped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import ClientConnection

import wslab
from wslab.runtime.waiting import poll, run_async
from wslab.servers.chat import ChatServer
from wslab.services import start_services
from wslab.services.broker_servers import BrokerServer, Services, plan_services
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


def backlogs(chat: ChatServer) -> dict[str, int]:
    """Bytes waiting to be sent, per user connected to ``chat``."""
    return {name: member.connection.backlog for name, member in chat.room.members.items()}


def unavailable(reason: str) -> None:
    """Skip, or under ``CI=true`` fail: CI must run every broker test against a real server."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs this broker server: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def own_broker_server(kind: str, *, persistent: bool = False) -> AsyncIterator[BrokerServer]:
    """A ``redis``, ``nats`` or ``kafka`` server for one test alone, so restarting it disturbs no
    other; ``persistent``: one that keeps every write across a SIGKILL (see ``start_services``)."""
    try:
        services = await start_services(
            redis=kind == "redis",
            nats=kind == "nats",
            kafka=kind == "kafka",
            required=True,
            register=False,
            persistent=persistent,
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


# --- what only the tests use, kept out of the package -------------------------------------


def new_key() -> str:
    """A fresh random ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded, as a client sends."""
    return base64.b64encode(os.urandom(16)).decode()


@dataclass
class LocalCA:
    """A certificate authority made on the spot (``trustme``), as lesson 08 makes one by hand:
    it signs a server certificate, and clients that trust it (and only those) accept it."""

    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    _ca: Any = field(init=False, repr=False)
    _cert: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert(*self.hosts)

    def server_context(self) -> ssl.SSLContext:
        """For ``serve(..., ssl=...)``: presents the certificate issued for :attr:`hosts`."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """For ``connect("wss://...", ssl=...)``: verifies certificates against this CA only."""
        context = ssl.create_default_context()  # verifies the chain and the host name
        context.load_verify_locations(cadata=self.ca_pem)
        return context

    def write_server_files(self, cert: Path, key: Path) -> None:
        """The server's certificate chain and private key as PEM files, for ``--tls CERT KEY``."""
        for pem in self._cert.cert_chain_pems:
            with cert.open("ab") as out:
                out.write(pem.bytes())
        self._cert.private_key_pem.write_to_path(str(key))

    @property
    def ca_pem(self) -> str:
        """The CA's certificate (public): what a client must trust, e.g. in a file."""
        return self._ca.cert_pem.bytes().decode()


def start_services_blocking(
    *,
    redis: bool = True,
    nats: bool = True,
    kafka: bool = False,
    required: bool = False,
    redis_port: int = 0,
    nats_port: int = 0,
    kafka_port: int = 0,
) -> Services:
    """``start_services`` for code with no event loop (a pytest session fixture); not registered."""
    wanted = {"redis": redis, "nats": nats, "kafka": kafka}
    ports = {"redis": redis_port, "nats": nats_port, "kafka": kafka_port}
    services, servers = plan_services(wanted=wanted, required=required, ports=ports)
    try:
        for server in servers:
            services.adopt(server.start_blocking())
    except BaseException:
        for server in servers:
            server.stop_blocking()
        raise
    return services
