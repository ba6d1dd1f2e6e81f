"""``python -m wslab bench scale``: publish-to-delivery latency when the room spans servers.

One run measures three configurations, one after the other, under the same paced load:

* ``memory``: ONE chat server process (``python -m wslab serve chat``) with its
  in-process broker; the publisher and the receivers are all connected to it;
* ``redis``: TWO chat server processes sharing one Redis (Valkey) server; the publisher
  is connected to server A, the receivers to server B, so every delivery measured went
  A -> Redis -> B;
* ``nats``: the same over NATS JetStream.

The broker servers come from :func:`wslab.services.start_services` (started here as
child processes, or ``REDIS_URL`` / ``NATS_URL``); the chat servers are
:class:`wslab.services.ChatProcess` children, started fresh for each configuration.

A load process (``python -m wslab.bench_scale _load``) opens ``--clients`` receiving
connections and one publisher, all speaking the chat's json dialect, with the pieces of
``bench fanout``'s load client (:mod:`wslab.bench`). Once every receiver has read a few
first messages (the cross-server path is up), the publisher sends on one fixed schedule:
``--warmup`` seconds of untimed messages, then ``rate * seconds`` measured chat messages
of ``--size`` characters. Message ``i`` is due at ``start + i / rate`` on the event
loop's clock, so a late wake-up is caught up on the next send instead of drifting. Each
message's text starts with its index and its send time (:func:`time.time`, same
machine), so each receiver computes publish-to-delivery latency as it reads it.
Reported per configuration:

* ``deliveries_per_s``: distinct messages received, summed over the receivers, divided by
  the time from the first send to the last delivery (``clients * rate`` when it keeps up);
* ``p50_ms`` / ``p99_ms`` / ``max_ms``: publish-to-delivery latency over every delivery;
* ``lost``: ``clients * messages`` minus distinct deliveries, counted once every delivery
  arrived or the drain gave up (``--timeout`` after the last send, or ``--stall`` seconds
  without a delivery);
* ``send_lag_p99_ms``: how late the publisher sent, against its schedule: latency is
  measured from the actual send, so a publisher held up by its own busy process would
  otherwise hide the wait (coordinated omission);
* CPU seconds over the measurement of the chat server(s), the broker server, the load
  process, and of everything else on the machine (``other_cpu_s``: a loaded machine shows).

The orchestrating process and the load process talk over pipes in JSON lines; ``_load``
is an internal command, not an interface. Exit status: 0, 2 if anything was lost, 1 if a
run failed, 3 if a broker server cannot be had here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from .bench import (
    DISTURBED,
    SYNC,
    _busy_cpu_s,
    _Child,
    _command,
    _connect_and_warm_up,
    _disturbed,
    _emit,
    _Load,
    _Progress,
    _report_progress,
    _text,
    cell,
    client_options,
    comma_list,
    drop,
    format_table,
    message_options,
    percentile_ms,
    positive_int,
    raise_open_files_limit,
)

__all__ = ["BROKERS", "add_scale_parser"]

#: The configurations, in the order a run measures them.
BROKERS = ("memory", "redis", "nats")
#: Messages every receiver must have read before the warm-up starts (joins out of the way).
SYNC_MESSAGES = 5
#: Exit status when a broker server is needed but none can be found or started.
UNAVAILABLE = 3


# The load client (``python -m wslab.bench_scale _load ...``)


async def _load_main(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    n = args.clients
    m = max(1, round(args.rate * args.seconds))
    load = _Load(clients=n, messages=m, expected=n * m, warmup=SYNC_MESSAGES)
    options = client_options(args.compression)
    tasks: set[asyncio.Task[None]] = set()
    # The publisher is on server A (for memory, the receivers' server too); as in bench fanout,
    # the warm-up also sends traffic along the broker path between the servers.
    connected = await _connect_and_warm_up(
        args, load, options, tasks, receive_url=args.receive_url, publish_url=args.publish_url
    )
    if connected is None:
        return 1
    receivers, publisher = connected
    gc.collect()
    gc.freeze()  # nothing allocated so far gets scanned again during the measurement
    _emit(phase="ready")
    await _command()  # "go"

    # One schedule: --warmup seconds of untimed messages at --rate (every process on the
    # path reaches its steady state: caches, scheduler, CPU clocks), then, without a gap,
    # the measured ones. A short measurement would otherwise count a start-up transient
    # of tens of ms in its p99 (1% of 5 s is 50 ms of messages).
    loop = asyncio.get_running_loop()
    interval = 1 / args.rate
    warm = round(args.rate * args.warmup)
    lags: list[float] = []
    dumps, send = json.dumps, publisher.send
    start = loop.time()
    for i in range(-warm, m):
        due = start + (i + warm) * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if i < 0:
            await send(dumps({"type": "chat", "text": _text(SYNC, args.size, args.text), "ref": f"w{i}"}))
            continue
        if i == 0:
            _emit(phase="measure")  # the orchestrator reads the CPU clocks now
            progress = asyncio.create_task(_report_progress(load))
            cpu0 = time.process_time()
            first_send, measure_start = time.time(), loop.time()
        lags.append(loop.time() - due)
        await send(dumps({"type": "chat", "text": _text(i, args.size, args.text), "ref": str(i)}))
    sending = loop.time() - measure_start
    # --timeout after the last send, or --stall s without a delivery
    await load.settle(timeout=args.timeout, stall=args.stall)
    progress.cancel()
    load_cpu = time.process_time() - cpu0
    _emit(phase="deliver", done=load.delivered, total=load.expected)
    lags.sort()
    _emit(
        result={
            "messages": m,
            **load.result(first_send),
            "sent_per_s": round(m / sending, 1) if sending > 0 else None,
            "send_lag_p99_ms": percentile_ms(lags, 0.99),
            "send_lag_max_ms": percentile_ms(lags, 1.0),
            "load_cpu_s": round(load_cpu, 3),
        }
    )
    drop([*receivers, publisher], tasks)
    return 0


# The orchestrating process (``python -m wslab bench scale``)


def _cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Clocks:
    """CPU clocks of the processes taking part, read at the start and the end of a measurement."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start: dict[str, float | None] = {}
        self.busy0: float | None = None
        self.own0 = 0.0

    def mark(self) -> None:
        self.start = {name: _cpu_s(pid) for name, pid in self.pids.items()}
        self.busy0, self.own0 = _busy_cpu_s(), time.process_time()

    def read(self, load_cpu: float) -> dict[str, float | None]:
        busy1, own1 = _busy_cpu_s(), time.process_time()
        used: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            before, after = self.start.get(name), _cpu_s(pid)
            used[name] = round(after - before, 2) if before is not None and after is not None else None
        # What other programs ran meanwhile: on a shared machine, the figures mean little if much.
        other = None
        if self.busy0 is not None and busy1 is not None:
            ours = (own1 - self.own0) + load_cpu + sum(v for v in used.values() if v is not None)
            other = round(max(0.0, busy1 - self.busy0 - ours), 2)
        return {**{f"{name}_cpu_s": value for name, value in used.items()}, "other_cpu_s": other}


