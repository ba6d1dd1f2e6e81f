"""``python -m wslab bench fanout``: the chat server's fan-out against a bare ``broadcast()``.

One run starts each server in turn, each in a fresh process of its own:

* ``chat``: the lessons' :class:`~wslab.servers.ChatServer` over a
  :class:`~wslab.brokers.MemoryBroker`, as :meth:`ChatServer.serve` starts it;
* ``baseline``: a bare websockets server whose handler, for every message a client
  sends, calls :func:`websockets.asyncio.server.broadcast` on every other connection,
  the least a correct fan-out can do.

A load process (``python -m wslab.bench _load``, started with :data:`sys.executable`)
opens ``--clients`` receiving connections and one publisher over 127.0.0.1, all speaking
the chat protocol's json dialect. After ``--warmup`` untimed messages that every receiver
must have read, the publisher sends ``--messages`` chat messages of ``--size`` characters
of text, each starting with its index and its send time (:func:`time.time`), then words
(``--text words``, compressing like chat text) or ``xxxx...`` (``--text repeat``); every
receiver timestamps each message as it reads it. Reported:

* ``deliveries_per_s``: distinct messages received, summed over the receivers, divided
  by the time from the first send to the last delivery;
* ``p50_ms`` / ``p99_ms``: publish-to-delivery latency over every delivery;
* ``lost``: ``clients * messages`` minus distinct deliveries, counted once every
  delivery arrived or the wait gave up (``--timeout``; ``--stall`` seconds with none);
* ``server_cpu_s`` / ``load_cpu_s``: CPU time of the server and of the load process over
  the measurement; the server's per delivery is the steadiest comparison on a busy machine;
* ``other_cpu_s``: CPU time everything else on the machine used meanwhile (Linux,
  ``/proc/stat``); a run where it passes 10 % of one CPU is flagged as disturbed.

By default the publisher sends in a burst (as fast as its own connection takes the
messages): this measures how fast each server fans out, and the latency is then mostly
time spent queued behind earlier messages. ``--rate`` paces it instead, for latency
under a load both servers sustain.

The orchestrating process, the servers and the load process talk over pipes in JSON
lines; ``_serve`` and ``_load`` are internal commands, not an interface. Exit status: 0,
2 if any message was lost, 1 if a run failed. Results and their reading:
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from .protocol import MAX_TEXT_LENGTH

__all__ = ["add_bench_parser", "raise_open_files_limit"]

HOST = "127.0.0.1"
SERVERS = ("chat", "baseline")
#: Receivers connect this many at a time, so the server's accept queue never overflows.
CONNECT_BATCH = 100
PUBLISHER = "publisher"
SYNC = -1


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _emit(**record: Any) -> None:
    """One JSON line to the orchestrating process."""
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _command() -> str:
    """The next line on stdin, stripped; "" at end of file (a thread: stdin may not be a pipe)."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


# Servers (``python -m wslab.bench _serve chat|baseline``)


async def _start_baseline(compression: str | None) -> tuple[Any, str, Callable[[], dict[str, Any]]]:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    connections: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        await connection.recv()  # the hello; its name does not matter here
        connections.add(connection)
        try:
            await connection.send('{"type":"live"}')  # tells the load client it is registered
            async for message in connection:
                broadcast(connections - {connection}, message)
        except ConnectionClosed:
            pass  # the load client drops its connections without a closing handshake
        finally:
            connections.discard(connection)

    server = await serve(handler, HOST, 0, compression=compression)
    port = server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return stop, f"ws://{HOST}:{port}/", dict


async def _start_chat(compression: str | None) -> tuple[Any, str, Callable[[], dict[str, Any]]]:
    from .brokers import MemoryBroker
    from .servers.chat import ChatServer

    chat = ChatServer(broker=MemoryBroker())
    handle = await chat.serve(name="bench-chat", host=HOST, port=0, compression=compression)

    def stats() -> dict[str, Any]:
        s = chat.stats
        return {
            "published": s.published,
            "delivered": s.delivered,
            "evicted": s.evicted,
            "dropped": s.dropped,
        }

    return handle.stop, handle.url, stats


