"""A small load balancer for WebSockets: round robin over backends, with X-Forwarded-For.

Lesson 08 puts two or three chat processes behind it and restarts them one at a time.
It reads each connection's HTTP request head (the opening handshake's ``GET``), adds
``X-Forwarded-For`` (the client's address) and ``X-Forwarded-Proto``, forwards the head to
the next backend that accepts a TCP connection, and from then on copies bytes both ways:
after the ``101`` the connection is a tunnel. A backend that refuses (stopped, restarting)
is skipped for the next one; with none left the client gets ``502 Bad Gateway``.

Unlike nginx it passes ``Upgrade`` and ``Connection`` on untouched: it forwards the one
request as it came, instead of making a new request of its own where those hop-by-hop
headers would have to be set again. It has no health checks, TLS or timeouts: enough to
show a rolling restart on loopback, not to run in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Sequence

from ..core import addresses
from ..core.connection_log import LogKind
from ..runtime.event_log import EventLog
from ..runtime.handles import ServerHandle, register, release

__all__ = ["Balancer", "add_forwarded_for"]

logger = logging.getLogger("wslab.balancer")

#: Longest request head accepted; a WebSocket handshake needs well under 1 KiB.
MAX_HEAD = 16 * 1024
#: Seconds a client has to send its request head.
HEAD_TIMEOUT = 10.0
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def add_forwarded_for(head: bytes, client: str, *, proto: str = "http") -> bytes:
    """``head`` (request line and headers, ending with a blank line) with the client's address
    appended to ``X-Forwarded-For`` (a chain: each proxy appends the address it saw) and
    ``X-Forwarded-Proto`` set: what nginx's ``$proxy_add_x_forwarded_for`` does."""
    lines = head.decode("latin-1").split("\r\n")
    end = lines.index("")
    request, headers = lines[0], lines[1:end]
    chain = [v.split(":", 1)[1].strip() for v in headers if v.lower().startswith("x-forwarded-for:")]
    kept = [h for h in headers if not h.lower().startswith(("x-forwarded-for:", "x-forwarded-proto:"))]
    forwarded = ", ".join([*chain, client])
    added = [f"X-Forwarded-For: {forwarded}", f"X-Forwarded-Proto: {proto}"]
    return "\r\n".join([request, *kept, *added, "", ""]).encode("latin-1")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()


class Balancer(ServerHandle):
    """Round robin over ``backends`` (``(host, port)`` pairs); see the module docstring."""

    def __init__(
        self, name: str, server: asyncio.Server, backends: Sequence[tuple[str, int]], log: EventLog | None
    ) -> None:
        super().__init__(name, server.sockets[0].getsockname(), log=log)
        self._server = server
        self.backends = list(backends)
        self._next = itertools.cycle(range(len(self.backends)))
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        #: Connections sent to each backend (``host:port``) since the start.
        self.routed: Counter[str] = Counter()
        #: Backends found refusing, in order: each one skipped for the next.
        self.skipped: list[str] = []
        self._open = 0

    @classmethod
    async def start(
        cls,
        backends: Sequence[tuple[str, int]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "balancer",
        log: EventLog | None = None,
    ) -> Balancer:
        """Listen on ``host:port`` and spread WebSocket connections over ``backends``."""
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        await release(name, host, port)
        balancer: Balancer | None = None

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert balancer is not None
            await balancer._serve(reader, writer)

        server = await asyncio.start_server(accept, host, port, start_serving=False, limit=MAX_HEAD)
        balancer = cls(name, server, backends, log)
        await server.start_serving()
        register(balancer)
        return balancer

    @property
    def connections(self) -> int:
        return self._open

    @property
    def serving(self) -> bool:
        return self._server.is_serving()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername") or ("unknown", 0)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            upstream = await self._connect()
            if upstream is None:
                writer.write(_BAD_GATEWAY)
                await writer.drain()
                return
            (up_reader, up_writer), backend = upstream
            self._writers.add(up_writer)
            self._open += 1
            if self.log is not None:
                self.log.record(LogKind.CONNECT, addresses.host_port(*peer[:2]), text=f"-> {backend}")
            up_writer.write(add_forwarded_for(head, peer[0]))
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                self._open -= 1
                self._writers.discard(up_writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that never sent a whole head, or vanished: nothing to forward
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(OSError):
                writer.close()
            self._tasks.discard(task)

    async def _connect(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], str] | None:
        """The next backend, in turn, that accepts a connection; None if none does."""
        for _ in range(len(self.backends)):
            host, port = self.backends[next(self._next)]
            where = addresses.host_port(host, port)
            try:
                streams = await asyncio.open_connection(host, port)
            except OSError:
                self.skipped.append(where)
                continue
            self.routed[where] += 1
            return streams, where
        return None

    async def _close(self, code: int, reason: str) -> None:
        """Stop listening and drop every tunnel (TCP has no close code)."""
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __repr__(self) -> str:
        targets = ", ".join(addresses.host_port(h, p) for h, p in self.backends)
        return f"<{self.name} balancer at {self.url} -> [{targets}], {self.connections} connection(s)>"
