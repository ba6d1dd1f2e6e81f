"""``python -m wslab bench join``: many people join one room, then a burst reaches them all.

The chat's presence is the point: announcing each join to everyone already there costs
N²/2 deliveries, and while a server fans those out its handshakes time out. One run
starts each server in turn, in a fresh process of its own (the same two as ``bench
fanout``): ``chat``, the lessons' :class:`~wslab.servers.ChatServer` (presence coalesced
past 50 people), and ``baseline``, a bare websockets server calling ``broadcast()``.

A load process (:mod:`wslab.bench.load`) joins ``--clients`` receivers in batches of
``--batch`` (each sends its hello and waits until the server says it is in), counting
failures instead of stopping. Then the orchestrator reads the server's resident memory,
and the load process joins a publisher, sends ``--warmup`` untimed messages every
receiver must read, and a burst of ``--messages`` chat messages; while the burst goes
out, the orchestrating process opens a new connection every ``--probe-every`` seconds and
times its handshake. Reported:

* ``join_s``: from the first connection attempt to the last receiver in; ``failed``; the
  CPU seconds the server and everything else (``join_other_cpu_s``) used meanwhile;
* ``rss_kib_per_client``: the server's resident memory (``/proc/PID/status``) after the
  joins, less before them, per receiver that got in. Compression is off by default here
  (``--compression deflate`` turns it on): zlib's state costs any websockets server about
  40 KiB more per connection;
* ``deliveries_per_s``, ``p50_ms``, ``p99_ms``, ``lost``: as ``bench fanout`` reports them;
* ``handshake_max_ms``, ``handshakes_timed_out``: the slowest probe handshake during the
  burst, and how many took over websockets' default ``open_timeout`` (10 s);
* CPU seconds of the server and the load over the burst, and ``other_cpu_s``.

Exit status: 0; 2 if a client failed to join or a message was lost; 1 if a run failed.
Results and their reading: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import time
from collections.abc import Sequence
from typing import Any

from ..cli.argtypes import positive_int
from . import harness
from .fanout import measured_servers, pin_options, placement, ratio_lines
from .harness import Child, Progress, emit
from .load import (
    CONNECT_BATCH,
    DIALECTS,
    SYNC,
    Load,
    client_options,
    drop,
    join_in_batches,
    join_publisher,
    join_storm,
    report_progress,
    text,
)
from .servers import SERVERS, start_server

__all__ = ["PROBE_TIMEOUT", "add_join_parser", "child_main"]

#: websockets' default ``open_timeout``: a handshake slower than this fails for a default client.
PROBE_TIMEOUT = 10.0


# The load client (``python -m wslab.bench join _load URL ...``)


async def _probe_handshakes(url: str, every: float, stop: asyncio.Event) -> dict[str, Any]:
    """Open a connection every ``every`` s until ``stop`` (at least one): the slowest opening
    handshake, and how many took longer than websockets' default ``open_timeout``.

    Run by the orchestrator, which has nothing else to do meanwhile: the load process is
    busy reading the burst, and would make any handshake it timed look slow.
    """
    from websockets.asyncio.client import connect

    took: list[float] = []
    timed_out = 0
    while True:
        started = time.perf_counter()
        try:
            connection = await connect(url, compression=None, open_timeout=PROBE_TIMEOUT)
        except (OSError, TimeoutError):
            timed_out += 1
        else:
            took.append(time.perf_counter() - started)
            connection.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            break
    return {
        "handshakes": len(took) + timed_out,
        "handshake_max_ms": round(1000 * max(took), 1) if took else None,
        "handshakes_timed_out": timed_out,
    }


async def _warm_up(args: argparse.Namespace, load: Load, publisher: Any) -> None:
    for w in range(load.warmup):  # a ref per message: a reused one is acknowledged, not republished
        await publisher.send(load.speaker.chat(text(SYNC, args.size, args.text), f"sync-{w}"))
    await asyncio.wait_for(load.all_synced.wait(), args.timeout)


async def _load_main(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    n, m = args.clients, args.messages
    load = Load(clients=n, messages=m, expected=n * m, warmup=args.warmup, speaker=DIALECTS[args.dialect])
    options = client_options(args.compression)
    tasks: set[asyncio.Task[None]] = set()
    # The connections pile up objects that live on: without this, the load's garbage collector
    # would walk them all again and again, and its pace, not the server's, would set the joins'.
    gc.disable()
    started, cpu0 = time.perf_counter(), time.process_time()
    if args.storm:
        receivers, failures = await join_storm(args.url, load, options)
    else:
        receivers, failures = await join_in_batches(args.url, load, options, batch=args.batch)
    joined_s, join_cpu = time.perf_counter() - started, time.process_time() - cpu0
    gc.enable()
    emit(phase="joined", joined=len(receivers), failed=len(failures), join_s=round(joined_s, 2),
         failures=sorted(set(failures))[:5], join_load_cpu_s=round(join_cpu, 2))  # fmt: skip
    load.clients, load.expected = len(receivers), len(receivers) * m  # the burst goes to those in
    await harness.read_command()  # "go", once the orchestrator read the server's memory
    try:
        publisher = await join_publisher(args.url, load, options, tasks)
        await _warm_up(args, load, publisher)
    except Exception as exc:
        emit(error=f"the publisher or its warm-up failed: {type(exc).__name__}: {exc}")
        return 1
    gc.collect()
    gc.freeze()
    emit(phase="ready")
    await harness.read_command()  # "go", once the server's CPU clock is marked
    progress = asyncio.create_task(report_progress(load))
    cpu0 = time.process_time()
    first_send = time.time()
    for i in range(m):
        await publisher.send(load.speaker.chat(text(i, args.size, args.text), str(i)))
    await load.settle(timeout=args.timeout, stall=args.stall)
    progress.cancel()
    emit(phase="deliver", done=load.delivered, total=load.expected)
    emit(
        result={
            **load.result(first_send),
            "load_cpu_s": round(time.process_time() - cpu0, 3),
        }
    )
    drop([*receivers, publisher], tasks)
    return 0


# The orchestrating process (``python -m wslab bench join``)


async def _joined(load: Child, label: str, progress: Progress, wait: float) -> dict[str, Any]:
    while True:
        record = await load.read(wait)
        if record.get("phase") == "connect":
            progress.update(f"{label}: joining", record["done"], record["total"])
        elif record.get("phase") == "joined":
            return record


async def _measure(server: str, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """One server: how the joins went, its memory per client, then the burst's result."""
    server_cpu, load_cpu = harness.cpus() if args.pin else (None, None)
    started = await start_server(server, compression=args.compression, cpu=server_cpu, before=args.before)
    load_child: Child | None = None
    try:
        rss_before = harness.process_rss_kib(started.pid)
        load_child = Child(
            "load",
            await harness.spawn(
                "join", "_load", started.url, "--dialect", args.dialect,
                *("--clients", str(args.clients), "--batch", str(args.batch)),
                *(["--storm"] if args.storm else []),
                "--messages", str(args.messages),
                *("--size", str(args.size), "--text", args.text, "--compression", args.compression),
                *("--timeout", str(args.timeout), "--stall", str(args.stall), "--warmup", str(args.warmup)),
                cpu=load_cpu,
            ),
        )  # fmt: skip
        joined = await _joins(load_child, started.pid, server, progress, args.timeout + 60)
        rss_after = harness.process_rss_kib(started.pid)
        per_client = None
        if rss_before is not None and rss_after is not None and joined["joined"]:
            per_client = round((rss_after - rss_before) / joined["joined"], 1)
        load_child.write("go")
        result = await _burst(load_child, started.pid, started.url, server, progress, args)
        memory = {"rss_kib_per_client": per_client, "server_rss_kib": rss_after}
        return {**joined, **memory, **result, "server_command": started.command}
    finally:
        if load_child is not None:
            await load_child.close()
        await started.stop()


