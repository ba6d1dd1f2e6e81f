"""``python -m wslab``: the lessons' servers and clients from a terminal.

Examples::

    python -m wslab serve echo --host 127.0.0.1 --port 9001
    python -m wslab send ws://127.0.0.1:9001 hello "another message"
    python -m wslab serve chat --port 9002 --overflow drop
    python -m wslab client ws://127.0.0.1:9002 --name alice
    python -m wslab serve web --port 8000 --public     (then type /help: kick, mute, clear)
    python -m wslab serve dashboard --port 8001 --rate 0.5
    python -m wslab services
    python -m wslab serve chat --port 9002 --broker redis://127.0.0.1:6379
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI, WebSocketException

from ..bench.command import add_bench_parser
from ..brokers.base import Broker, BrokerUnavailable, broker_address
from ..brokers.by_url import broker_from_url
from ..clients.chat import exchange
from ..core.actions import OverflowPolicy
from ..core.audience import AUDIENCE
from ..core.backoff import backoff_delays
from ..core.close_codes import CloseCode
from ..core.connection_log import LogEvent, LogKind, close_label
from ..runtime.event_log import EventLog
from ..runtime.handles import ServerHandle, WebSocketServerHandle, serve, serve_until_signalled
from ..runtime.logs import LogFormat, configure_logging, event_fields
from ..runtime.signals import cancel_on_signal
from ..runtime.tls import explain_tls_error
from ..servers.chat import ChatServer
from ..servers.echo import echo
from .instructor import audience_lines, start_moderation
from .serve_options import add_server_parsers
from .terminal import run_client

log = logging.getLogger("wslab.cli")


def _log_listener(verbose: bool) -> Callable[[LogEvent], None]:
    lifecycle = (LogKind.CONNECT, LogKind.DISCONNECT, LogKind.NOTE)

    def listener(event: LogEvent) -> None:
        # Messages are logged only with -v: without it, a message costs no line and no fields.
        if event.direction in lifecycle:
            log.info("%s %s", event.peer, event.describe(), extra={"fields": event_fields(event)})
        elif verbose:
            log.debug("%s %s", event.peer, event.describe(), extra={"fields": event_fields(event)})

    return listener


def _compression(args: argparse.Namespace) -> str | None:
    """``--compression``: websockets' name for permessage-deflate, or None (off)."""
    return None if args.compression == "none" else args.compression


async def _start_echo(args: argparse.Namespace, events: EventLog) -> ServerHandle:
    return await serve(
        echo,
        name="echo",
        host=args.host,
        port=args.port,
        log=events,
        max_size=args.max_size,
        compression=_compression(args),
    )


def _chat_broker(args: argparse.Namespace) -> Broker:
    """The broker behind ``serve chat``: ``--broker URL`` (Redis, NATS or Kafka), else in-process.

    In-process, history lasts as long as the process; with a real broker, several
    ``serve chat`` processes share one room (lesson 06).
    """
    return broker_from_url(args.broker, history=args.history)


async def _services(args: argparse.Namespace) -> int:
    from ..services.command import run_services
    from ..services.process import ServiceUnavailable

    only = args.only
    try:
        return await run_services(
            redis=only in (None, "redis"),
            nats=only in (None, "nats"),
            kafka=only in (None, "kafka"),
            redis_port=args.redis_port,
            nats_port=args.nats_port,
            kafka_port=args.kafka_port,
            announce=lambda line: print(line, flush=True),
        )
    except ServiceUnavailable as exc:
        print(f"wslab: cannot start the broker servers: {exc}", file=sys.stderr)
        return 1


async def _wait_for_broker(broker: Broker, url: str) -> None:
    """Until the broker answers: a server started before its broker (or during an outage)
    waits, saying so once per attempt, instead of exiting. A signal stops the wait."""
    where = f"{broker.kind} at {broker_address(url)}"

    def waiting(_problem: BrokerUnavailable, delay: float) -> None:
        log.warning("%s unavailable; retrying in %.1f s", where, delay)

    # One server, not a crowd of clients: no jitter needed, so the announced delay is the real one.
    await broker.wait_ready(
        on_retry=waiting, delays=lambda: backoff_delays(first=0.2, cap=5.0, jitter=lambda: 1.0)
    )


async def _start_chat(args: argparse.Namespace, events: EventLog) -> ServerHandle:
    broker = _chat_broker(args)
    chat = ChatServer(
        broker=broker,
        room_name=args.room,
        server_id=args.id,
        overflow=args.overflow,
        max_backlog=args.max_backlog,
    )
    args.chat = chat  # moderated from this terminal (see _serve)
    try:
        if args.broker:
            await _wait_for_broker(broker, args.broker)
        handle = await chat.serve(
            name="chat",
            host=args.host,
            port=args.port,
            log=events,
            max_size=args.max_size,
            compression=_compression(args),
        )
    except BaseException:
        await broker.close()
        raise
    handle.on_stop(broker.close)
    log.info(
        "chat: %s broker keeping %d events; above %d bytes of backlog a client is %s",
        broker.kind,
        args.history,
        args.max_backlog,
        "disconnected (4001)" if chat.room.overflow is OverflowPolicy.DISCONNECT else "skipped (drop)",
    )
    return handle