async def _serve_main(kind: str, compression: str | None) -> int:
    """Serve until stdin closes; ``mark`` starts the CPU clock, ``report`` reads it."""
    raise_open_files_limit()
    start = _start_chat if kind == "chat" else _start_baseline
    stop, url, stats = await start(compression)
    _emit(url=url, pid=os.getpid())
    cpu0 = time.process_time()
    try:
        while line := await _command():
            if line == "mark":
                cpu0 = time.process_time()
                _emit(marked=True)
            elif line == "report":
                _emit(cpu_s=round(time.process_time() - cpu0, 3), **stats())
    finally:
        await stop()
    return 0


# The load client (``python -m wslab.bench _load URL ...``)


@dataclass
class _Load:
    clients: int
    messages: int
    expected: int
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
    text = " ".join(words)[:length]
    return text[:-1] + "s" if text.endswith(" ") else text  # the chat server strips trailing spaces


def _text(index: int, size: int, filler: str = "repeat") -> str:
    """``size`` characters (at least the header): ``<index> <send time> <filler>``."""
    header = f"{index} {time.time():.6f} "
    return header + _filler(index, size - len(header), filler) if size > len(header) else header.rstrip()


async def _receive(connection: Any, load: _Load, live: asyncio.Future[None]) -> None:
    """Read as fast as possible; the only work per message is parsing it and noting the time."""
    loads, now = json.loads, time.time
    seen = bytearray(load.messages)
    latencies = load.latencies
    try:
        async for message in connection:
            received = now()
            data = loads(message)
            kind = data.get("type")
            if kind != "chat":
                if not live.done():
                    if kind == "live":
                        live.set_result(None)
                    elif kind == "error":
                        live.set_exception(RuntimeError(f"the server refused a client: {data.get('text')}"))
                continue  # welcome, joins and leaves of other clients
            index, sent = data["text"].split(" ", 2)[:2]
            i = int(index)
            if i == SYNC:
                load.synced += 1
                if load.synced == load.clients * load.warmup:
                    load.all_synced.set()
                continue
            if seen[i]:
                load.duplicates += 1
                continue
            seen[i] = 1
            latencies.append(received - float(sent))
            load.last_delivery = received
            load.delivered += 1
            if load.delivered == load.expected:
                load.done.set()
    except ConnectionClosed:
        pass  # counted as lost, if it was early
    if not live.done():
        live.set_exception(ConnectionError(f"closed before it went live: {connection.close_reason}"))


async def _join(url: str, name: str, load: _Load, options: dict[str, Any], tasks: set[Any]) -> Any:
    from websockets.asyncio.client import connect

    connection = await connect(url, **options)
    live: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await connection.send(json.dumps({"type": "hello", "name": name}))
    task = asyncio.create_task(_receive(connection, load, live))
    tasks.add(task)
    await asyncio.wait_for(asyncio.shield(live), options["open_timeout"])
    return connection


async def _report_progress(load: _Load, interval: float = 0.2) -> None:
    while True:
        await asyncio.sleep(interval)
        _emit(phase="deliver", done=load.delivered, total=load.expected)


async def _connect_and_warm_up(
    args: argparse.Namespace,
    load: _Load,
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
                *(_join(receive_url, f"r{i:05d}", load, options, tasks) for i in batch),
                return_exceptions=True,
            )
            for outcome in joined:
                if isinstance(outcome, BaseException):
                    raise outcome
            receivers += joined
            _emit(phase="connect", done=len(receivers), total=n)
        publisher = await _join(publish_url, PUBLISHER, load, options, tasks)
    except Exception as exc:  # refused, reset, timed out: say so instead of a traceback
        _emit(error=f"connecting clients failed after {len(receivers)}: {type(exc).__name__}: {exc}")
        return None
    for w in range(load.warmup):  # a ref per message: a reused one is acknowledged, not republished
        await publisher.send(
            json.dumps({"type": "chat", "text": _text(SYNC, args.size, args.text), "ref": f"sync-{w}"})
        )
    try:
        await asyncio.wait_for(load.all_synced.wait(), args.timeout)
    except TimeoutError:
        _emit(error=f"only {load.synced} of {n * load.warmup} warm-up deliveries arrived")
        return None
    return receivers, publisher


