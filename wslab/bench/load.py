"""The load client's pieces, shared by every benchmark: receivers, a publisher, their messages.

A load process opens many receiving connections and one publisher over 127.0.0.1. Every
message's text starts with its index and its send time (:func:`time.time`, same machine),
so each receiver computes publish-to-delivery latency as it reads it; the only work per
message is parsing it and noting the time. Clients speak one of the chat's two dialects
(:class:`Speaker`): json, or the original tutorial's plain text.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from ..core.protocol import Dialect, Hello, Say, encode
from .harness import emit

__all__ = [
    "DIALECTS",
    "PUBLISHER",
    "SYNC",
    "Load",
    "Receiver",
    "Speaker",
    "client_options",
    "connect_and_warm_up",
    "drop",
    "join",
    "join_in_batches",
    "join_publisher",
    "join_storm",
    "percentile_ms",
    "report_progress",
    "text",
]

#: Receivers connect this many at a time, so the server's accept queue never overflows.
CONNECT_BATCH = 100
PUBLISHER = "publisher"
#: The index of untimed messages (warm-up), which every receiver must read before the measurement.
SYNC = -1


class Speaker:
    """How a load client speaks the json dialect: ``{"type": "hello", ...}`` first, JSON both ways."""

    dialect = "json"

    def hello(self, name: str) -> str:
        return encode(Hello(name, Dialect.JSON))

    def chat(self, text: str, ref: str) -> str:
        return encode(Say(text, ref))

    def read(self, message: str) -> tuple[str, str]:
        """``(kind, text)``: ``chat`` with a message's text, ``live`` once the client is in the
        room, ``error`` with the reason it was refused, or ``other`` (joins, welcome)."""
        data = json.loads(message)
        kind = data.get("type")
        if kind == "chat":
            return "chat", data["text"]
        if kind in ("live", "error"):
            return kind, str(data.get("text", ""))
        return "other", ""


class PlainSpeaker(Speaker):
    """The original tutorial's dialect: the name as the first message, then bare lines of text;
    the server sends ``Welcome, <name>!`` and every chat message as ``[<name>] <text>``."""

    dialect = "plain"

    def hello(self, name: str) -> str:
        return name

    def chat(self, text: str, ref: str) -> str:
        return text

    def read(self, message: str) -> tuple[str, str]:
        if message.startswith("["):
            return "chat", message.partition("] ")[2]
        if message.startswith("Welcome, "):
            return "live", ""
        if message.startswith("error: "):
            return "error", message[len("error: ") :]
        return "other", ""  # >>> joins and leaves


#: Every dialect a benchmark can speak, by name.
DIALECTS: dict[str, Speaker] = {"json": Speaker(), "plain": PlainSpeaker()}


@dataclass
class Load:
    """What the receivers of one load process have seen so far."""

    clients: int
    messages: int
    expected: int
    speaker: Speaker = field(default_factory=Speaker)
    delivered: int = 0
    duplicates: int = 0
    warmup: int = 1
    synced: int = 0
    last_delivery: float = 0.0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    all_synced: asyncio.Event = field(default_factory=asyncio.Event)

    async def settle(self, *, timeout: float, stall: float) -> None:
        """Wait for every delivery; generous, but not blind: give up after ``timeout`` in
        all, or ``stall`` seconds without a delivery."""
        deadline = time.monotonic() + timeout
        seen, quiet_since = -1, time.monotonic()
        while not self.done.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), 0.5)
            if self.delivered != seen:
                seen, quiet_since = self.delivered, time.monotonic()
            elif time.monotonic() - quiet_since > stall:
                break

    def result(self, first_send: float) -> dict[str, Any]:
        """What every benchmark reports of the deliveries since ``first_send``."""
        latencies = sorted(self.latencies)
        duration = (self.last_delivery - first_send) if self.delivered else 0.0
        return {
            "deliveries": self.delivered,
            "expected": self.expected,
            "lost": self.expected - self.delivered,
            "duplicates": self.duplicates,
            "deliveries_per_s": round(self.delivered / duration, 1) if duration > 0 else 0.0,
            "p50_ms": percentile_ms(latencies, 0.50),
            "p99_ms": percentile_ms(latencies, 0.99),
            "max_ms": percentile_ms(latencies, 1.0),
            "duration_s": round(duration, 4),
        }


def percentile_ms(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted seconds, in ms (nearest rank); None when empty."""
    if not ordered:
        return None
    return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


