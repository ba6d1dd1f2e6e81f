"""``python -m wslab bench fanout``: the chat server's fan-out against a bare ``broadcast()``.

One run starts each server in turn, each in a fresh process of its own
(:mod:`wslab.bench.servers`):

* ``chat``: ``python -m wslab serve chat``, the lessons' chat server as a learner starts it
  from a terminal, with its event log and its log lines;
* ``baseline``: a bare websockets server whose handler, for every message a client
  sends, calls :func:`websockets.asyncio.server.broadcast` on every other connection,
  the least a correct fan-out can do;
* ``node``: the same on Node's ``ws``, a reference outside Python, where Node and the
  package are installed (``make bench-npm``); the run says so when they are not.

Each server is measured in both of the chat's dialects (``--dialects``): ``json``, and
the original tutorial's ``plain`` text, where a client's first message is its name and
every chat message arrives as a line ``[name] text``. The references do for each dialect
the least that dialect needs: in json they forward the publisher's message as it came; in
plain they format the ``[name] text`` line once per message, as the tutorial's server does.

A load process (:mod:`wslab.bench.load`) opens ``--clients`` receiving connections and
one publisher over 127.0.0.1. Where the machine has two CPUs, the server runs on one and
the load process on the other (``--no-pin`` lets the system place them): the load takes
no CPU time from the server, as clients on other machines would not. After ``--warmup``
untimed messages that every receiver must have read, the publisher sends ``--messages``
chat messages of ``--size`` characters of text, each starting with its index and its send
time (:func:`time.time`), then words (``--text words``, compressing like chat text) or
``xxxx...`` (``--text repeat``); every receiver timestamps each message as it reads it.
Reported:

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
time spent queued behind earlier messages; the summary compares deliveries/s. ``--rate``
paces it instead (the paced mode), for latency under a load every server sustains; the
summary then compares p50 and p99 as well.

Exit status: 0, 2 if any message was lost, 1 if a run failed. Results and their reading:
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from ..cli.argtypes import comma_list, positive_int
from . import harness
from .harness import Child, Progress, emit
from .load import DIALECTS, Load, client_options, connect_and_warm_up, drop, report_progress, text
from .servers import CHATS, HOST, SERVERS, node_missing, start_server

__all__ = ["add_fanout_parser", "child_main", "measured_servers", "pin_options"]

#: How to stop a server, and its URL.
Started = tuple[Callable[[], Awaitable[None]], str]


# The bare server (``python -m wslab.bench fanout _serve baseline``)


async def _start_baseline(compression: str | None) -> Started:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    connections: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        hello = await connection.recv()
        plain = isinstance(hello, str) and not hello.startswith("{")
        connections.add(connection)
        try:
            # Tells the load client it is registered, in its dialect.
            await connection.send(f"Welcome, {hello}!" if plain else '{"type":"live"}')
            async for message in connection:
                broadcast(connections - {connection}, f"[{hello}] {message}" if plain else message)
        except ConnectionClosed:
            pass  # the load client drops its connections without a closing handshake
        finally:
            connections.discard(connection)

    server = await serve(handler, HOST, 0, compression=compression)
    port = server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return stop, f"ws://{HOST}:{port}/"


async def _serve_main(compression: str | None) -> int:
    """Serve until stdin closes (the orchestrator reads this process's CPU clock from outside)."""
    harness.raise_open_files_limit()
    stop, url = await _start_baseline(compression)
    emit(url=url, pid=os.getpid())
    try:
        await harness.read_command()
    finally:
        await stop()
    return 0


# The load client (``python -m wslab.bench fanout _load URL ...``)


async def _load_main(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    n, m = args.clients, args.messages
    speaker = DIALECTS[args.dialect]
    load = Load(clients=n, messages=m, expected=n * m, warmup=args.warmup, speaker=speaker)
    options = client_options(args.compression)
    tasks: set[asyncio.Task[None]] = set()
    setup_started = time.perf_counter()
    # The publisher never sees its own messages: the chat server acks them (json) or skips
    # the sender (plain), the baseline skips it.
    connected = await connect_and_warm_up(
        args, load, options, tasks, receive_url=args.url, publish_url=args.url
    )
    if connected is None:
        return 1
    receivers, publisher = connected
    setup = time.perf_counter() - setup_started
    gc.collect()
    gc.freeze()  # nothing allocated so far gets scanned again during the measurement
    if args.coordinated:
        emit(phase="ready")
        await harness.read_command()  # "go", once the server marked its CPU clock

    progress = asyncio.create_task(report_progress(load))
    cpu0 = time.process_time()
    interval = 1 / args.rate if args.rate > 0 else 0.0
    first_send = time.time()
    for i in range(m):
        if interval:
            delay = first_send + i * interval - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await publisher.send(speaker.chat(text(i, args.size, args.text), str(i)))
    await load.settle(timeout=args.timeout, stall=args.stall)
    progress.cancel()
    load_cpu = time.process_time() - cpu0
    emit(phase="deliver", done=load.delivered, total=load.expected)
    emit(
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


async def _measure(server: str, dialect: str, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """One server, one dialect: the load's result, the server's CPU time, and everyone else's."""
    server_cpu, load_cpu = harness.cpus() if args.pin else (None, None)
    started = await start_server(server, compression=args.compression, cpu=server_cpu, before=args.before)
    load_child: Child | None = None
    try:
        load_child = Child(
            "load",
            await harness.spawn(
                "fanout", "_load", started.url, "--dialect", dialect,
                *("--clients", str(args.clients), "--messages", str(args.messages)),
                *("--size", str(args.size), "--text", args.text, "--rate", str(args.rate)),
                *_compression(args),
                *("--timeout", str(args.timeout), "--stall", str(args.stall), "--warmup", str(args.warmup)),
                "--coordinated",
                cpu=load_cpu,
            ),
        )  # fmt: skip
        clocks = harness.Clocks({"server": started.pid})
        label = f"{server} {dialect}"
        result = await harness.follow(
            load_child, label, progress, clocks, wait=args.timeout + 60, mark_on="ready"
        )
        return {**result, "server_command": started.command}
    finally:
        if load_child is not None:
            await load_child.close()
        await started.stop()


def _compression(args: argparse.Namespace) -> tuple[str, str]:
    return "--compression", args.compression


COLUMNS = [
    ("server", "server", "{}"),
    ("dialect", "dialect", "{}"),
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


def placement(args: argparse.Namespace) -> str:
    """Where the server and the load ran, for a table's heading."""
    server_cpu, load_cpu = harness.cpus() if args.pin else (None, None)
    if server_cpu is None:
        return "server and load not pinned"
    return f"server on CPU {server_cpu}, load on CPU {load_cpu}"


def ratio_lines(records: list[dict[str, Any]], dialects: list[str], *, paced: bool) -> list[str]:
    """The chat against each reference, per dialect: deliveries/s; with ``paced``, p50 and p99 too."""
    lines = []
    measures = [("deliveries_per_s", "deliveries/s", "{:,.0f}")]
    if paced:
        measures += [("p50_ms", "p50 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}")]
    pairs = [(chat, reference) for chat in CHATS for reference in ("baseline", "node")] + [("chat", "before")]
    for server, reference in pairs:
        for dialect in dialects:
            for key, label, fmt in measures:
                line = harness.ratio_line(
                    records, dialect, server=server, reference=reference, key=key, label=label, fmt=fmt
                )
                lines += [line] if line else []
    return lines


def _summary(records: list[dict[str, Any]], args: argparse.Namespace, notes: list[str]) -> str:
    pace = f"paced at {args.rate:g} msg/s" if args.rate > 0 else "burst"
    head = (
        f"fan-out: {args.clients:,} clients x {args.messages:,} messages of {args.size} B "
        f"({args.text}, {pace}, compression {args.compression}; {placement(args)})"
    )
    lines = [head, "", harness.results_table(records, COLUMNS, left=3), *harness.disturbed_note(records)]
    ratios = ratio_lines(records, args.dialects.split(","), paced=args.rate > 0)
    return "\n".join([*lines, *(["", *ratios] if ratios else []), *(["", *notes] if notes else [])])


def measured_servers(args: argparse.Namespace, progress: Progress) -> tuple[list[str], list[str]]:
    """The servers asked for that can run here, and a note for each that cannot."""
    servers, notes = [], []
    for server in args.servers.split(","):
        if server == "node" and (missing := node_missing()) is not None:
            notes.append(f"node: not measured: {missing}")
            progress.finish(notes[-1])
        else:
            servers.append(server)
    if args.before:  # right after this checkout's chat, so the two alternate like the others
        servers.insert(servers.index("chat") + 1 if "chat" in servers else 0, "before")
    return servers, notes


async def _fanout(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    progress = Progress()
    servers, notes = measured_servers(args, progress)
    records: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        for dialect in args.dialects.split(","):
            # Alternate the order between runs, so neither server always goes first.
            for server in servers if run % 2 else servers[::-1]:
                try:
                    measured = await _measure(server, dialect, args, progress)
                except (RuntimeError, TimeoutError) as exc:
                    progress.finish(f"wslab bench: {server} {dialect} (run {run}) failed: {exc}")
                    return 1
                record = {"server": server, "dialect": dialect, "run": run, **_settings(args), **measured}
                label = f"{server} {dialect} (run {run})"
                harness.record_result(records, record, label, progress, as_json=args.json)
    if not args.json:
        print(_summary(records, args, notes), flush=True)
    return 0 if all(r["lost"] == 0 for r in records) else 2


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("clients", "messages", "size", "text", "rate", "compression")
    server_cpu, load_cpu = harness.cpus() if args.pin else (None, None)
    return {**{key: getattr(args, key) for key in keys}, "server_cpu": server_cpu, "load_cpu": load_cpu}


# Options


def _load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=positive_int, default=100, help="receiving clients (default: 100)")
    parser.add_argument(
        "--messages", type=positive_int, default=100, help="messages published (default: 100)"
    )
    harness.message_options(parser)
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


def add_fanout_parser(kinds: Any) -> argparse.ArgumentParser:
    """Add ``fanout`` to the ``python -m wslab bench`` benchmarks."""
    fanout = harness.add_benchmark(
        kinds,
        "fanout",
        doc=__doc__,
        help="one publisher, many receivers: the chat server against a bare broadcast()",
        options=_load_options,
        picks=("--servers", SERVERS, "comma-separated: chat,baseline,node (default: all three)"),
        each="server, dialect and run",
        run=_fanout,
    )
    pin_options(fanout)
    fanout.add_argument(
        "--dialects",
        type=comma_list(tuple(DIALECTS)),
        default=",".join(DIALECTS),
        help="the clients' dialects, comma-separated: json,plain (default: both)",
    )
    return fanout


def pin_options(parser: argparse.ArgumentParser) -> None:
    """``--no-pin`` (let the system place the server and the load), and ``--before DIR``."""
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server and the load to different CPUs (default: pinned where there are two)",
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        default=None,
        help="also measure, as server 'before', the chat command of the wslab checkout in DIR "
        "(git worktree add DIR COMMIT): figures before and after a change, in the same run",
    )


def child_main(argv: Sequence[str]) -> int:
    """The server and load processes a fan-out run starts (internal)."""
    parser = argparse.ArgumentParser(
        prog="python -m wslab.bench fanout", description="internal: bench processes"
    )
    roles = parser.add_subparsers(dest="role", required=True)
    serve = roles.add_parser("_serve")
    serve.add_argument("server", choices=("baseline",))
    serve.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    load = roles.add_parser("_load")
    load.add_argument("url")
    load.add_argument("--dialect", choices=tuple(DIALECTS), default="json")
    _load_options(load)
    load.add_argument("--coordinated", action="store_true", help="say ready and wait for go on stdin")
    args = parser.parse_args(argv)
    if args.role == "_serve":
        return asyncio.run(_serve_main(None if args.compression == "none" else "deflate"))
    return asyncio.run(_load_main(args))
