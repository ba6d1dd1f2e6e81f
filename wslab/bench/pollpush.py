"""``python -m wslab bench poll-vs-push``: the tutorial's dashboard story, measured.

The same fleet, the same changes, ``--tabs`` simulated browser tabs, five ways
(:mod:`wslab.bench.tabs`):

* ``poll``: ``GET /api/status`` every ``--interval`` seconds, the whole state each time;
* ``etag``: the same with ``If-None-Match``, so an unchanged state costs a ``304``;
* ``long-poll``: ``GET /api/changes?since=SEQ``, held by the server until something changes;
* ``sse``: one ``text/event-stream`` per tab;
* ``websocket``: one WebSocket per tab (permessage-deflate, as browsers negotiate).

One dashboard server process (:mod:`wslab.servers.dashboard`) serves every mode; one load
process holds the tabs. For each mode the tabs connect and get their first state; then,
over ``--duration`` seconds, the server publishes ``--rate`` x duration seeded changes at
seeded moments; then the tabs get a last ``--interval`` + 3 s to catch up. Reported, over
the measured window (the duration):

* ``requests_per_s``: HTTP requests the tabs sent (a WebSocket's or an SSE stream's one
  request was made before the window);
* ``bytes_per_s_in`` / ``bytes_per_s_out``: bytes to / from the server, headers, chunk
  framing and WebSocket framing included, counted by the tabs' own clients;
* ``server_cpu_s``: CPU time of the server process (Linux ``/proc``); ``other_cpu_s``
  what the rest of the machine used (a run where it passes 10 % of a CPU is flagged);
* ``connections``: TCP connections the server held at the end of the window;
* ``staleness_p50_ms`` / ``staleness_p99_ms``: from a change's publication on the server
  to a tab learning of it, over every (tab, change) pair seen;
* ``missed``: (tab, change) pairs never seen: a poll shows the newest state, so a
  service that changed twice between two polls shows only its second change.

Results and their reading: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from ..cli.argtypes import positive_int
from . import harness
from .harness import Child, emit
from .tabs import MODES, Meter, Tab, make_tab

__all__ = ["COLUMNS", "add_pollpush_parser", "child_main", "measure", "summary"]

#: How long tabs get, after the window, to learn of the last change (beyond one interval).
CATCH_UP = 3.0


# The server (``python -m wslab.bench poll-vs-push _serve``)


async def _serve_main(seed: int) -> int:
    """A dashboard with no simulation of its own: on command, the same seeded changes at the same
    seeded moments for every mode (services, moments, and so which changes a poll coalesces)."""
    from ..core.fleet import FleetSimulation
    from ..servers.dashboard import serve_dashboard
    from ..servers.fleet_feed import FleetFeed

    harness.raise_open_files_limit()
    feed = FleetFeed()
    handle = await serve_dashboard(feed, name="bench-dashboard")
    emit(url=handle.url, pid=os.getpid())
    try:
        while command := await harness.read_command():  # "changes COUNT DURATION"
            _, count, duration = command.split()
            simulation = FleetSimulation(feed.services, seed=seed)  # every mode: the same story
            start = time.perf_counter()
            seqs = []
            for moment in simulation.schedule(int(count), float(duration)):
                await asyncio.sleep(max(0.0, start + moment - time.perf_counter()))
                seqs.append((await feed.report(simulation.next_change())).seq)
            await asyncio.sleep(max(0.0, start + float(duration) - time.perf_counter()))
            emit(first=seqs[0] if seqs else 0, last=seqs[-1] if seqs else 0, connections=handle.connections)
    finally:
        await handle.stop()
    return 0


# The load (``python -m wslab.bench poll-vs-push _load URL``)


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _one_mode(mode: str, args: argparse.Namespace, rng: random.Random) -> None:
    meter = Meter()
    tabs: list[Tab] = [
        make_tab(mode, args.url, meter, interval=args.interval, rng=rng) for _ in range(args.tabs)
    ]
    tasks = [asyncio.create_task(tab.run()) for tab in tabs]
    try:
        await asyncio.wait_for(asyncio.gather(*(tab.ready.wait() for tab in tabs)), 60)
        emit(phase="ready")
        await harness.read_command()  # "go"
        meter.reset()
        cpu0, started = time.process_time(), time.perf_counter()
        _, first, last = (await harness.read_command()).split()  # "stop FIRST LAST"
        window = time.perf_counter() - started
        counted = (meter.requests, meter.to_server, meter.from_server, meter.not_modified)
        deadline = time.perf_counter() + args.interval + CATCH_UP
        while any(tab.seq < int(last) for tab in tabs) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        emit(result=_result(mode, args, meter, counted, window, int(first), int(last), cpu0))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for tab in tabs:
            tab.close()


def _result(
    mode: str, args: argparse.Namespace, meter: Meter, counted: tuple[int, ...], window: float,
    first: int, last: int, cpu0: float,
) -> dict[str, Any]:  # fmt: skip
    requests, to_server, from_server, not_modified = counted
    changes = set(range(first, last + 1)) if first else set()
    seen = [(seq, late) for seq, late in meter.seen if seq in changes]
    lateness = [late * 1000 for _, late in seen]
    p50, p99 = _percentile(lateness, 0.5), _percentile(lateness, 0.99)
    return {
        "mode": mode,
        "tabs": args.tabs,
        "interval_s": args.interval,
        "changes": len(changes),
        "duration_s": round(window, 3),
        "requests": requests,
        "requests_per_s": round(requests / window, 1),
        "not_modified": not_modified,
        "bytes_per_s_in": round(to_server / window),
        "bytes_per_s_out": round(from_server / window),
        "staleness_p50_ms": None if p50 is None else round(p50, 1),
        "staleness_p99_ms": None if p99 is None else round(p99, 1),
        "seen": len(seen),
        "missed": args.tabs * len(changes) - len(seen),
        "load_cpu_s": round(time.process_time() - cpu0, 3),
    }


async def _load_main(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    rng = random.Random(args.seed)
    while command := await harness.read_command():  # "mode NAME"
        await _one_mode(command.split()[1], args, rng)
    return 0


# The orchestrating process


async def measure(
    *, tabs: int, interval: float, duration: float, rate: float, modes: Sequence[str] = MODES, seed: int = 7,
    on_result: Any = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Run the comparison (a server and a load process, children of this one); one record per mode.

    The lesson calls this directly; ``on_result(record)`` is called as each mode ends.
    """
    count = max(1, round(rate * duration))
    server = Child("dashboard server", await harness.spawn("poll-vs-push", "_serve", "--seed", str(seed)))
    load: Child | None = None
    records = []
    try:
        started = await server.read(30)
        load = Child(
            "load",
            await harness.spawn(
                "poll-vs-push", "_load", started["url"], "--tabs", str(tabs), "--interval", str(interval),
                "--seed", str(seed),
            ),
        )  # fmt: skip
        assert load.process.pid is not None
        for mode in modes:
            load.write(f"mode {mode}")
            await load.read(90)  # ready
            clocks = harness.Clocks({"server": started["pid"], "load": load.process.pid})
            clocks.mark()
            load.write("go")
            server.write(f"changes {count} {duration}")
            published = await server.read(duration + 60)
            load.write(f"stop {published['first']} {published['last']}")
            cpu = clocks.read(0.0)
            result = (await load.read(interval + CATCH_UP + 60))["result"]
            record = {**result, **cpu, "connections": published["connections"]}
            records.append(record)
            if on_result is not None:
                on_result(record)
    finally:
        if load is not None:
            await load.close()
        await server.close()
    return records


