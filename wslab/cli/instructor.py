"""The instructor's side of ``python -m wslab serve web`` (and ``serve chat``) in a terminal: what it
prints for the room (:func:`audience_lines`) and the moderation commands typed into it.

Why the terminal and not an HTTP endpoint: in a classroom the instructor's terminal is the one
place only the instructor can type into. An endpoint on a server that listens on every
interface would need a secret, and a secret printed at start ends up on the projector; a
command typed at the server needs neither, and adds nothing anyone in the room could reach.
The commands act through :class:`~wslab.servers.chat.ChatServer`, so a kick or a mute
reaches people connected to other servers of the same broker too::

    /kick bob spamming links      (the reason is what bob reads; quote a name with spaces: "ada l" ...)
    /mute bob    /unmute bob      /clear      /who      /help

Input is read only when this process may read its terminal (not a background job, which
reading would stop); with no terminal (``< /dev/null``, a service), the channel simply ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from ..core.moderation import ModerationError
from ..runtime.handles import ServerHandle
from ..servers.chat import ChatServer
from .terminal import StdinLines

__all__ = [
    "HELP",
    "Command",
    "audience_lines",
    "parse_command",
    "run_command",
    "serve_moderation",
    "start_moderation",
    "stdin_is_ours",
]

HELP = (
    "moderation: /kick NAME [reason]  /mute NAME  /unmute NAME  /clear  /who  /help"
    '  (quote a name with spaces: /kick "ada l" off topic)'
)
VERBS = ("kick", "mute", "unmute", "clear", "who", "help")


@dataclass(frozen=True)
class Command:
    """One typed command: ``verb`` (``kick``, ``mute``, ``unmute``, ``clear``, ``who``, ``help``)."""

    verb: str
    name: str = ""
    reason: str = ""


def parse_command(line: str) -> Command | str:
    """The command ``line`` asks for, or what is wrong with it (a string to print)."""
    verb, _, rest = line.strip().partition(" ")
    verb, rest = verb.lower().removeprefix("/"), rest.strip()
    if not line.strip().startswith("/") or verb not in VERBS:
        return f"unknown command {line.strip()!r}; {HELP}"
    if verb in ("clear", "who", "help"):
        return Command(verb)
    try:
        words = shlex.split(rest)
    except ValueError as exc:  # an unclosed quote
        return f"cannot read {rest!r}: {exc}"
    if not words:
        return f"/{verb} needs a name: /{verb} NAME"
    if verb == "kick":
        return Command(verb, words[0], " ".join(words[1:]))
    return Command(verb, " ".join(words))


async def run_command(chat: ChatServer, line: str) -> str:
    """Carry out one typed ``line`` on ``chat``; what to print back."""
    command = parse_command(line)
    if isinstance(command, str):
        return command
    if command.verb == "help":
        return HELP
    if command.verb == "who":
        muted = chat.room.moderation.muted
        people = ", ".join(chat.room.everyone) or "nobody"
        return f"in the room ({chat.room.size}): {people}; muted: {', '.join(muted) or 'nobody'}"
    try:
        if command.verb == "clear":
            await chat.clear()
            return "cleared the chat on every screen"
        if command.verb == "kick":
            await chat.kick(command.name, reason=command.reason)
            return f"kicked {command.name}" + (f" ({command.reason})" if command.reason else "")
        await (chat.mute if command.verb == "mute" else chat.unmute)(command.name)
        return f"{command.verb}d {command.name}"
    except ModerationError as exc:
        return str(exc)


def stdin_is_ours() -> bool:
    """Whether reading the terminal is safe: a background job that reads it is stopped (SIGTTIN)."""
    with contextlib.suppress(OSError, AttributeError):  # no tcgetpgrp (Windows): read anyway
        if os.isatty(0):
            return os.tcgetpgrp(0) == os.getpgrp()
    return True


async def serve_moderation(chat: ChatServer, out: Callable[[str], None]) -> None:
    """Read commands from stdin and carry them out until input ends (or the task is cancelled)."""
    if not stdin_is_ours():
        return
    lines = StdinLines()
    while (line := await lines.get()) is not None:
        if line.strip():
            out(await run_command(chat, line))


_running: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks


def start_moderation(chat: ChatServer | None) -> None:
    """Read the instructor's commands for ``chat`` (if any) in the background, printing each answer;
    the task ends with the input, or is cancelled with the event loop."""
    if chat is not None:
        task = asyncio.get_running_loop().create_task(
            serve_moderation(chat, lambda line: print(line, flush=True))
        )
        _running.add(task)
        task.add_done_callback(_running.discard)


def audience_lines(args: argparse.Namespace, handle: ServerHandle) -> list[str]:
    """What an instructor puts on the projector: URLs and a QR code for the first, then how to moderate."""
    from ..widgets.audience import join_urls, qr_text, reach_url

    scheme = "https" if args.tls else "http"
    urls = join_urls(handle.port, host=args.host, code=args.join_code or None, scheme=scheme)
    lines = [
        f"first, from your phone on the room's network: {reach_url(urls[0])}",
        "join from a phone or laptop on this network:",
        *(f"  {url}" for url in urls),
    ]
    if args.join_code:
        lines.append(f"join code: {args.join_code}")
    return [*lines, qr_text(urls[0]), HELP]