def client_options(compression: str) -> dict[str, Any]:
    """How every load connection connects: nothing but the measured traffic on the wire."""
    return {
        "open_timeout": 60,
        "ping_interval": None,  # no keepalive traffic in the measurement
        "compression": None if compression == "none" else "deflate",
        "max_size": None,
        # 127.0.0.1 needs no proxy; looking for one reads the environment on every connect,
        # a fifth of the load's time when thousands connect at once.
        "proxy": None,
    }


def drop(connections: Sequence[Any], tasks: set[asyncio.Task[None]]) -> None:
    """End the load at once. No closing handshakes: the chat room would only announce
    every leave."""
    for connection in connections:
        connection.transport.abort()
    for task in tasks:
        task.cancel()


#: What the words filler draws from: short common words, as chat text is made of.
_VOCABULARY = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had "
    "by word but not what all were we when your can said there use an each which she do how their if will "
    "up other about out many then them these so some her would make like him into time has look two more "
    "write go see number no way could people my than first water been call who oil its now find long down "
    "day did get come made may part ok yes thanks lol see you soon"
)
_WORDS = _VOCABULARY.split()


def _filler(index: int, length: int, kind: str) -> str:
    """``length`` characters of text: ``repeat`` is ``xxxx...``; ``words`` is words drawn
    at random, the same for a given ``index`` in every run and for every server."""
    if kind == "repeat" or length <= 0:
        return "x" * max(0, length)
    rng = random.Random(index)
    words: list[str] = []
    total = -1
    while total < length:
        words.append(rng.choice(_WORDS))
        total += len(words[-1]) + 1
    filled = " ".join(words)[:length]
    return filled[:-1] + "s" if filled.endswith(" ") else filled  # the chat server strips trailing spaces


def text(index: int, size: int, filler: str = "repeat") -> str:
    """``size`` characters (at least the header): ``<index> <send time> <filler>``."""
    header = f"{index} {time.time():.6f} "
    return header + _filler(index, size - len(header), filler) if size > len(header) else header.rstrip()


def _take(load: Load, seen: bytearray, live: asyncio.Future[None], message: str, received: float) -> None:
    """What one client does with one message read at ``received``: note it, once."""
    kind, said = load.speaker.read(message)
    if kind != "chat":
        if not live.done():
            if kind == "live":
                live.set_result(None)
            elif kind == "error":
                live.set_exception(RuntimeError(f"the server refused a client: {said}"))
        return  # welcome, joins and leaves of other clients
    index, sent = said.split(" ", 2)[:2]
    i = int(index)
    if i == SYNC:
        load.synced += 1
        if load.synced == load.clients * load.warmup:
            load.all_synced.set()
        return
    if seen[i]:
        load.duplicates += 1
        return
    seen[i] = 1
    load.latencies.append(received - float(sent))
    load.last_delivery = received
    load.delivered += 1
    if load.delivered == load.expected:
        load.done.set()


async def _receive(connection: Any, load: Load, live: asyncio.Future[None]) -> None:
    """The publisher's reader (a websockets connection): acks, joins, errors."""
    seen = bytearray(load.messages)
    try:
        async for message in connection:
            _take(load, seen, live, message, time.time())
    except ConnectionClosed:
        pass  # counted as lost, if it was early
    if not live.done():
        live.set_exception(ConnectionError(f"closed before it went live: {connection.close_reason}"))


#: One read buffer for every receiver of a load process: each read is handled before the next.
_READS = memoryview(bytearray(256 * 1024))


