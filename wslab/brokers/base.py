"""What a chat server needs from a pub/sub system, whatever carries the messages.

The chat server publishes every room event through a :class:`Broker` and delivers what its
:class:`Subscription` yields, even on a single server: moving from one process to many is a
change of broker object, not of chat code (lesson 06).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

from ..core.backoff import backoff_delays
from ..core.errors import WslabError
from ..core.room_event import BrokerReset, RoomEvent

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "QueuedSubscription",
    "Subscription",
    "SubscriptionItem",
    "broker_address",
    "broker_down_as_unavailable",
    "reconnect_delays",
]


def reconnect_delays() -> Iterator[float]:
    """Delays between a broker client's reconnection attempts: 0.1 s doubling up to 2 s, jittered.

    A shorter cap than a browser's: the clients here are a handful of servers, not a
    crowd, and each second they stay away their users' chat stands still.
    """
    return backoff_delays(first=0.1, cap=2.0)


class BrokerUnavailable(WslabError, ConnectionError):
    """The broker cannot be reached right now: nothing was published (or, after a
    timeout, it is not known whether it was). The caller decides: retry, or tell the user.

    A chat server sends its client away to try again later (close 1013); a
    ``ConnectionError`` still, for code that catches it as one.
    """

    close_code = 1013  # TRY_AGAIN_LATER
    reply_code = "broker-unavailable"


def broker_address(url: str) -> str:
    """``host:port`` of a broker URL, for messages and logs: never its password."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        return url.rsplit("@", 1)[-1]
    if host is None:
        return url.rsplit("@", 1)[-1]
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port is not None else host


@contextlib.contextmanager
def broker_down_as_unavailable(
    name: str,
    url: str,
    down: tuple[type[BaseException], ...],
    *,
    outcome: str = "",
    reason: Callable[[BaseException], str] = repr,
) -> Iterator[None]:
    """Turn a client library's "cannot reach the server" errors into :class:`BrokerUnavailable`.

    Args:
        name: the broker as a user knows it (``"Redis"``, ``"NATS"``).
        url: where it is; shown as ``host:port`` only.
        down: the client library's exceptions that mean the server is not reachable.
        outcome: what this means for the call (``"the event was not published"``).
        reason: how to describe the library's exception (``repr`` by default).

    A plain (not async) context manager: it works around ``await`` inside coroutines too.
    """
    try:
        yield
    except down as exc:
        consequence = f"; {outcome}" if outcome else ""
        raise BrokerUnavailable(
            f"{name} at {broker_address(url)} is unavailable{consequence}: {reason(exc)}"
        ) from exc


#: What a subscription yields.
SubscriptionItem = RoomEvent | BrokerReset


class Subscription(ABC, AsyncIterator[SubscriptionItem]):
    """An async iterator over one room's events, in sequence order; ends after :meth:`close`.

    It yields :class:`RoomEvent`, and a :class:`BrokerReset` where its broker lost the room's
    data and started numbering again.
    """

    def __aiter__(self) -> Subscription:
        return self

    @abstractmethod
    async def __anext__(self) -> SubscriptionItem: ...

    @abstractmethod
    async def close(self) -> None:
        """Stop; events published before this call are still yielded, then iteration ends."""

    def recheck(self) -> None:
        """Someone saw the broker number the room differently from what this subscription
        yields: look at the room on the broker again (a broker whose connection drops when it
        restarts, as Redis and NATS do, is looked at again anyway: nothing to do)."""


class QueuedSubscription(Subscription):
    """A subscription fed through a queue: the broker's reader puts events in, the
    server's dispatch loop takes them out, and :meth:`end` marks where iteration stops.

    Unbounded on purpose: the consumer is a server's dispatch loop, which never blocks on
    a client, so the queue only holds what arrived since its last turn.
    """

    _END = object()

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, item: SubscriptionItem) -> None:
        """Queue ``item`` to be yielded after everything queued before it."""
        self.queue.put_nowait(item)

    def end(self) -> None:
        """No more events: iteration stops once the events queued before this are taken."""
        self.queue.put_nowait(self._END)

    async def __anext__(self) -> SubscriptionItem:
        item = await self.queue.get()
        if item is self._END:
            self.queue.put_nowait(item)  # stay ended for any later call
            raise StopAsyncIteration
        return item  # type: ignore[return-value]


class Broker(ABC):
    """Numbers, keeps and fans out each room's events: the one object a chat server talks to.

    Contract, which every implementation's tests check (``tests/chat_contract.py``):

    * :meth:`publish` assigns the event the room's next sequence number, exactly once,
      and keeps it in a bounded history;
    * every subscription of a room yields that room's events in sequence order, each once;
    * :meth:`history_after` returns the kept events after a sequence number, or raises
      :class:`~wslab.core.history.HistoryTooOld` when they are no longer kept.

    A broker in another process can be down: its methods then raise
    :class:`BrokerUnavailable` instead of waiting, and its subscriptions reconnect and
    resume on their own, yielding a :class:`BrokerReset` if the broker lost the room.
    """

    #: Shown in lessons and benchmarks: ``memory``, ``redis``, ``nats``.
    kind: str = "broker"

    @abstractmethod
    async def publish(self, event: RoomEvent) -> RoomEvent:
        """Number ``event``, keep it in history, deliver it to subscribers; returns it numbered."""

    @abstractmethod
    async def subscribe(self, room: str) -> Subscription:
        """Start receiving ``room``'s events; events published after this call are yielded."""

    @abstractmethod
    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        """The kept events of ``room`` numbered above ``seq``, oldest first."""

    @abstractmethod
    async def last_seq(self, room: str) -> int:
        """The sequence number of ``room``'s newest event (0 when there is none)."""

    @abstractmethod
    async def close(self) -> None:
        """End every subscription and release connections."""

    async def ping(self) -> None:  # noqa: B027 (not abstract: an in-process broker has nothing to do)
        """Return if the broker answers now; raise :class:`BrokerUnavailable` if not.

        An in-process broker always answers; one in another process asks its server.
        """

    async def wait_ready(
        self,
        *,
        timeout: float | None = None,
        on_retry: Callable[[BrokerUnavailable, float], object] | None = None,
        delays: Callable[[], Iterator[float]] = reconnect_delays,
    ) -> None:
        """Return once the broker answers :meth:`ping`, retrying with backoff while it does not.

        Args:
            timeout: give up after this many seconds (None: wait as long as it takes) and
                raise the last :class:`BrokerUnavailable`.
            on_retry: called with the failure and the delay before the next attempt, once per
                failed attempt: how ``serve chat`` says that it is waiting, and why.
            delays: makes the delays between attempts (:func:`reconnect_delays` by default).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for delay in delays():
            try:
                await self.ping()
                return
            except BrokerUnavailable as exc:
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise
                    delay = min(delay, remaining)
                if on_retry is not None:
                    on_retry(exc, delay)
            await asyncio.sleep(delay)