async def _spawn_load(*args: str) -> asyncio.subprocess.Process:
    from .services import _die_with_parent

    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wslab.bench_scale",
        "_load",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # If this process dies without stopping it (SIGKILL), the load process goes too (Linux).
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )


async def _stop_child(child: _Child, finished: bool) -> None:
    """Let a finished load process exit; end an interrupted one (it may be mid-measurement)."""
    if not finished and child.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.process.terminate()
    await child.close(timeout=10 if finished else 5)


async def _run_one(
    kind: str,
    broker_url: str,
    broker_pid: int | None,
    args: argparse.Namespace,
    run: int,
    progress: _Progress,
) -> dict[str, Any]:
    from .services import ChatProcess

    # memory: one server, its own broker. redis / nats: publish on A, receive on B.
    ids = ["memory"] if kind == "memory" else [f"{kind}-a", f"{kind}-b"]
    chats = [ChatProcess(broker_url, server_id=server_id) for server_id in ids]
    load_child: _Child | None = None
    finished = False
    try:
        for chat in chats:
            progress.update(f"{kind}: starting {chat.server_id}", 0, 1, force=True)
            await chat.start()
        publish_to, deliver_from = chats[0], chats[-1]
        wait = args.timeout + args.stall + 60
        options = {
            "--publish-url": publish_to.url,
            "--receive-url": deliver_from.url,
            "--clients": args.clients,
            "--rate": args.rate,
            "--seconds": args.seconds,
            "--size": args.size,
            "--text": args.text,
            "--warmup": args.warmup,
            "--compression": args.compression,
            "--timeout": args.timeout,
            "--stall": args.stall,
        }
        load_child = _Child("load", await _spawn_load(*(str(x) for item in options.items() for x in item)))
        pids = {"server_a": publish_to.pid, "server_b": deliver_from.pid if len(chats) > 1 else None}
        pids["broker"] = broker_pid
        clocks = _Clocks(pids)
        while True:
            record = await load_child.read(wait)
            if record.get("phase") == "connect":
                progress.update(f"{kind}: connecting", record["done"], record["total"])
            elif record.get("phase") == "ready":
                load_child.write("go")
                progress.update(f"{kind}: warming up", 0, 1, force=True)
            elif record.get("phase") == "measure":
                clocks.mark()
            elif record.get("phase") == "deliver":
                progress.update(f"{kind}: delivering", record["done"], record["total"])
            elif "result" in record:
                result = record["result"]
                cpu = clocks.read(result["load_cpu_s"])
                break
        finished = True
        progress.update(f"{kind}: delivering", result["deliveries"], result["expected"], force=True)
    finally:
        if load_child is not None:
            await _stop_child(load_child, finished)
        for chat in reversed(chats):
            await chat.stop()
    return {
        "server": kind,
        "run": run,
        "servers": len(chats),
        "rate": args.rate,
        "seconds": args.seconds,
        "clients": args.clients,
        "size": args.size,
        "text": args.text,
        "compression": args.compression,
        "warmup_s": args.warmup,
        **result,
        **cpu,
    }


