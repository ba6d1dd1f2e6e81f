"""The options of ``python -m wslab serve``: one parser per lesson's server.

What every server takes (:func:`_server_options`), what the websockets-based servers add
(``--compression``), and each server's own options. ``main`` only wires them in.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..brokers.by_url import BROKER_SCHEMES
from ..core.actions import OverflowPolicy
from ..core.audience import AUDIENCE
from ..core.close_codes import CloseCode
from ..runtime.logs import LogFormat
from .argtypes import positive_int

__all__ = ["add_server_parsers"]


def add_server_parsers(servers: Any) -> None:
    """``serve echo``, ``serve chat``, ``serve web`` and ``serve dashboard``, under ``servers``."""
    servers.add_parser(
        "echo",
        parents=[_server_options(), _compression_option()],
        help="lesson 01: answers each message with 'Echo: ...'",
    )
    _add_chat_parser(servers)
    _add_web_parser(servers)
    _add_dashboard_parser(servers)


def _room_name(text: str) -> str:
    if not text.strip() or len(text) > 64:
        raise argparse.ArgumentTypeError(f"a room name has 1 to 64 characters, not {text!r}")
    return text


def _broker_url(text: str) -> str:
    scheme = text.split("://", 1)[0].lower() if "://" in text else text
    if scheme not in BROKER_SCHEMES:
        raise argparse.ArgumentTypeError(f"expected redis://, nats:// or kafka://host:port, not {text!r}")
    return text


def _server_options(*, host: str | None = "127.0.0.1", max_size: int = 2**20) -> argparse.ArgumentParser:
    """--host, --port, --max-size and -v, which every server takes."""
    # A fresh parent per server: argparse shares a parent's actions between its children,
    # so one server's set_defaults() would change every other server's defaults too.
    options = argparse.ArgumentParser(add_help=False)
    where = "this machine only" if host else "this machine only; every interface with --public"
    options.add_argument("--host", default=host, help=f"interface to bind (default: {where})")
    options.add_argument("--port", type=int, default=9001, help="0 picks a free port (default: 9001)")
    options.add_argument(
        "--max-size",
        type=int,
        default=max_size,
        help=f"largest message accepted, in bytes (default: {max_size})",
    )
    options.add_argument(
        "-v", "--verbose", action="store_true", help="log every message, not only connections"
    )
    options.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=LogFormat.TEXT.value,
        help="text for people; json (one object per line) or kv (key=value) for log collectors",
    )
    options.add_argument(
        "--stop-code",
        type=int,
        choices=[int(CloseCode.GOING_AWAY), int(CloseCode.SERVICE_RESTART)],
        default=int(CloseCode.GOING_AWAY),
        help="close code sent to every client on Ctrl-C / SIGTERM: 1001 going away, "
        "1012 service restart (default: %(default)s)",
    )
    options.add_argument(
        "--drain-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on stop, drop clients that have not closed after this long (default: %(default)s)",
    )
    return options


def _compression_option() -> argparse.ArgumentParser:
    """--compression, for the servers built on websockets (echo, chat)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="permessage-deflate, if the client offers it; none saves ~50 KiB of memory per "
        "connection and the CPU to compress (lesson 08; default: %(default)s)",
    )
    return options


def _add_chat_parser(servers: Any) -> None:
    """``serve chat``: lessons 02-06's chat room, in-process or over a broker."""
    chat = servers.add_parser(
        "chat",
        parents=[_server_options(), _compression_option()],
        help="lessons 02-06: one chat room, WebSocket at /",
    )
    chat.add_argument(
        "--max-backlog",
        type=positive_int,
        default=1 << 20,
        metavar="BYTES",
        help="bytes allowed to wait unsent for one client (default: 1 MiB)",
    )
    chat.add_argument(
        "--overflow",
        choices=sorted(policy.value for policy in OverflowPolicy),
        default=OverflowPolicy.DISCONNECT.value,
        help="past the backlog: close with 4001 (the client resumes) or skip messages (default: %(default)s)",
    )
    chat.add_argument(
        "--history",
        type=positive_int,
        default=1000,
        metavar="N",
        help="events kept to resume from (default: 1000)",
    )
    chat.add_argument(
        "--id",
        default="chat",
        help="this server's name in events ('via'), to tell servers apart (default: chat)",
    )
    chat.add_argument(
        "--room",
        type=_room_name,
        default="lobby",
        help="the room this server's clients talk in; servers over one broker share a room by its "
        "name (default: %(default)s)",
    )
    chat.add_argument(
        "--broker",
        type=_broker_url,
        default=None,
        metavar="URL",
        help="redis://, nats:// or kafka://host:port to share the room with other servers "
        "(default: in-process; 'python -m wslab services' starts all three)",
    )


def _add_web_parser(servers: Any) -> None:
    """``serve web``: lesson 04's page and WebSocket on one port, and the live-audience mode."""
    web = servers.add_parser(
        "web",
        parents=[_server_options(host=None, max_size=AUDIENCE.max_message)],
        help="lesson 04: HTTP + WebSocket on one port, the browser chat page at /",
    )
    web.add_argument(
        "--public",
        action="store_true",
        help="live-audience mode: bind every interface, print a /reach check, join URLs and a QR code, "
        "require a join code",
    )
    web.add_argument(
        "--join-code", default=None, help="code people must enter (default with --public: six random digits)"
    )
    web.add_argument(
        "--max-users",
        type=positive_int,
        default=AUDIENCE.max_users,
        help="people allowed in (default: %(default)s)",
    )
    web.add_argument(
        "--rate",
        type=float,
        default=AUDIENCE.rate[0],
        help="messages per second per person (default: %(default)g)",
    )
    web.add_argument(
        "--burst",
        type=float,
        default=AUDIENCE.rate[1],
        help="messages allowed in a burst (default: %(default)g)",
    )
    web.add_argument(
        "--tls",
        nargs=2,
        metavar=("CERT", "KEY"),
        default=None,
        help="serve https:// and wss:// with this certificate and key (PEM files)",
    )
    web.add_argument(
        "--trust-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a reverse proxy or tunnel whose X-Forwarded-For names the client (repeatable); "
        "wrong join codes are then counted per forwarded address",
    )
    web.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another site allowed to use the API and WebSocket, e.g. https://course.example (repeatable)",
    )


def _add_dashboard_parser(servers: Any) -> None:
    """``serve dashboard``: lesson 07's fleet dashboard (its options: wslab.servers.dashboard)."""
    from ..servers.dashboard import add_dashboard_options

    dashboard = servers.add_parser(
        "dashboard",
        parents=[_server_options(host=None)],
        help="lesson 07: a simulated fleet's dashboard: page, polling, long polling, SSE, WebSocket",
    )
    add_dashboard_options(dashboard, broker_url=_broker_url)