async def _joins(load: Child, pid: int, label: str, progress: Progress, wait: float) -> dict[str, Any]:
    """The load's report of the joins, with the server's and everyone else's CPU meanwhile."""
    clocks = harness.Clocks({"server": pid})
    clocks.mark()
    joined = await _joined(load, label, progress, wait)
    used = clocks.read(joined["join_load_cpu_s"])
    del joined["phase"]
    return {**joined, "join_server_cpu_s": used["server_cpu_s"], "join_other_cpu_s": used["other_cpu_s"]}


async def _burst(
    load: Child, pid: int, url: str, label: str, progress: Progress, args: argparse.Namespace
) -> dict[str, Any]:
    """The burst's result, and the handshakes timed while it went out."""
    clocks = harness.Clocks({"server": pid})
    probing, stop = None, asyncio.Event()
    try:
        following = harness.follow(load, label, progress, clocks, wait=args.timeout + 60, mark_on="ready")
        follower = asyncio.ensure_future(following)
        while not (follower.done() or clocks.start):  # the burst starts once the clocks are marked
            await asyncio.sleep(0.01)
        if args.probe_every > 0:
            probing = asyncio.create_task(_probe_handshakes(url, args.probe_every, stop))
        result = await follower
    finally:
        probes = {}
        if probing is not None:
            stop.set()
            probes = await probing
    return {**result, **probes}


