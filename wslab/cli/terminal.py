"""``python -m wslab client``: the chat room from a terminal, on top of :class:`~wslab.clients.ChatClient`.

It prints one line per thing that happens, flushed at once, so a person, a pipe and a
test all see each line as it happens:

* ``connected to ws://...: 101 Switching Protocols`` once the opening handshake succeeds;
* the room as the original tutorial prints it, ``[alice] hi`` and ``>>> bob joined the
  chat``, except your own messages: you typed them already;
* ``* ...`` for what concerns the connection rather than the room: losing it,
  reconnecting and resuming, history that cannot be replayed, gaps.

Each line typed is sent as a chat message. ``/quit`` or the end of input (Ctrl-D, or the
end of a pipe) waits briefly for the server to acknowledge what was typed, then leaves
with a close frame (1000). Ctrl-C and SIGTERM leave the same way, without waiting.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import sys
import threading
from typing import TextIO

from ..clients.chat import ChatClient
from ..core.protocol import render_plain
from ..core.room_event import EventKind
from ..runtime.handles import wait_until
from ..runtime.signals import handle_signals

__all__ = ["StdinLines", "TranscriptPrinter", "run_client"]

#: Seconds ``/quit`` and end of input wait for the server to acknowledge typed messages.
LINGER = 5.0
QUIT = "/quit"


class TranscriptPrinter:
    """A :meth:`ChatClient.subscribe` listener that prints what is new, line by line."""

    def __init__(self, url: str, *, out: TextIO | None = None) -> None:
        self.url = url
        self._out = out
        #: Set before leaving on purpose, so the closing connection is not reported as lost.
        self.quitting = False
        self._responses = self._connects = self._notices = self._events = self._closes = self._clears = 0

    def __call__(self, client: ChatClient) -> None:
        for status, reason in client.responses[self._responses :]:
            if self._responses == 0:
                self._print(f"connected to {self.url}: {status} {reason}")
            self._responses += 1
        if client.connects > self._connects:
            if self._connects:
                self._print(f"* reconnected, resumed after seq {client.resumed_after}")
            self._connects = client.connects
        for notice in client.notices[self._notices :]:
            # A refused name is reported once, as the reason the server closed with.
            if not (client.rejected and notice == f"error: {client.rejected}"):
                self._print(f"* {notice}")
        self._notices = len(client.notices)
        if client.clears != self._clears:  # the transcript was cleared: it starts with the clear
            self._clears, self._events = client.clears, 0
        for event in client.events[self._events :]:
            if not (event.kind is EventKind.CHAT and event.name == client.name):
                self._print(render_plain(event))
        self._events = len(client.events)
        for code, reason in client.closes[self._closes :]:
            if not (self.quitting or client.rejected):
                self._print(f"* connection lost (code {code}{': ' + reason if reason else ''}), reconnecting")
        self._closes = len(client.closes)

    def _print(self, line: str) -> None:
        print(line, file=self._out or sys.stdout, flush=True)


class StdinLines:
    """Lines of a file descriptor (stdin by default), read by a thread; ``None`` at the end.

    A daemon thread blocks in :func:`os.read` so the event loop never does. Not
    ``loop.connect_read_pipe``: it switches the file to non-blocking mode, and a terminal's
    stdin is the same open file as its stdout, so printing could then fail with
    ``BlockingIOError``; it also refuses regular files (``< messages.txt``). And not
    ``sys.stdin`` from the thread: a daemon thread holding its lock at exit can abort
    the interpreter.
    """

    def __init__(self, fd: int = 0, *, encoding: str | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        encoding = encoding or getattr(sys.stdin, "encoding", None) or "utf-8"
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        threading.Thread(target=self._read, args=(fd,), name="wslab-stdin", daemon=True).start()

    async def get(self) -> str | None:
        """The next line without its line ending, or ``None`` once input has ended."""
        return await self._queue.get()

    def end(self) -> None:
        """Make :meth:`get` return ``None`` next, as at the end of input (call from the loop)."""
        self._queue.put_nowait(None)

    def _read(self, fd: int) -> None:
        pending = ""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # stdin closed or unreadable: the same as its end
                chunk = b""
            *lines, pending = (pending + self._decoder.decode(chunk, final=not chunk)).split("\n")
            for line in lines:
                self._put(line.removesuffix("\r"))
            if not chunk:
                if pending:
                    self._put(pending)
                self._put(None)
                return

    def _put(self, item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody reads any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)


async def run_client(url: str, name: str, *, linger: float = LINGER) -> int:
    """Chat as ``name`` until ``/quit``, end of input or a signal; the exit status.

    Returns 0 after leaving normally, 128 + the signal's number after Ctrl-C or SIGTERM,
    and 1 when the server closed for good (a refused name) or is not a chat server.

    Raises:
        OSError, TimeoutError, websockets.exceptions.WebSocketException: when the first
            connection fails (refused, rejected handshake, bad URL); the command line
            turns these into one readable line.
    """
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    printer = TranscriptPrinter(url)
    client = ChatClient(url, name)
    client.subscribe(printer)
    lines = StdinLines()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        lines.end()

    restore_signals = handle_signals(on_signal)
    client.start()
    ended = asyncio.ensure_future(client.wait())
    try:
        while True:
            next_line = asyncio.ensure_future(lines.get())
            await asyncio.wait({ended, next_line}, return_when=asyncio.FIRST_COMPLETED)
            if ended.done():
                next_line.cancel()
                return _ended_by_server(client, ended)
            line = next_line.result()
            if line is None or line.strip() == QUIT:
                break
            if line.strip():
                await client.send(line.strip())
        if not received:
            await _deliver_typed(client, ended, received, linger)
        if ended.done():  # refused while reconnecting, during the wait above
            return _ended_by_server(client, ended)
        printer.quitting = True
        await client.stop()  # close with 1000, wait for the reader; raises what ended it, if anything
        return 128 + received[0] if received else 0
    finally:
        if not ended.done():
            ended.cancel()
        elif not ended.cancelled():
            ended.exception()  # retrieved, so asyncio logs no "exception was never retrieved"
        restore_signals()


async def _deliver_typed(
    client: ChatClient, ended: asyncio.Future[None], received: list[signal.Signals], linger: float
) -> None:
    """Wait until the first connection is made and the server has acknowledged every typed
    message (typing fast then ``/quit``). Input may end before the first connection does
    (``< /dev/null``): leaving waits for it, so a refused connection is still reported."""

    def settled() -> bool:
        delivered = client.connects > 0 and not client.unacknowledged
        return delivered or ended.done() or bool(received)

    with contextlib.suppress(TimeoutError):
        await wait_until(settled, timeout=linger)
    if client.unacknowledged:
        count = len(client.unacknowledged)
        print(f"* {count} message(s) not delivered: no server acknowledged them", flush=True)


def _ended_by_server(client: ChatClient, ended: asyncio.Future[None]) -> int:
    """The client stopped on its own: re-raise a connection error, or explain the close."""
    exc = ended.exception()
    if isinstance(exc, ValueError | KeyError | TypeError):  # JSON it cannot read
        print(f"wslab: {client.url} does not speak the chat protocol ({exc!r})", file=sys.stderr, flush=True)
        return 1
    if exc is not None:
        raise exc
    code, reason = client.closes[-1] if client.closes else (1006, "")
    print(f"wslab: closed by server: {code} {reason}".rstrip(), file=sys.stderr, flush=True)
    return 1
