"""Small WebSocket clients the lessons and the command line share."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect, process_exception
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.uri import parse_uri

from ..core.backoff import backoff_delays
from ..core.close_codes import CloseCode
from ..core.handshake import RFC_SAMPLE_KEY, Response, close_frame, upgrade_request
from ..core.heartbeat import HeartbeatPolicy, Verdict
from ..core.history import SequenceTracker
from ..core.room_event import RoomEvent
from ..core.session import AfterClose, Answer, ChatSession, ResendOutbox, WatchServer
from ..runtime.closes import close_details

__all__ = ["ChatClient", "Handshake", "capture_handshake", "exchange"]


@dataclass(frozen=True)
class Handshake:
    """The bytes of one real opening handshake, as they crossed the socket."""

    request: bytes
    response_head: bytes

    @property
    def response(self) -> Response:
        return Response.parse(self.response_head)

    def transcript(self) -> str:
        """Both messages as text, one header per line, CRLFs dropped."""
        request = self.request.decode("latin-1").rstrip("\r\n").split("\r\n")
        response = self.response_head.decode("latin-1").split("\r\n")
        return "\n".join(["--- client sends ---", *request, "", "--- server answers ---", *response])


async def capture_handshake(url: str, *, key: str = RFC_SAMPLE_KEY, timeout: float = 5) -> Handshake:
    """Open a WebSocket by hand over a raw TCP socket and return the handshake's bytes.

    Having read the ``101`` response, it closes the connection properly (a masked close
    frame, then waiting for the server's), so the server logs a clean 1000.
    """
    uri = parse_uri(url)
    if uri.secure:
        raise ValueError("capture_handshake shows plain ws:// traffic; wss:// is encrypted")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(uri.host, uri.port), timeout)
    try:
        host = uri.host if uri.port in (80,) else f"{uri.host}:{uri.port}"
        request = upgrade_request(host, uri.resource_name, key=key)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        handshake = Handshake(request, head[:-4])
        if handshake.response.status == 101:
            writer.write(close_frame(1000))
            # The server answers with its own close frame, then closes TCP.
            await asyncio.wait_for(reader.read(), timeout)
        return handshake
    finally:
        writer.close()
        await writer.wait_closed()


async def exchange(
    url: str, messages: Iterable[str | bytes], *, timeout: float = 5, **options: object
) -> list[str | bytes]:
    """Send each message and wait for one reply to it; return the replies in order."""
    replies: list[str | bytes] = []
    async with connect(url, open_timeout=timeout, **options) as connection:  # type: ignore[arg-type]
        for message in messages:
            await connection.send(message)
            replies.append(await asyncio.wait_for(connection.recv(), timeout))
    return replies


class ChatClient:
    """A chat client (json dialect) that notices gaps and loses nothing across reconnects.

    It keeps the room's transcript in :attr:`events`, each event once and in sequence
    order, its own messages included (matched to their acks by ``ref``). When the
    connection drops it reconnects with backoff and sends ``resume`` with the last
    sequence number it saw; messages it sent that the server never acknowledged are sent
    again once the server says replay is over (``live``). The rules live in
    :class:`wslab.core.ChatSession` (:attr:`session`); this class moves the bytes.

    Args:
        url: the chat server, or a list of servers sharing one broker to fail over between.
        name: the username to ask for.
        reconnect: reconnect after a drop (a rejected name never reconnects).
        delays: reconnection delays, a callable returning an iterator of seconds.
        read_delay: seconds to pause after each message, to play a slow client.
        receive_buffer: if set, the kernel receive buffer (SO_RCVBUF) in bytes: a small
            one plays a slow network, so the server sees the backlog sooner.
        get_token: called before each hello for a fresh token (lesson 04's servers).
        options: passed to :func:`websockets.asyncio.client.connect`.

    Views follow it with :meth:`subscribe`.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        name: str,
        *,
        reconnect: bool = True,
        delays: Callable[[], Iterator[float]] | None = None,
        read_delay: float = 0.0,
        receive_buffer: int | None = None,
        get_token: Callable[[], Awaitable[str]] | None = None,
        **options: Any,
    ) -> None:
        self.session = ChatSession(name)
        self.get_token = get_token
        self._last_heard = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None
        #: Seconds of silence after which the server was declared dead, per occurrence.
        self.dead_after: list[float] = []
        self.receive_buffer = receive_buffer
        self.urls = [url] if isinstance(url, str) else list(url)
        self._url_index = 0
        self.name = name
        self.reconnect = reconnect
        self.read_delay = read_delay
        self._listeners: list[Callable[[ChatClient], None]] = []
        self._delays = delays or (lambda: backoff_delays(first=0.1, cap=2.0))
        self._refused_delays = self._delays()
        self._options = options
        #: ``(code, reason)`` of every connection that ended, in order.
        self.closes: list[tuple[int, str]] = []
        #: ``(status, reason)`` of every opening handshake that succeeded, e.g.
        #: ``(101, "Switching Protocols")``, in order.
        self.responses: list[tuple[int, str]] = []
        self._resending = False
        self._background: set[asyncio.Task[None]] = set()
        self._connection: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # What the session knows, read-only: what the lessons and views read on a client

    @property
    def events(self) -> Sequence[RoomEvent]:
        """The transcript: each event once, in order (its own messages from their acks), from
        the instructor's last ``clear`` on."""
        return self.session.events

    @property
    def clears(self) -> int:
        """How many times the instructor cleared the room (and :attr:`events` with it)."""
        return self.session.clears

    @property
    def tracker(self) -> SequenceTracker:
        """The room's numbering as this client saw it: what it missed, what came twice."""
        return self.session.tracker

    @property
    def notices(self) -> Sequence[str]:
        """What happened to the connection and the room that is not a message, in order."""
        return self.session.notices

    @property
    def lost_after_reset(self) -> Sequence[int]:
        """Per reset of the room's history (its broker lost it), the last seq of the old numbering
        this client had: messages after it that had not arrived are gone (its notices say so)."""
        return self.session.lost_after_reset

    @property
    def users(self) -> Sequence[str]:
        """Who is in, as far as this client knows (a big room: since the last ``who``)."""
        return self.session.users

    @property
    def count(self) -> int:
        """How many are in the room."""
        return self.session.count

    @property
    def server(self) -> str:
        """The ``server_id`` of the server of the current connection."""
        return self.session.server

    @property
    def connects(self) -> int:
        """Connections that got in (welcomes received)."""
        return self.session.connects

    @property
    def resumed_after(self) -> int | None:
        """The last seq seen before the current connection, sent in its hello."""
        return self.session.resumed_after

    @property
    def live(self) -> bool:
        """Replay is over on the current connection: what arrives is live."""
        return self.session.live

    @property
    def rejected(self) -> str | None:
        """Why the server refused this user for good, or None."""
        return self.session.rejected

    @property
    def unacknowledged(self) -> list[str]:
        """Texts sent that the server has not acknowledged yet, oldest first."""
        return self.session.unacknowledged

    def lines(self) -> list[str]:
        """The transcript as the original tutorial prints it: ``[alice] hi``, ``>>> bob joined``."""
        return self.session.lines()

    def texts(self, *, author: str | None = None) -> list[str]:
        """Chat texts in order, optionally only one author's."""
        return self.session.texts(author=author)

    def subscribe(self, listener: Callable[[ChatClient], None]) -> Callable[[], None]:
        """Call ``listener(client)`` after every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(self) -> None:
        for listener in tuple(self._listeners):
            listener(self)

    # Running

    def start(self) -> ChatClient:
        """Run :meth:`run` in the background; returns self."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"chat-client-{self.name}")
        return self

    async def run(self) -> None:
        """Connect, and reconnect after drops, until :meth:`stop` or a rejection.

        With one URL, websockets' ``async for ... in connect(...)`` does the reconnecting.
        With several (servers sharing a broker, lesson 06), a server that cannot be
        reached is skipped for the next one, after a backoff delay.
        """
        delays = self._delays()
        while True:
            try:
                if await self._run_on(self.urls[self._url_index % len(self.urls)]):
                    continue  # that server is restarting: the next one, at once
                return
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                if len(self.urls) == 1 or self.connects == 0 or self._stopping:
                    raise
                self._url_index += 1
                self.session.note(f"server unreachable ({type(exc).__name__}); trying {self.url}")
                self._changed()
                await asyncio.sleep(next(delays))

    @property
    def url(self) -> str:
        """The server this client is using (or will try next)."""
        return self.urls[self._url_index % len(self.urls)]

    async def _run_on(self, url: str) -> bool:
        """Run on ``url`` until done (False), or until it says it restarts (True: move on)."""
        async for connection in connect(
            url,
            reconnect_delays=lambda: _as_generator(self._delays()),
            process_exception=self._retry_or_raise,
            **self._options,
        ):
            self._connected(connection)
            try:
                token = await self.get_token() if self.get_token is not None else None
                await connection.send(self.session.hello(token))
                async for message in connection:
                    self._last_heard = time.monotonic()
                    self._react(connection, self.session.receive(message))
                    self._changed()
                    if self.read_delay:
                        await asyncio.sleep(self.read_delay)  # plays a slow reader; not synchronisation
            except ConnectionClosed:
                pass
            finally:
                self._disconnected()
            code, reason, _ = close_details(connection, us="client", them="server")
            self.closes.append((code, reason))
            after = self.session.closed(code)
            self._changed()
            if self._stopping or after is AfterClose.GIVE_UP or not self.reconnect:
                return False
            if code == CloseCode.SERVICE_RESTART and len(self.urls) > 1:
                # 1012, a planned restart: this server is away for a moment, the others are up.
                self._url_index += 1
                self.session.note(f"server restarting (1012): moving to {self.url} at once")
                self._changed()
                return True
            if after is AfterClose.BACK_OFF:
                # websockets saw a successful connect and would retry at once: back off here.
                await asyncio.sleep(next(self._refused_delays))
        return False  # pragma: no cover - websockets' reconnecting loop never ends by itself

    def _connected(self, connection: ClientConnection) -> None:
        self._connection = connection
        if connection.response is not None:
            self.responses.append((connection.response.status_code, connection.response.reason_phrase))
        if self.receive_buffer:
            sock = connection.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        self._changed()

    def _disconnected(self) -> None:
        self.session.disconnected()
        self._connection = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _react(self, connection: ClientConnection, reactions: list[Any]) -> None:
        """Carry out what the session asks for, without holding up the reading loop."""
        loop = asyncio.get_running_loop()
        for reaction in reactions:
            match reaction:
                case Answer(text):  # at once: this is the server's proof that we live
                    self._in_background(self._quietly(connection.send(text)))
                case WatchServer(policy) if self._watchdog is None:
                    self._watchdog = loop.create_task(self._watch(connection, policy))
                case ResendOutbox():
                    self._refused_delays = self._delays()
                    if self.unacknowledged:
                        self._resending = True
                        self._in_background(self._resend(connection))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _retry_or_raise(self, exc: Exception) -> Exception | None:
        """Before the first success a failure is final (a typo should not retry forever);
        with several servers, it is final for this one: :meth:`run` moves to the next."""
        if self.connects == 0 or self._stopping or len(self.urls) > 1:
            return exc
        return process_exception(exc)

    async def stop(self) -> None:
        """Leave: close with 1000 and wait for the reader to finish.

        Between connections (connecting, or waiting to reconnect) there is nothing to
        close, so a client started with :meth:`start` is cancelled instead.
        """
        self._stopping = True
        if self._connection is not None:
            await self._connection.close()
        elif self._task is not None:
            self._task.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, OSError):
                await self._task

    async def wait(self) -> None:
        """Wait until the client has stopped; raises what ended it, if anything did."""
        if self._task is not None:
            await self._task

    # Sending

    async def send(self, text: str) -> None:
        """Send a chat message; while reconnecting it waits in the outbox and goes out once live."""
        _, wire = self.session.say(text)
        if self.live and self._connection is not None and not self._resending:
            with contextlib.suppress(ConnectionClosed):  # it stays unacked and is resent later
                await self._connection.send(wire)

    async def who(self) -> None:
        """Ask who is in the room: a big room sends counts, and names only on request.
        The answer updates :attr:`users` and :attr:`count`."""
        if self.live and self._connection is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._connection.send(self.session.who())

    async def _quietly(self, sending: Awaitable[None]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await sending

    async def _watch(self, connection: ClientConnection, policy: HeartbeatPolicy) -> None:
        """The client's half of the heartbeat: a server silent past the timeout is dead.

        The server pings every ``interval``, so silence means the server, or the network
        in between, is gone. Aborting the connection makes :meth:`run` reconnect.
        """
        while True:
            await asyncio.sleep(policy.interval)
            now = time.monotonic()
            if policy.verdict(last_heard=self._last_heard, now=now) is Verdict.DEAD:
                self.dead_after.append(now - self._last_heard)
                self.session.note(f"server silent for {now - self._last_heard:.1f} s: reconnecting")
                self.session.disconnected()  # at once: sends from now on wait for the next live
                connection.transport.abort()
                return

    async def _resend(self, connection: ClientConnection) -> None:
        """Send the outbox in order; what send() queues meanwhile goes out after it, in turn."""
        sent: set[str] = set()
        try:
            with contextlib.suppress(ConnectionClosed):
                while pending := self.session.resend(sent):
                    for ref, wire in pending:
                        await connection.send(wire)
                        sent.add(ref)
        finally:
            self._resending = False


def _as_generator(delays: Iterator[float]) -> Generator[float, None, None]:
    """websockets' ``reconnect_delays`` is typed as making a generator; any iterator will do."""
    yield from delays
