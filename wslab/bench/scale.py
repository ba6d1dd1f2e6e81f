"""``python -m wslab bench scale``: publish-to-delivery latency when the room spans servers.

One run measures four configurations, one after the other, under the same paced load:

* ``memory``: ONE chat server process (``python -m wslab serve chat``) with its
  in-process broker; the publisher and the receivers are all connected to it;
* ``redis``: TWO chat server processes sharing one Redis (Valkey) server; the publisher
  is connected to server A, the receivers to server B, so every delivery measured went
  A -> Redis -> B;
* ``nats``: the same over NATS JetStream;
* ``kafka``: the same over a Kafka-protocol broker (tansu; each server's subscription fetches
  with ``fetch_max_wait_ms`` = 20, see :data:`wslab.brokers.kafka_topics.FETCH_MAX_WAIT_MS`).

The broker servers come from :func:`wslab.services.start_services` (started here as
child processes, or ``REDIS_URL`` / ``NATS_URL`` / ``KAFKA_URL``); the chat servers are
:class:`wslab.services.ChatProcess` children, started fresh for each configuration.

A load process (:mod:`wslab.bench.load`) opens ``--clients`` receiving connections and
one publisher, all speaking the chat's json dialect. Once every receiver has read a few
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

Exit status: 0, 2 if anything was lost, 1 if a run failed, 3 if a broker server cannot be had
here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..cli.argtypes import non_negative_float, positive_float, positive_int
from ..runtime.signals import cancel_on_signal
from ..services.broker_servers import start_services
from ..services.chat_processes import ChatProcess
from ..services.process import ServiceUnavailable
from . import harness
from .harness import Child, Progress, emit
from .load import SYNC, Load, client_options, connect_and_warm_up, drop, percentile_ms, report_progress, text

__all__ = ["BROKERS", "UNAVAILABLE", "add_scale_parser", "child_main"]

#: The configurations, in the order a run measures them.
BROKERS = ("memory", "redis", "nats", "kafka")
#: Messages every receiver must have read before the warm-up starts (joins out of the way).
SYNC_MESSAGES = 5
#: Exit status when a broker server is needed but none can be found or started.
UNAVAILABLE = 3


# The load client (``python -m wslab.bench scale _load ...``)


async def _publish_on_schedule(
    args: argparse.Namespace, publisher: Any, load: Load, m: int
) -> dict[str, Any]:
    """Send on one schedule: ``--warmup`` seconds of untimed messages at ``--rate``, then, without
    a gap, the ``m`` measured ones; how it went against the schedule.

    The warm-up lets every process on the path reach its steady state (caches, scheduler,
    CPU clocks): a short measurement would otherwise count a start-up transient of tens of
    ms in its p99 (1% of 5 s is 50 ms of messages).
    """
    loop = asyncio.get_running_loop()
    interval = 1 / args.rate
    warm = round(args.rate * args.warmup)
    lags: list[float] = []
    chat, send = load.speaker.chat, publisher.send
    start = loop.time()
    for i in range(-warm, m):
        due = start + (i + warm) * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if i < 0:
            await send(chat(text(SYNC, args.size, args.text), f"w{i}"))  # a ref per message: see load
            continue
        if i == 0:
            emit(phase="measure")  # the orchestrator reads the CPU clocks now
            first_send, measure_start = time.time(), loop.time()
        lags.append(loop.time() - due)
        await send(chat(text(i, args.size, args.text), str(i)))
    sending = loop.time() - measure_start
    lags.sort()
    return {
        "first_send": first_send,
        "sent_per_s": round(m / sending, 1) if sending > 0 else None,
        "send_lag_p99_ms": percentile_ms(lags, 0.99),
        "send_lag_max_ms": percentile_ms(lags, 1.0),
    }


async def _load_main(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    n = args.clients
    m = max(1, round(args.rate * args.seconds))
    load = Load(clients=n, messages=m, expected=n * m, warmup=SYNC_MESSAGES)
    options = client_options(args.compression)
    tasks: set[asyncio.Task[None]] = set()
    # The publisher is on server A (for memory, the receivers' server too); as in bench fanout,
    # the warm-up also sends traffic along the broker path between the servers.
    connected = await connect_and_warm_up(
        args, load, options, tasks, receive_url=args.receive_url, publish_url=args.publish_url
    )
    if connected is None:
        return 1
    receivers, publisher = connected
    gc.collect()
    gc.freeze()  # nothing allocated so far gets scanned again during the measurement
    emit(phase="ready")
    await harness.read_command()  # "go"
    progress = asyncio.create_task(report_progress(load))
    cpu0 = time.process_time()
    sent = await _publish_on_schedule(args, publisher, load, m)
    # --timeout after the last send, or --stall s without a delivery
    await load.settle(timeout=args.timeout, stall=args.stall)
    progress.cancel()
    load_cpu = time.process_time() - cpu0
    emit(phase="deliver", done=load.delivered, total=load.expected)
    first_send = sent.pop("first_send")
    emit(result={"messages": m, **load.result(first_send), **sent, "load_cpu_s": round(load_cpu, 3)})
    drop([*receivers, publisher], tasks)
    return 0


# The orchestrating process (``python -m wslab bench scale``)


def _load_arguments(args: argparse.Namespace, publish_url: str, receive_url: str) -> list[str]:
    options = {"--publish-url": publish_url, "--receive-url": receive_url}
    for name in ("clients", "rate", "seconds", "size", "text", "warmup", "compression", "timeout", "stall"):
        options[f"--{name}"] = getattr(args, name)
    return [str(x) for item in options.items() for x in item]


async def _run_one(
    kind: str, broker_url: str, broker_pid: int | None, args: argparse.Namespace, progress: Progress
) -> dict[str, Any]:
    # memory: one server, its own broker. redis / nats / kafka: publish on A, receive on B.
    ids = ["memory"] if kind == "memory" else [f"{kind}-a", f"{kind}-b"]
    # A room of its own per run: a run never starts from another's history (over Kafka, a topic
    # holding the earlier runs' batches costs tansu more per fetch).
    room = f"scale-{secrets.token_hex(4)}"
    chats = [ChatProcess(broker_url, server_id=server_id, room=room) for server_id in ids]
    load_child: Child | None = None
    finished = False
    try:
        for chat in chats:
            progress.update(f"{kind}: starting {chat.server_id}", 0, 1, force=True)
            await chat.start()
        publish_to, deliver_from = chats[0], chats[-1]
        spawned = await harness.spawn(
            "scale", "_load", *_load_arguments(args, publish_to.url, deliver_from.url)
        )
        load_child = Child("load", spawned)
        pids = {"server_a": publish_to.pid, "server_b": deliver_from.pid if len(chats) > 1 else None}
        clocks = harness.Clocks({**pids, "broker": broker_pid})
        wait = args.timeout + args.stall + 60
        result = await harness.follow(load_child, kind, progress, clocks, wait=wait, mark_on="measure")
        finished = True
    finally:
        if load_child is not None:
            # Let a finished load process exit; end an interrupted one (it may be mid-measurement).
            await load_child.close(timeout=10 if finished else 5, interrupt=not finished)
        for chat in reversed(chats):
            await chat.stop()
    return {"server": kind, "servers": len(chats), **result}


COLUMNS = [
    ("server", "server", "{}"),
    ("run", "run", "{}"),
    ("path", "path", "{}"),
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


def _summary(records: list[dict[str, Any]], args: argparse.Namespace, notes: list[str]) -> str:
    head = (
        f"scale-out: 1 publisher -> {args.clients:,} receivers, {args.rate:g} msg/s for {args.seconds:g} s, "
        f"{args.size} B of {args.text} (compression {args.compression})"
    )
    rows = [{**r, "path": "A" if r["servers"] == 1 else "A->B"} for r in records]
    table = harness.results_table(rows, COLUMNS, left=3)
    return "\n".join([head, *(f"  {note}" for note in notes), "", table, *harness.disturbed_note(records)])


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("rate", "seconds", "clients", "size", "text", "compression")
    return {**{key: getattr(args, key) for key in keys}, "warmup_s": args.warmup}


async def _measure_all(args: argparse.Namespace, brokers: list[str], progress: Progress) -> int:
    try:
        services = await start_services(
            redis="redis" in brokers,
            nats="nats" in brokers,
            kafka="kafka" in brokers,
            required=True,
            register=False,
        )
    except ServiceUnavailable as exc:
        print(f"wslab bench scale: cannot start the broker servers: {exc}", file=sys.stderr)
        return UNAVAILABLE
    try:
        urls = {
            "memory": "",
            "redis": services.redis_url or "",
            "nats": services.nats_url or "",
            "kafka": services.kafka_url or "",
        }
        pids = {"memory": None, "redis": services.redis, "nats": services.nats, "kafka": services.kafka}
        records: list[dict[str, Any]] = []
        for run in range(1, args.runs + 1):
            for kind in brokers:
                server = pids[kind]
                try:
                    measured = await _run_one(
                        kind, urls[kind], server.pid if server else None, args, progress
                    )
                except (RuntimeError, TimeoutError, ServiceUnavailable) as exc:
                    progress.finish(f"wslab bench scale: {kind} (run {run}) failed: {exc}")
                    return 1
                record = {"run": run, **_settings(args), **measured}
                harness.record_result(records, record, f"{kind} (run {run})", progress, as_json=args.json)
        if not args.json:
            print(_summary(records, args, services.notes), flush=True)
        return 0 if all(r["lost"] == 0 for r in records) else 2
    finally:
        await services.stop()


async def _scale(args: argparse.Namespace) -> int:
    harness.raise_open_files_limit()
    progress = Progress()
    # SIGTERM ends the run as Ctrl-C does: through the finally clauses, stopping every child.
    status, sig = await cancel_on_signal(
        _measure_all(args, args.brokers.split(","), progress), (signal.SIGTERM,)
    )
    if sig is None:
        assert status is not None
        return status
    progress.finish("wslab bench scale: stopped by SIGTERM")
    return 128 + sig


# Options


def _load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=positive_float, default=1000.0, help="messages/s published (default: 1000)"
    )
    parser.add_argument(
        "--seconds", type=positive_float, default=5.0, help="seconds of publishing (default: 5)"
    )
    parser.add_argument("--clients", type=positive_int, default=20, help="receiving clients (default: 20)")
    harness.message_options(parser)
    parser.add_argument(
        "--warmup",
        type=non_negative_float,
        default=1.0,
        help="seconds of untimed publishing at --rate before the measured --seconds (default: 1)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        help="seconds after the last send to wait for every delivery (default: 30)",
    )
    parser.add_argument(
        "--stall",
        type=positive_float,
        default=10.0,
        help="give up after this many s without a delivery (default: 10)",
    )


def add_scale_parser(kinds: Any) -> argparse.ArgumentParser:
    """Add ``scale`` to the ``python -m wslab bench`` benchmarks."""
    return harness.add_benchmark(
        kinds,
        "scale",
        doc=__doc__,
        help="cross-server latency: one chat server in-process, then two over Redis, NATS, Kafka",
        options=_load_options,
        picks=(
            "--brokers",
            BROKERS,
            "comma-separated: memory,redis,nats,kafka (default: all four, in that order)",
        ),
        each="configuration and run",
        run=_scale,
    )


def child_main(argv: Sequence[str]) -> int:
    """The load process a scale-out run starts (internal)."""
    parser = argparse.ArgumentParser(prog="python -m wslab.bench scale", description="internal: load process")
    roles = parser.add_subparsers(dest="role", required=True)
    load = roles.add_parser("_load")
    load.add_argument("--publish-url", required=True)
    load.add_argument("--receive-url", required=True)
    _load_options(load)
    return asyncio.run(_load_main(parser.parse_args(argv)))