COLUMNS = [
    ("mode", "mode", "{}"),
    ("requests/s", "requests_per_s", "{:,.1f}"),
    ("B/s to server", "bytes_per_s_in", "{:,}"),
    ("B/s from server", "bytes_per_s_out", "{:,}"),
    ("server CPU s", "server_cpu_s", "{:.2f}"),
    ("conns", "connections", "{:,}"),
    ("stale p50 ms", "staleness_p50_ms", "{:,.1f}"),
    ("stale p99 ms", "staleness_p99_ms", "{:,.1f}"),
    ("missed", "missed", "{:,}"),
    ("other CPU s", "other_cpu_s", "{:.2f}"),
]


def summary(records: Sequence[dict[str, Any]]) -> str:
    """The table the command prints (and the lesson shows)."""
    first = records[0]
    head = (
        f"poll vs push: {first['tabs']:,} tabs, polling every {first['interval_s']:g} s, "
        f"{first['changes']} change(s) in {first['duration_s']:.1f} s per mode"
    )
    return "\n".join(
        [head, "", harness.results_table(records, COLUMNS, left=1), *harness.disturbed_note(records)]
    )


async def _pollpush(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    progress = harness.Progress()
    records: list[dict[str, Any]] = []

    def done(record: dict[str, Any]) -> None:
        progress.finish(
            f"{record['mode']}: {record['requests_per_s']:,.1f} requests/s, "
            f"staleness p50 {record['staleness_p50_ms']} ms, missed {record['missed']:,}"
        )
        if args.json:
            print(json.dumps(record), flush=True)

    modes = args.modes.split(",")
    try:
        for _ in range(args.runs):
            records += await measure(
                tabs=args.tabs, interval=args.interval, duration=args.duration, rate=args.rate, modes=modes,
                seed=args.seed, on_result=done,
            )  # fmt: skip
    except (RuntimeError, TimeoutError) as exc:
        progress.finish(f"wslab bench: poll-vs-push failed: {exc}")
        return 1
    if not args.json:
        print(summary(records), flush=True)
    return 0


# Options


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tabs", type=positive_int, default=500, help="browser tabs per mode (default: 500)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between polls, as in the story (default: 2)"
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds measured per mode (default: 30)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.1, help="fleet changes per second during the window (default: 0.1)"
    )
    parser.add_argument("--seed", type=int, default=7, help="the fleet's and the tabs' seed (default: 7)")


def add_pollpush_parser(kinds: Any) -> argparse.ArgumentParser:
    """Add ``poll-vs-push`` to the ``python -m wslab bench`` benchmarks."""
    return harness.add_benchmark(
        kinds,
        "poll-vs-push",
        doc=__doc__,
        help="lesson 07: one fleet dashboard, N tabs, polled (naive, ETag), long-polled, SSE, WebSocket",
        options=_options,
        picks=("--modes", MODES, "comma-separated: " + ",".join(MODES) + " (default: all)"),
        each="mode and run",
        run=_pollpush,
    )


def child_main(argv: Sequence[str]) -> int:
    """The server and load processes a poll-vs-push run starts (internal)."""
    parser = argparse.ArgumentParser(prog="python -m wslab.bench poll-vs-push", description="internal")
    roles = parser.add_subparsers(dest="role", required=True)
    serve = roles.add_parser("_serve")
    serve.add_argument("--seed", type=int, default=7)
    load = roles.add_parser("_load")
    load.add_argument("url")
    load.add_argument("--tabs", type=int, default=500)
    load.add_argument("--interval", type=float, default=2.0)
    load.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.role == "_serve":
        return asyncio.run(_serve_main(args.seed))
    return asyncio.run(_load_main(args))