class Receiver(asyncio.BufferedProtocol):
    """One receiving client, as lean as a client can be: per read, one timestamp, the frames
    parsed, each message noted; no task, queue or future per message.

    It reads into one buffer the whole process shares (``recv_into``), not into a new
    256 KiB ``bytes`` per read as ``asyncio.Protocol`` does: glibc serves an allocation that
    large with ``mmap``, ``mremap`` and ``munmap``, one of each per read, unless earlier
    allocations happened to raise its threshold. Measured with ``strace -c`` on the load
    process, that luck alone decided whether a paced run cost 1.9 or 3.2 s of the load's CPU,
    and doubled the latencies it measured.

    A client elsewhere reads its socket as data arrives. A load process holding a thousand
    clients on one CPU must come close to that, or its own queueing becomes the latency it
    measures and its own pace the deliveries/s: a websockets connection per receiver cost
    ~4x as much per message when paced, and websockets' frame parser, in Python, was a
    third of the load's time in a burst. So websockets' sans-I/O :class:`ClientProtocol`
    makes the handshake, and carries every frame if compression was negotiated; without,
    the frames a server sends (unmasked, one per message) are read here.
    """

    def __init__(self, url: str, name: str, load: Load, compression: str | None) -> None:
        extensions = enable_client_permessage_deflate(None) if compression else None
        self.sans_io = ClientProtocol(parse_uri(url), extensions=extensions, max_size=None)
        self.name = name
        self.load = load
        self.live: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seen = bytearray(load.messages)
        self.transport: Any = None
        self.buffer = bytearray()  # the handshake's response, then frames not complete yet
        self.raw: bool | None = None  # frames read here (True) or by the protocol; None: handshake

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.sans_io.send_request(self.sans_io.connect())
        self._flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READS

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_READS[:nbytes]))

    def data_received(self, data: bytes) -> None:
        received = time.time()
        if self.raw is None:  # the response ends at the first blank line; frames may follow
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n") + 4
            if end < 4:
                return
            self.sans_io.receive_data(bytes(self.buffer[:end]))
            data, self.buffer = bytes(self.buffer[end:]), bytearray()
            self.sans_io.events_received()
            if self.sans_io.handshake_exc is not None:
                error = self.sans_io.handshake_exc
                return self._fail(f"{type(error).__name__}: {error}")
            self.raw = not self.sans_io.extensions
            self.sans_io.send_text(self.load.speaker.hello(self.name).encode())
            self._flush()
        if self.raw:
            self._frames(data, received)
            return
        self.sans_io.receive_data(data)
        for event in self.sans_io.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                _take(self.load, self.seen, self.live, bytes(event.data).decode(), received)
        self._flush()

    def _frames(self, data: bytes, received: float) -> None:
        """Every complete frame in what arrived (RFC 6455 section 5.2; a server's are unmasked)."""
        buffer = self.buffer
        buffer += data
        start, end = 0, len(buffer)
        while end - start >= 2:
            first, length, head = buffer[start], buffer[start + 1] & 0x7F, 2
            if length >= 126:
                head = 4 if length == 126 else 10
                if end - start < head:
                    break
                length = int.from_bytes(buffer[start + 2 : start + head], "big")
            if end - start < head + length:
                break
            payload = bytes(buffer[start + head : start + head + length])
            start += head + length
            if first == 0x81:  # a whole text message (FIN, text): what the servers send
                _take(self.load, self.seen, self.live, payload.decode(), received)
            elif first & 0x0F == Opcode.PING:
                self.transport.write(Frame(Opcode.PONG, payload).serialize(mask=True))
            elif first & 0x0F == Opcode.CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                return self._fail(
                    f"closed before it went live: {code} {payload[2:].decode(errors='replace')}"
                )
        del buffer[:start]

    def eof_received(self) -> None:
        self._fail("the server closed the connection")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"closed before it went live: {exc or 'no close frame'}")

    def _fail(self, why: str) -> None:
        if not self.live.done():
            self.live.set_exception(ConnectionError(why))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _flush(self) -> None:
        for data in self.sans_io.data_to_send():
            if data:
                self.transport.write(data)


async def join(url: str, name: str, load: Load, options: dict[str, Any]) -> Any:
    """One receiving client, in the room: its :class:`Receiver` once the server said it is live."""
    loop = asyncio.get_running_loop()
    where = parse_uri(url)
    compression = options["compression"]
    _, receiver = await asyncio.wait_for(
        loop.create_connection(lambda: Receiver(url, name, load, compression), where.host, where.port),
        options["open_timeout"],
    )
    await asyncio.wait_for(asyncio.shield(receiver.live), options["open_timeout"])
    return receiver