COLUMNS = [
    ("server", "server", "{}"),
    ("run", "run", "{}"),
    ("joined", "joined", "{:,}"),
    ("failed", "failed", "{:,}"),
    ("join s", "join_s", "{:.1f}"),
    ("join CPU s", "join_server_cpu_s", "{:.1f}"),
    ("other", "join_other_cpu_s", "{:.1f}"),
    ("KiB/client", "rss_kib_per_client", "{:.1f}"),
    ("deliveries/s", "deliveries_per_s", "{:,.0f}"),
    ("p50 ms", "p50_ms", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.0f}"),
    ("lost", "lost", "{:,}"),
    ("handshake ms", "handshake_max_ms", "{:.0f}"),
    ("timed out", "handshakes_timed_out", "{}"),
    ("server CPU s", "server_cpu_s", "{:.2f}"),
    ("load CPU s", "load_cpu_s", "{:.2f}"),
    ("other CPU s", "other_cpu_s", "{:.2f}"),
]


def _summary(records: list[dict[str, Any]], args: argparse.Namespace, notes: list[str]) -> str:
    how = "all at once (storm)" if args.storm else f"in batches of {args.batch}"
    head = (
        f"join: {args.clients:,} clients {how}, then a burst of {args.messages:,} messages of "
        f"{args.size} B to all ({args.dialect}, compression {args.compression}; {placement(args)})"
    )
    lines = [head, "", harness.results_table(records, COLUMNS, left=2), *harness.disturbed_note(records)]
    ratios = ratio_lines(records, [args.dialect], paced=False)
    return "\n".join([*lines, *(["", *ratios] if ratios else []), *(["", *notes] if notes else [])])


async def _join_bench(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    progress = Progress()
    servers, notes = measured_servers(args, progress)
    records: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        for server in servers if run % 2 else servers[::-1]:
            try:
                measured = await _measure(server, args, progress)
            except (RuntimeError, TimeoutError) as exc:
                progress.finish(f"wslab bench: {server} join (run {run}) failed: {exc}")
                return 1
            record = {"server": server, "run": run, "dialect": args.dialect, **_settings(args), **measured}
            records.append(record)
            progress.finish(
                f"{server} (run {run}): {record['joined']:,} in after {record['join_s']} s, "
                f"{record['failed']:,} failed; {record['deliveries_per_s']:,.0f} deliveries/s, "
                f"lost {record['lost']:,}"
            )
            if args.json:
                print(json.dumps(record), flush=True)
    if not args.json:
        print(_summary(records, args, notes), flush=True)
    return 0 if all(r["lost"] == 0 and r["failed"] == 0 for r in records) else 2


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("clients", "batch", "storm", "messages", "size", "compression")
    server_cpu, load_cpu = harness.cpus() if args.pin else (None, None)
    return {**{key: getattr(args, key) for key in keys}, "server_cpu": server_cpu, "load_cpu": load_cpu}


# Options


def _load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=positive_int, default=1000, help="people joining (default: 1000)")
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=CONNECT_BATCH,
        help=f"join this many at a time, each batch once the last is in (default: {CONNECT_BATCH})",
    )
    parser.add_argument(
        "--storm",
        action="store_true",
        help="join everyone at once, as a crowd does: every connection attempted at the start, "
        "each sending its name as soon as it is open (--batch is then unused)",
    )
    parser.add_argument(
        "--messages", type=positive_int, default=100, help="messages in the burst (default: 100)"
    )
    harness.message_options(parser)
    # Memory per connection is the question here, and zlib's state for permessage-deflate
    # is most of it in any websockets server (~40 KiB): off unless asked for.
    parser.set_defaults(compression="none")
    parser.add_argument("--warmup", type=positive_int, default=1, help="untimed messages first (default: 1)")
    parser.add_argument(
        "--probe-every",
        type=float,
        default=0.5,
        help="during the burst, time a new connection's handshake every this many s (default: 0.5; 0: none)",
    )
    parser.add_argument("--dialect", choices=tuple(DIALECTS), default="json", help="json (default) or plain")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all deliveries")
    parser.add_argument(
        "--stall", type=float, default=30.0, help="give up after this many s without a delivery"
    )


def add_join_parser(kinds: Any) -> argparse.ArgumentParser:
    """Add ``join`` to the ``python -m wslab bench`` benchmarks."""
    join = harness.add_benchmark(
        kinds,
        "join",
        doc=__doc__,
        help="many clients join one room, then a burst to all: the chat against a bare broadcast()",
        options=_load_options,
        picks=("--servers", SERVERS, "comma-separated: chat,baseline,node (default: all three)"),
        each="server and run",
        run=_join_bench,
    )
    pin_options(join)
    return join


def child_main(argv: Sequence[str]) -> int:
    """The load process a join run starts (internal; the servers are ``bench fanout``'s)."""
    parser = argparse.ArgumentParser(prog="python -m wslab.bench join", description="internal")
    roles = parser.add_subparsers(dest="role", required=True)
    load = roles.add_parser("_load")
    load.add_argument("url")
    _load_options(load)
    return asyncio.run(_load_main(parser.parse_args(argv)))
