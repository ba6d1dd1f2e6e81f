"""The servers a benchmark measures, each a process of its own, started as from outside.

* ``chat``: ``python -m wslab serve chat``, the command a learner runs, with everything it
  does for every connection and message (its event log, its log lines);
* ``baseline``: a bare :mod:`websockets` server whose handler calls ``broadcast()``, the
  least a correct fan-out does in Python (``python -m wslab.bench fanout _serve baseline``);
* ``node``: the same on Node's ``ws`` (``wslab/bench/node/server.js``), where Node and the
  package are installed (``make bench-npm``); a second reference, outside Python;
* ``before``, with ``--before DIR``: the chat command of another checkout (an older commit,
  say), in the same run, for figures before and after a change.

Where the machine has two CPUs, the server runs on one and the load on another
(:func:`wslab.bench.harness.cpus`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .harness import Child, spawn_command

__all__ = ["CHATS", "HOST", "NODE_DIR", "SERVERS", "Server", "node_missing", "start_server"]

HOST = "127.0.0.1"
#: What a benchmark can measure; ``baseline`` and ``node`` are the references.
SERVERS = ("chat", "baseline", "node")
#: The chat command, of this checkout or (``--before DIR``) of another, for a before/after run.
CHATS = ("chat", "before")
#: Where the Node reference and its ``package.json`` live (``npm ci`` there installs ``ws``).
NODE_DIR = Path(__file__).with_name("node")

_LISTENING = re.compile(r"listening on (ws://\S+)")


def node_missing() -> str | None:
    """Why the Node reference cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        return f"the ws package is not installed (make bench-npm, or npm ci in {NODE_DIR})"
    return None


@dataclass
class Server:
    """A measured server's process: its URL and pid, and how to stop it."""

    kind: str
    child: Child
    url: str
    pid: int
    #: How it was started, for the record (``python`` for this interpreter).
    command: str = ""

    async def stop(self) -> None:
        # The chat command stops on SIGTERM, as from a terminal; the others when stdin closes.
        await self.child.close(interrupt=self.kind in CHATS)


async def start_server(
    kind: str, *, compression: str, cpu: int | None = None, before: str | None = None
) -> Server:
    """Start server ``kind`` and wait until it listens.

    ``compression`` is what the reference servers accept (``deflate`` or ``none``); the chat
    command accepts permessage-deflate as websockets does by default, so whether a chat
    connection is compressed is the client's choice (the load's ``--compression``).
    ``before`` is the checkout whose chat command the server ``before`` runs.
    """
    env: dict[str, str] = {}
    match kind:
        case "chat" | "before":
            argv: tuple[str, ...] = (sys.executable, "-m", "wslab", "serve", "chat", "--port", "0")
            if kind == "before":
                if not before or not (Path(before) / "wslab" / "__init__.py").is_file():
                    raise RuntimeError(f"no wslab checkout at {before!r} for the server 'before'")
                env["PYTHONPATH"] = str(Path(before).resolve())
        case "baseline":
            argv = (sys.executable, "-m", "wslab.bench", "fanout", "_serve", "baseline")
            argv += ("--compression", compression)
        case "node":
            if (missing := node_missing()) is not None:
                raise RuntimeError(f"the node server cannot run: {missing}")
            argv = ("node", str(NODE_DIR / "server.js"), compression)
        case _:
            raise ValueError(f"unknown server {kind!r}")
    child = Child(f"{kind} server", await spawn_command(*argv, cpu=cpu, env=env))
    command = " ".join(
        [*(f"{k}={v}" for k, v in env.items()), *("python" if a == sys.executable else a for a in argv)]
    )
    try:
        while True:
            line = await child.read_line(30)
            if kind in CHATS:
                if found := _LISTENING.search(line):
                    return Server(kind, child, found.group(1), child.process.pid, command)
            else:
                started = json.loads(line)
                return Server(kind, child, started["url"], started["pid"], command)
    except BaseException:
        await child.close(interrupt=True)
        raise