def _table(records: list[dict[str, Any]]) -> str:
    columns = [
        ("server", "server", "{}"),
        ("run", "run", "{}"),
        ("path", "servers", "{}"),
        ("deliveries/s", "deliveries_per_s", "{:,.0f}"),
        ("p50 ms", "p50_ms", "{:.1f}"),
        ("p99 ms", "p99_ms", "{:.1f}"),
        ("max ms", "max_ms", "{:.1f}"),
        ("lost", "lost", "{:,}"),
        ("send lag p99 ms", "send_lag_p99_ms", "{:.1f}"),
        ("A CPU s", "server_a_cpu_s", "{:.2f}"),
        ("B CPU s", "server_b_cpu_s", "{:.2f}"),
        ("broker CPU s", "broker_cpu_s", "{:.2f}"),
        ("load CPU s", "load_cpu_s", "{:.2f}"),
        ("other CPU s", "other_cpu_s", "{:.2f}"),
    ]
    rows = []
    for record in records:
        row = [cell(record.get(key), fmt) for _, key, fmt in columns]
        row[2] = "A" if record["servers"] == 1 else "A->B"
        if _disturbed(record):
            row[-1] += " !"
        rows.append(row)
    return format_table([title for title, _, _ in columns], rows, left=3)


def _summary(records: list[dict[str, Any]], args: argparse.Namespace, notes: list[str]) -> str:
    head = (
        f"scale-out: 1 publisher -> {args.clients:,} receivers, {args.rate:g} msg/s for {args.seconds:g} s, "
        f"{args.size} B of {args.text} (compression {args.compression})"
    )
    lines = [head, *(f"  {note}" for note in notes), "", _table(records)]
    disturbed = [r for r in records if _disturbed(r)]
    if disturbed:
        lines += [
            "",
            f"! other programs used more than {DISTURBED:.0%} of a CPU during {len(disturbed)} run(s): "
            "their figures say more about the machine than about the servers.",
        ]
    return "\n".join(lines)


