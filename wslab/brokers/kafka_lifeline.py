"""One plain connection to a Kafka broker, kept open to notice the broker process going away.

Why :class:`~wslab.brokers.kafka.KafkaBroker` needs it: aiokafka reconnects by itself, so a
broker that restarted is invisible to its users, and a broker that came back *empty* (tansu's
memory storage, a Kafka that lost its disk) numbers every topic from offset 0 again. A consumer
that was at offset 20 then waits until the new log reaches 20 and goes on reading as if nothing
happened: the new events 1..20 never arrive, and the later ones look like the old room's. Redis's
PUB/SUB connection and NATS's client both say when they lost the server; here this connection says it.

A process that dies closes every connection it had, so this one reads end-of-file *before* any
other connection of this process can read a reply from a new broker process on the same port
(that one starts later). So a subscription that checks :attr:`Lifeline.generation` after each
fetch, and before delivering what it fetched, never takes records of a new broker for the old
one's: it first looks at the room again (:mod:`wslab.brokers.resumable`). A broker that
hangs instead of dying is caught by a periodic ApiVersions round trip with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from ..core.kafka_wire import api_versions_request, parse_api_versions, split_frames

__all__ = ["Lifeline"]

logger = logging.getLogger("wslab.brokers.kafka")


class _Protocol(asyncio.Protocol):
    """Matches ApiVersions responses to their requests; reports the end of the connection at once."""

    def __init__(self, lifeline: Lifeline) -> None:
        self.lifeline = lifeline
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for frame in split_frames(self.buffer):
            try:
                correlation_id, error_code = parse_api_versions(frame)
            except ValueError:
                continue
            future = self.waiting.pop(correlation_id, None)
            if future is not None and not future.done():
                future.set_result(error_code)

    def eof_received(self) -> bool:
        self.lifeline._lost(self, "the broker closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lifeline._lost(self, repr(exc) if exc else "connection closed")
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the connection to the broker was lost"))
        self.waiting.clear()


class Lifeline:
    """A connection to ``host:port`` that tells when the broker behind it went away.

    Args:
        host, port: the broker.
        timeout: seconds to connect, and for a round trip's answer.
        interval: seconds between round trips while connected (a hung broker is lost after
            ``interval + timeout``).

    :attr:`generation` counts the connections made: a user that saw generation ``g`` while
    connected knows the broker it talks to is the same process as long as :attr:`alive` and
    the generation is still ``g``.
    """

    def __init__(self, host: str, port: int, *, timeout: float, interval: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.interval = interval
        self.generation = 0
        #: Set when the current connection ends (cleared by the next :meth:`connect`).
        self.lost = asyncio.Event()
        self.lost.set()
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()
        self._ids = itertools.count(1)
        self._beat: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def alive(self) -> bool:
        return self._protocol is not None

    async def connect(self) -> int:
        """Connect (if not connected) and check the broker answers; the generation.

        Raises OSError (or TimeoutError) when the broker cannot be reached now.
        """
        async with self._connecting:
            if self._closed:
                raise ConnectionError("closed")
            if self._protocol is not None:
                return self.generation
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.timeout):
                transport, protocol = await loop.create_connection(
                    lambda: _Protocol(self), self.host, self.port
                )
            try:
                await self._round_trip(protocol)
            except BaseException:
                transport.abort()
                raise
            self._protocol = protocol
            self.generation += 1
            self.lost.clear()
            self._beat = loop.create_task(self._keep_checking(protocol), name="kafka-lifeline")
            return self.generation

    async def round_trip(self) -> None:
        """One ApiVersions request and its answer; raises ConnectionError if not connected or lost."""
        protocol = self._protocol
        if protocol is None:
            raise ConnectionError("not connected to the broker")
        await self._round_trip(protocol)

    async def _round_trip(self, protocol: _Protocol) -> None:
        assert protocol.transport is not None
        correlation_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        protocol.waiting[correlation_id] = future
        protocol.transport.write(api_versions_request(correlation_id))
        try:
            async with asyncio.timeout(self.timeout):
                error_code = await future
        finally:
            protocol.waiting.pop(correlation_id, None)
        if error_code != 0:
            raise ConnectionError(f"the broker answered ApiVersions with error {error_code}")

    async def _keep_checking(self, protocol: _Protocol) -> None:
        """Every ``interval``, a round trip: a broker that stopped answering counts as gone."""
        while self._protocol is protocol:
            await asyncio.sleep(self.interval)
            if self._protocol is not protocol:
                return
            try:
                await self._round_trip(protocol)
            except (ConnectionError, TimeoutError) as exc:
                self._lost(protocol, f"no answer: {exc!r}")
                if protocol.transport is not None:
                    protocol.transport.abort()
                return

    def _lost(self, protocol: _Protocol, why: str) -> None:
        if self._protocol is not protocol:
            return  # an older connection, already replaced
        self._protocol = None
        self.lost.set()
        if not self._closed:
            logger.warning("lost the Kafka broker at %s:%d (%s)", self.host, self.port, why)

    async def close(self) -> None:
        self._closed = True
        protocol, self._protocol = self._protocol, None
        self.lost.set()
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._beat
