"""``python -m wslab``: the lessons' servers and clients from a terminal.

Examples::

    python -m wslab serve echo --host 127.0.0.1 --port 9001
    python -m wslab send ws://127.0.0.1:9001 hello "another message"
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException

from . import runtime
from .clients import exchange
from .events import Direction, EventLog, LogEvent
from .servers import echo

log = logging.getLogger("wslab.cli")

SERVERS = {"echo": echo}


def _log_listener(verbose: bool):  # type: ignore[no-untyped-def]
    lifecycle = (Direction.CONNECT, Direction.DISCONNECT, Direction.NOTE)

    def listener(event: LogEvent) -> None:
        if event.direction in lifecycle:
            log.info("%s %s", event.peer, event.describe())
        elif verbose:
            log.debug("%s %s", event.peer, event.describe())

    return listener


async def _serve(args: argparse.Namespace) -> int:
    events = EventLog(maxlen=100)
    events.subscribe(_log_listener(args.verbose))
    handle = await runtime.serve(
        SERVERS[args.server],
        name=args.server,
        host=args.host,
        port=args.port,
        log=events,
        max_size=args.max_size,
    )
    sig = await runtime.serve_until_signalled(
        handle,
        on_ready=lambda: print(
            f"{args.server} server listening on {handle.url} (Ctrl-C to stop)", flush=True
        ),
    )
    log.info("stopped by %s; clients were sent 1001 (going away)", sig.name)
    return 0


async def _send(args: argparse.Namespace) -> int:
    replies = await exchange(args.url, args.messages, timeout=args.timeout)
    for reply in replies:
        print(reply if isinstance(reply, str) else f"<binary {len(reply)} bytes>", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wslab", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run one of the lessons' servers until Ctrl-C / SIGTERM")
    serve.add_argument("server", choices=sorted(SERVERS))
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    serve.add_argument("--port", type=int, default=9001, help="0 picks a free port (default: 9001)")
    serve.add_argument("--max-size", type=int, default=2**20, help="largest message accepted, in bytes")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every message, not only connections")
    serve.set_defaults(run=_serve)

    send = commands.add_parser("send", help="send messages to a server and print one reply to each")
    send.add_argument("url", help="for example ws://127.0.0.1:9001")
    send.add_argument("messages", nargs="+", help="text messages, sent in order")
    send.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each reply")
    send.set_defaults(run=_send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(args.run(args))
    except KeyboardInterrupt:
        return 130
    except (OSError, TimeoutError, InvalidURI, InvalidHandshake, WebSocketException) as exc:
        print(f"wslab: {_explain(exc)}", file=sys.stderr)
        return 1


def _explain(exc: BaseException) -> str:
    """A one-line reason a learner can act on, instead of a traceback."""
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused: is the server running, and on that port?"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the server"
    if isinstance(exc, OSError) and exc.errno == 98:
        return f"address already in use: another program holds that port ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}"