async def join_publisher(url: str, load: Load, options: dict[str, Any], tasks: set[Any]) -> Any:
    """The publisher, in the room: a websockets connection (its reader task, in ``tasks``,
    takes its acks), once the server said it is live."""
    from websockets.asyncio.client import connect

    connection = await connect(url, **options)
    live: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await connection.send(load.speaker.hello(PUBLISHER))
    task = asyncio.create_task(_receive(connection, load, live))
    tasks.add(task)
    await asyncio.wait_for(asyncio.shield(live), options["open_timeout"])
    return connection


async def join_in_batches(
    url: str, load: Load, options: dict[str, Any], *, batch: int = CONNECT_BATCH
) -> tuple[list[Any], list[str]]:
    """Join ``load.clients`` receivers, ``batch`` at a time, counting failures instead of stopping:
    the connections that got in, and why the others did not (``Type: message``)."""
    joined: list[Any] = []
    failures: list[str] = []
    for first in range(0, load.clients, batch):
        names = [f"r{i:05d}" for i in range(first, min(load.clients, first + batch))]
        outcomes = await asyncio.gather(
            *(join(url, name, load, options) for name in names), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                failures.append(f"{type(outcome).__name__}: {outcome}")
            else:
                joined.append(outcome)
        emit(phase="connect", done=len(joined) + len(failures), total=load.clients)
    return joined, failures


async def join_storm(url: str, load: Load, options: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """Join ``load.clients`` receivers all at once, as a crowd does: every connection is
    attempted at the start, each sends its name as soon as it is open, and none waits for
    another. The connections that got in, and why the others did not (``Type: message``)."""
    joined: list[Any] = []
    failures: list[str] = []

    async def one(name: str) -> None:
        try:
            joined.append(await join(url, name, load, options))
        except Exception as exc:  # counted, never fatal: refused, reset, timed out
            failures.append(f"{type(exc).__name__}: {exc}")

    async def tell() -> None:
        while True:
            emit(phase="connect", done=len(joined) + len(failures), total=load.clients)
            await asyncio.sleep(0.2)

    telling = asyncio.create_task(tell())
    try:
        await asyncio.gather(*(one(f"r{i:05d}") for i in range(load.clients)))
    finally:
        telling.cancel()
    emit(phase="connect", done=len(joined) + len(failures), total=load.clients)
    return joined, failures


async def report_progress(load: Load, interval: float = 0.2) -> None:
    """Tell the orchestrator how many deliveries arrived, every ``interval`` s, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        emit(phase="deliver", done=load.delivered, total=load.expected)


async def connect_and_warm_up(
    args: argparse.Namespace,
    load: Load,
    options: dict[str, Any],
    tasks: set[asyncio.Task[None]],
    *,
    receive_url: str,
    publish_url: str,
) -> tuple[list[Any], Any] | None:
    """Connect the receivers (in batches) and the publisher, then send the warm-up messages.

    Returns ``(receivers, publisher)`` once every receiver has read every warm-up message: whatever came
    before (welcomes, a chat room's join announcements) is then out of the way of the
    measurement, and every connection has carried traffic (on a fresh one, the first
    messages cost more). Returns None, having said why, when that fails.
    """
    n = load.clients
    receivers: list[Any] = []
    try:
        for first in range(0, n, CONNECT_BATCH):
            batch = range(first, min(n, first + CONNECT_BATCH))
            joined = await asyncio.gather(
                *(join(receive_url, f"r{i:05d}", load, options) for i in batch),
                return_exceptions=True,
            )
            for outcome in joined:
                if isinstance(outcome, BaseException):
                    raise outcome
            receivers += joined
            emit(phase="connect", done=len(receivers), total=n)
        publisher = await join_publisher(publish_url, load, options, tasks)
    except Exception as exc:  # refused, reset, timed out: say so instead of a traceback
        emit(error=f"connecting clients failed after {len(receivers)}: {type(exc).__name__}: {exc}")
        return None
    for w in range(load.warmup):  # a ref per message: a reused one is acknowledged, not republished
        await publisher.send(load.speaker.chat(text(SYNC, args.size, args.text), f"sync-{w}"))
    try:
        await asyncio.wait_for(load.all_synced.wait(), args.timeout)
    except TimeoutError:
        emit(error=f"only {load.synced} of {n * load.warmup} warm-up deliveries arrived")
        return None
    return receivers, publisher