async def _load_main(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    n, m = args.clients, args.messages
    load = _Load(clients=n, messages=m, expected=n * m, warmup=args.warmup)
    options = client_options(args.compression)
    tasks: set[asyncio.Task[None]] = set()
    setup_started = time.perf_counter()
    # The publisher never sees its own messages: the chat server acks them, the baseline skips it.
    connected = await _connect_and_warm_up(
        args, load, options, tasks, receive_url=args.url, publish_url=args.url
    )
    if connected is None:
        return 1
    receivers, publisher = connected
    setup = time.perf_counter() - setup_started
    gc.collect()
    gc.freeze()  # nothing allocated so far gets scanned again during the measurement
    if args.coordinated:
        _emit(phase="ready")
        await _command()  # "go", once the server marked its CPU clock

    progress = asyncio.create_task(_report_progress(load))
    cpu0 = time.process_time()
    interval = 1 / args.rate if args.rate > 0 else 0.0
    first_send = time.time()
    for i in range(m):
        if interval:
            delay = first_send + i * interval - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await publisher.send(
            json.dumps({"type": "chat", "text": _text(i, args.size, args.text), "ref": str(i)})
        )
    await load.settle(timeout=args.timeout, stall=args.stall)
    progress.cancel()
    load_cpu = time.process_time() - cpu0
    _emit(phase="deliver", done=load.delivered, total=load.expected)
    _emit(
        result={
            **load.result(first_send),
            "first_send": first_send,
            "last_delivery": load.last_delivery,
            "setup_s": round(setup, 2),
            "load_cpu_s": round(load_cpu, 3),
        }
    )
    drop([*receivers, publisher], tasks)
    return 0


# The orchestrating process (``python -m wslab bench fanout``)


class _Progress:
    """A one-line text bar on stderr, redrawn in place; plain lines when stderr is not a terminal."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._label = ""

    def update(self, label: str, done: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last < 0.1:
                return
            self._last = now
            width = 30
            filled = width * done // total if total else width
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {label} {done:,}/{total:,}\x1b[K")
            self.stream.flush()
        elif label != self._label:
            self.stream.write(f"{label} ({total:,})\n")
            self.stream.flush()
        self._label = label

    def finish(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        self.stream.flush()
        self._label = ""


def _busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wslab.bench",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


class _Child:
    """A child process that speaks JSON lines on stdout and keeps its stderr for errors."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.stderr = bytearray()
        self._drain = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.stderr += chunk
            del self.stderr[:-65536]  # the end is what explains a failure

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            await self.process.wait()
            await self._drain
            raise RuntimeError(
                f"the {self.name} process exited ({self.process.returncode}):\n"
                + self.stderr.decode(errors="replace").strip()[-2000:]
            )
        record = json.loads(line)
        if "error" in record:
            raise RuntimeError(f"{self.name}: {record['error']}")
        return record

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def close(self, timeout: float = 30) -> None:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        with contextlib.suppress(Exception):
            await self._drain


async def _run_one(server: str, args: argparse.Namespace, run: int, progress: _Progress) -> dict[str, Any]:
    wait = args.timeout + 60
    server_child = _Child(
        f"{server} server", await _spawn("_serve", server, "--compression", args.compression)
    )
    load_child: _Child | None = None
    try:
        url = (await server_child.read(30))["url"]
        load_child = _Child(
            "load",
            await _spawn(
                "_load", url, *("--clients", str(args.clients), "--messages", str(args.messages)),
                *("--size", str(args.size), "--text", args.text, "--rate", str(args.rate)),
                *("--compression", args.compression),
                *("--timeout", str(args.timeout), "--stall", str(args.stall), "--warmup", str(args.warmup)),
                "--coordinated",
            ),
        )  # fmt: skip
        busy0 = busy1 = None
        own0 = own1 = 0.0
        while True:
            record = await load_child.read(wait)
            if record.get("phase") == "connect":
                progress.update(f"{server}: connecting", record["done"], record["total"])
            elif record.get("phase") == "ready":
                server_child.write("mark")
                await server_child.read(wait)
                busy0, own0 = _busy_cpu_s(), time.process_time()
                load_child.write("go")
            elif record.get("phase") == "deliver":
                progress.update(f"{server}: delivering", record["done"], record["total"])
            elif "result" in record:
                result = record["result"]
                busy1, own1 = _busy_cpu_s(), time.process_time()
                break
        progress.update(f"{server}: delivering", result["deliveries"], result["expected"], force=True)
        server_child.write("report")
        report = await server_child.read(wait)
        # What other programs ran meanwhile: on a shared machine, the figures mean little if much.
        other = None
        if busy0 is not None and busy1 is not None:
            ours = (own1 - own0) + result["load_cpu_s"] + report.get("cpu_s", 0.0)
            other = round(max(0.0, busy1 - busy0 - ours), 2)
    finally:
        if load_child is not None:
            await load_child.close()
        await server_child.close()
    return {
        "server": server,
        "run": run,
        "clients": args.clients,
        "messages": args.messages,
        "size": args.size,
        "text": args.text,
        "rate": args.rate,
        "compression": args.compression,
        **result,
        "server_cpu_s": report.get("cpu_s"),
        "other_cpu_s": other,
    }


#: A run counts as disturbed when other programs used more than this share of one CPU during it.
DISTURBED = 0.10


def _disturbed(record: dict[str, Any]) -> bool:
    other = record.get("other_cpu_s")
    # /proc/stat counts in ticks (10 ms): below 50 ms, nothing can be told apart from rounding.
    return other is not None and other > max(0.05, DISTURBED * record["duration_s"])


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _table(records: list[dict[str, Any]]) -> str:
    columns = [
        ("server", "server", "{}"),
        ("run", "run", "{}"),
        ("deliveries/s", "deliveries_per_s", "{:,.0f}"),
        ("p50 ms", "p50_ms", "{:.1f}"),
        ("p99 ms", "p99_ms", "{:.1f}"),
        ("lost", "lost", "{:,}"),
        ("dup", "duplicates", "{:,}"),
        ("time s", "duration_s", "{:.2f}"),
        ("server CPU s", "server_cpu_s", "{:.2f}"),
        ("load CPU s", "load_cpu_s", "{:.2f}"),
        ("other CPU s", "other_cpu_s", "{:.2f}"),
    ]
    rows = []
    for record in records:
        row = [cell(record.get(key), fmt) for _, key, fmt in columns]
        if _disturbed(record):
            row[-1] += " !"
        rows.append(row)
    return format_table([title for title, _, _ in columns], rows, left=1)


def cell(value: Any, fmt: str) -> str:
    """One table cell: ``value`` formatted, or ``-`` where there is none."""
    return "-" if value is None else fmt.format(value)


def format_table(titles: Sequence[str], rows: Sequence[Sequence[str]], *, left: int) -> str:
    """A plain-text table under a rule: the first ``left`` columns left-aligned, numbers right."""
    table = [list(titles), *map(list, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(titles))]
    lines = [
        "  ".join(
            text.ljust(width) if i < left else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _summary(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    pace = f"paced at {args.rate:g} msg/s" if args.rate > 0 else "burst"
    head = (
        f"fan-out: {args.clients:,} clients x {args.messages:,} messages of {args.size} B "
        f"({args.text}, {pace}, compression {args.compression})"
    )
    lines = [head, "", _table(records)]
    disturbed = [r for r in records if _disturbed(r)]
    if disturbed:
        lines += [
            "",
            f"! other programs used more than {DISTURBED:.0%} of a CPU during {len(disturbed)} run(s): "
            "their figures say more about the machine than about the servers.",
        ]
    calm = [r for r in records if not _disturbed(r)]
    if not (any(r["server"] == "chat" for r in calm) and any(r["server"] == "baseline" for r in calm)):
        calm = records
    rates = {server: [r["deliveries_per_s"] for r in calm if r["server"] == server] for server in SERVERS}
    if rates["chat"] and rates["baseline"]:
        chat, baseline = _median(rates["chat"]), _median(rates["baseline"])
        runs = len(rates["chat"]) + len(rates["baseline"])
        which = "" if runs == 2 else "medians, "
        if disturbed and calm is not records:
            which += "undisturbed runs only, "
        ratio = chat / baseline if baseline else float("nan")
        lines += ["", f"chat / baseline deliveries/s: {ratio:.2f} ({which}{chat:,.0f} / {baseline:,.0f})"]
    return "\n".join(lines)


async def _fanout(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    progress = _Progress()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    records = []
    for run in range(1, args.runs + 1):
        # Alternate the order between runs, so neither server always goes first.
        for server in servers if run % 2 else servers[::-1]:
            try:
                record = await _run_one(server, args, run, progress)
            except (RuntimeError, TimeoutError) as exc:
                progress.finish(f"wslab bench: {server} (run {run}) failed: {exc}")
                return 1
            records.append(record)
            progress.finish(
                f"{server} (run {run}): {record['deliveries_per_s']:,.0f} deliveries/s, "
                f"p50 {record['p50_ms']} ms, p99 {record['p99_ms']} ms, lost {record['lost']:,}"
            )
            if args.json:
                print(json.dumps(record), flush=True)
    if not args.json:
        print(_summary(records, args), flush=True)
    return 0 if all(r["lost"] == 0 for r in records) else 2


def comma_list(choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse ``type`` for a comma-separated pick from ``choices`` (``"chat,baseline"``)."""

    def names(value: str) -> str:
        picked = [s.strip() for s in value.split(",") if s.strip()]
        if not picked or set(picked) - set(choices):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated)")
        return ",".join(picked)

    return names


def positive_int(value: str) -> int:
    """An argparse ``type`` for counts: a whole number of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _text_size(value: str) -> int:
    number = int(value)
    if not 0 <= number <= MAX_TEXT_LENGTH:
        raise argparse.ArgumentTypeError(f"the chat protocol allows 0 to {MAX_TEXT_LENGTH} characters")
    return number


def message_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape each message, shared by every benchmark."""
    parser.add_argument(
        "--size",
        type=_text_size,
        default=64,
        help="characters of text per message, at least its ~20-character header (default: 64)",
    )
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="permessage-deflate, as browsers and websockets negotiate by default, or none",
    )
    parser.add_argument(
        "--text",
        choices=("words", "repeat"),
        default="words",
        help="what fills each message after its header: random common words, which compress like chat "
        "text (default), or 'xxxx...', which compresses to almost nothing",
    )


def _load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=positive_int, default=100, help="receiving clients (default: 100)")
    parser.add_argument(
        "--messages", type=positive_int, default=100, help="messages published (default: 100)"
    )
    message_options(parser)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="pace the publisher at this many messages/s (default: 0, burst)",
    )
    parser.add_argument(
        "--warmup",
        type=positive_int,
        default=20,
        help="untimed messages sent first, so every connection has carried traffic (default: 20)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for all deliveries")
    parser.add_argument(
        "--stall", type=float, default=20.0, help="give up after this many s without a delivery"
    )


def add_bench_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``python -m wslab`` subcommands."""
    bench = commands.add_parser("bench", help="measure the lessons' servers under load")
    kinds = bench.add_subparsers(dest="benchmark", required=True)
    fanout = kinds.add_parser(
        "fanout",
        help="one publisher, many receivers: the chat server against a bare broadcast()",
        description=__doc__.split("\n")[0],
    )
    _load_options(fanout)
    fanout.add_argument(
        "--runs", type=positive_int, default=1, help="runs per server, alternating (default: 1)"
    )
    fanout.add_argument(
        "--servers",
        type=comma_list(SERVERS),
        default=",".join(SERVERS),
        help="comma-separated: chat,baseline (default)",
    )
    fanout.add_argument("--json", action="store_true", help="one JSON object per line per server and run")
    fanout.set_defaults(run=_fanout)
    from .bench_scale import add_scale_parser  # its own module: imports this one's pieces

    add_scale_parser(kinds)
    return bench


def _child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m wslab.bench", description="internal: bench processes")
    roles = parser.add_subparsers(dest="role", required=True)
    serve = roles.add_parser("_serve")
    serve.add_argument("server", choices=SERVERS)
    serve.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    load = roles.add_parser("_load")
    load.add_argument("url")
    _load_options(load)
    load.add_argument("--coordinated", action="store_true", help="say ready and wait for go on stdin")
    args = parser.parse_args(argv)
    if args.role == "_serve":
        return asyncio.run(_serve_main(args.server, None if args.compression == "none" else "deflate"))
    return asyncio.run(_load_main(args))


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