async def _start_web(args: argparse.Namespace, events: EventLog) -> ServerHandle:
    """Lesson 04's app with audience mode's limits (:data:`~wslab.core.audience.AUDIENCE`),
    as the command line's options adjust them; ``--public`` adds a random join code."""
    from ..core.join_code import new_join_code
    from ..servers.web.audience import serve_audience

    if args.host is None:  # every interface for an audience; this machine only otherwise
        args.host = "0.0.0.0" if args.public else "127.0.0.1"
    if args.public and args.join_code is None:
        args.join_code = new_join_code(AUDIENCE.code_digits)
    limits = replace(
        AUDIENCE, max_users=args.max_users, rate=(args.rate, args.burst), max_message=args.max_size
    )
    handle = await serve_audience(
        limits,
        public=args.public,
        join_code=args.join_code or None,
        host=args.host,
        port=args.port,
        name="web",
        log=events,
        tls=tuple(args.tls) if args.tls else None,
        allowed_origins=args.allow_origin,
        trusted_proxies=args.trust_proxy,
    )
    args.chat = handle.chat  # moderated from this terminal (see _serve)
    log.info(
        "web: at most %d people, %g messages/s each (bursts of %g), %d bytes per message, "
        "heartbeat every %g s%s",
        limits.max_users,
        args.rate,
        args.burst,
        args.max_size,
        limits.heartbeat.interval,
        f", join code {args.join_code}" if args.join_code else "",
    )
    return handle


async def _start_dashboard(args: argparse.Namespace, events: EventLog) -> ServerHandle:
    from ..servers.dashboard import start_dashboard_from_args

    return await start_dashboard_from_args(args, events)


#: ``serve <name>``: how to start each server, with the command line's options and log.
SERVERS = {"echo": _start_echo, "chat": _start_chat, "web": _start_web, "dashboard": _start_dashboard}


#: Allocations between two young-generation collections in a server process (CPython: 700).
GC_YOUNG_THRESHOLD = 50_000


async def _serve(args: argparse.Namespace) -> int:
    # A server keeps each connection's objects for as long as it is open. At CPython's
    # default pace the collector walks them all again and again and finds next to nothing:
    # 10,000 clients joining at once cost 12 full collections, a third of the server's CPU.
    # Collecting less often still frees cyclic garbage, in bigger batches.
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    events = EventLog(maxlen=100)
    events.subscribe(_log_listener(args.verbose))
    # Stoppable while it starts: serve chat may wait for its broker.
    handle, sig = await cancel_on_signal(SERVERS[args.server](args, events))
    if handle is None:
        assert sig is not None
        log.info("stopped by %s before serving", sig.name)
        return 0

    def announce() -> None:
        print(f"{args.server} server listening on {handle.url} (Ctrl-C to stop)", flush=True)
        if getattr(args, "public", False):
            print("\n".join(audience_lines(args, handle)), flush=True)
        start_moderation(getattr(args, "chat", None))  # the instructor's commands, typed here

    if isinstance(handle, WebSocketServerHandle):
        handle.drain_timeout = args.drain_timeout
    code = CloseCode(args.stop_code)
    reason = "server restarting" if code == CloseCode.SERVICE_RESTART else "server shutting down"
    sig = await serve_until_signalled(handle, on_ready=announce, code=code, reason=reason)
    fields = {"event": "stopped", "signal": sig.name, "code": int(code)}
    log.info("stopped by %s; clients were sent %s", sig.name, close_label(code), extra={"fields": fields})
    return 0


async def _client(args: argparse.Namespace) -> int:
    return await run_client(args.url, args.name)


async def _send(args: argparse.Namespace) -> int:
    replies = await exchange(args.url, args.messages, timeout=args.timeout)
    for reply in replies:
        print(reply if isinstance(reply, str) else f"<binary {len(reply)} bytes>", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wslab", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run one of the lessons' servers until Ctrl-C / SIGTERM")
    add_server_parsers(serve.add_subparsers(dest="server", required=True))
    serve.set_defaults(run=_serve)

    send = commands.add_parser("send", help="send messages to a server and print one reply to each")
    send.add_argument("url", help="for example ws://127.0.0.1:9001")
    send.add_argument("messages", nargs="+", help="text messages, sent in order")
    send.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each reply")
    send.set_defaults(run=_send)

    client = commands.add_parser("client", help="chat in a chat server's room from this terminal")
    client.add_argument("url", help="for example ws://127.0.0.1:9001")
    client.add_argument("--name", required=True, help="the username to ask for")
    client.set_defaults(run=_client)

    services = commands.add_parser(
        "services",
        help="lesson 06: start real Redis (or Valkey), NATS and Kafka (tansu) servers until Ctrl-C / SIGTERM",
    )
    services.add_argument(
        "--only", choices=["redis", "nats", "kafka"], default=None, help="start just one of them"
    )
    services.add_argument("--redis-port", type=int, default=0, help="default: a free port")
    services.add_argument("--nats-port", type=int, default=0, help="default: a free port")
    services.add_argument("--kafka-port", type=int, default=0, help="default: a free port")
    services.set_defaults(run=_services)
    add_bench_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_format = getattr(args, "log_format", LogFormat.TEXT)
    configure_logging(log_format, verbose=getattr(args, "verbose", False), stream=sys.stderr)
    try:
        return asyncio.run(args.run(args))
    except KeyboardInterrupt:
        return 130
    except (OSError, TimeoutError, InvalidURI, InvalidHandshake, WebSocketException) as exc:
        print(f"wslab: {_explain(exc)}", file=sys.stderr)
        return 1


def _explain(exc: BaseException) -> str:
    """A one-line reason a learner can act on, instead of a traceback."""
    tls = explain_tls_error(exc)
    if tls is not None:
        return tls
    if isinstance(exc, BrokerUnavailable):
        return f"the broker is unavailable: {exc}"
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused: is the server running, and on that port?"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the server"
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = response.body.decode(errors="replace").strip() if response.body else ""
        detail = f" ({body})" if body and len(body) <= 200 and "\n" not in body else ""
        return (
            "server rejected the WebSocket handshake: "
            f"HTTP {response.status_code} {response.reason_phrase}{detail}"
        )
    if isinstance(exc, OSError) and exc.errno == 98:
        return f"address already in use: another program holds that port ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}"