async def _scale(args: argparse.Namespace) -> int:
    from .services import ServiceUnavailable, start_services

    raise_open_files_limit()
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    progress = _Progress()
    # SIGTERM ends the run as Ctrl-C does: through the finally clauses, stopping every child.
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if main is not None:
            main.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, terminate)
    services = None
    try:
        try:
            services = await start_services(
                redis="redis" in brokers, nats="nats" in brokers, required=True, register=False
            )
        except ServiceUnavailable as exc:
            print(f"wslab bench scale: cannot start the broker servers: {exc}", file=sys.stderr)
            return UNAVAILABLE
        urls = {"memory": "", "redis": services.redis_url or "", "nats": services.nats_url or ""}
        pids = {"memory": None, "redis": services.redis, "nats": services.nats}
        records = []
        for run in range(1, args.runs + 1):
            for kind in brokers:
                server = pids[kind]
                try:
                    record = await _run_one(
                        kind, urls[kind], server.pid if server else None, args, run, progress
                    )
                except (RuntimeError, TimeoutError, ServiceUnavailable) as exc:
                    progress.finish(f"wslab bench scale: {kind} (run {run}) failed: {exc}")
                    return 1
                records.append(record)
                progress.finish(
                    f"{kind} (run {run}): {record['deliveries_per_s']:,.0f} deliveries/s, "
                    f"p50 {record['p50_ms']} ms, p99 {record['p99_ms']} ms, lost {record['lost']:,}"
                )
                if args.json:
                    print(json.dumps(record), flush=True)
        if not args.json:
            print(_summary(records, args, services.notes), flush=True)
        return 0 if all(r["lost"] == 0 for r in records) else 2
    except asyncio.CancelledError:
        if not terminated:
            raise  # Ctrl-C: asyncio.run turns it into KeyboardInterrupt, the CLI exits with 130
        progress.finish("wslab bench scale: stopped by SIGTERM")
        return 128 + signal.SIGTERM
    finally:
        if services is not None:
            await services.stop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=_positive_float, default=1000.0, help="messages/s published (default: 1000)"
    )
    parser.add_argument(
        "--seconds", type=_positive_float, default=5.0, help="seconds of publishing (default: 5)"
    )
    parser.add_argument("--clients", type=positive_int, default=20, help="receiving clients (default: 20)")
    message_options(parser)
    parser.add_argument(
        "--warmup",
        type=_non_negative_float,
        default=1.0,
        help="seconds of untimed publishing at --rate before the measured --seconds (default: 1)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        help="seconds after the last send to wait for every delivery (default: 30)",
    )
    parser.add_argument(
        "--stall",
        type=_positive_float,
        default=10.0,
        help="give up after this many s without a delivery (default: 10)",
    )


def add_scale_parser(kinds: Any) -> argparse.ArgumentParser:
    """Add ``scale`` to the ``python -m wslab bench`` benchmarks."""
    scale = kinds.add_parser(
        "scale",
        help="cross-server latency: one chat server in-process, then two over Redis, then over NATS",
        description=__doc__.split("\n")[0],
    )
    _load_options(scale)
    scale.add_argument(
        "--brokers",
        type=comma_list(BROKERS),
        default=",".join(BROKERS),
        help="comma-separated: memory,redis,nats (default: all three, in that order)",
    )
    scale.add_argument("--runs", type=positive_int, default=1, help="runs of each configuration (default: 1)")
    scale.add_argument(
        "--json", action="store_true", help="one JSON object per line per configuration and run"
    )
    scale.set_defaults(run=_scale)
    return scale


def _child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m wslab.bench_scale", description="internal: load process")
    roles = parser.add_subparsers(dest="role", required=True)
    load = roles.add_parser("_load")
    load.add_argument("--publish-url", required=True)
    load.add_argument("--receive-url", required=True)
    _load_options(load)
    args = parser.parse_args(argv)
    return asyncio.run(_load_main(args))


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
