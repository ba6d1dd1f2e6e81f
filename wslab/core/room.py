"""The chat room without I/O: every decision the chat server makes, as plain method calls.

Like :class:`websockets.protocol.Protocol` under :mod:`websockets.asyncio`, a
:class:`ChatRoom` never touches a socket, a task or a clock it was not given. Its methods
take what happened (a first message, a client's message, a broker event or reset, the
time, how many bytes wait for a client) and return what to do: messages to send to whom
(:class:`Send`, or a :class:`FanOut` of ready-encoded texts), connections to close
(:class:`Close`), events to publish (:class:`Publish`). The asyncio server
(:class:`wslab.servers.chat.ChatServer`) carries those out; tests drive the room directly.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .actions import Action, ChatStats, Close, Delivery, FanOut, OverflowPolicy, Publish, Send, close_reason
from .auth import Tokens
from .close_codes import AppCloseCode, CloseCode
from .errors import WslabError
from .heartbeat import HeartbeatPolicy, Verdict
from .history import HistoryTooOld
from .limits import TokenBucket
from .presence import Presence, PresencePolicy
from .protocol import (
    Ack,
    Dialect,
    Error,
    EventKind,
    Hello,
    HistoryLost,
    Live,
    Ping,
    Pong,
    ProtocolViolation,
    Reset,
    RoomEvent,
    Say,
    ServerMessage,
    Users,
    Welcome,
    Who,
    dialect_of,
    parse_client_message,
    parse_hello,
    ref_of,
    validate_username,
)

__all__ = [
    "Action",
    "ChatRoom",
    "ChatStats",
    "Close",
    "Delivery",
    "FanOut",
    "Member",
    "OverflowPolicy",
    "PresencePolicy",
    "Publish",
    "Refused",
    "RoomReset",
    "Send",
]


class Refused(WslabError):
    """A hello the room turns down for a reason of its own (no token, room full)."""

    def __init__(self, reply_code: str, text: str, close_code: int = CloseCode.POLICY_VIOLATION) -> None:
        super().__init__(text)
        self.reply_code = reply_code
        self.close_code = close_code


@dataclass(frozen=True)
class RoomReset:
    """The broker came back without the room's data; numbering goes on after ``last_seq``.

    The room's own name for :class:`wslab.brokers.base.BrokerReset` (same fields), so the
    core does not import the brokers' asyncio code.
    """

    room: str
    last_seq: int


@dataclass(eq=False, slots=True)
class Member:
    """One connection in the room, as the room sees it; ``connection`` is the shell's own."""

    connection: Any
    name: str
    dialect: Dialect
    #: The last sequence number the client says it saw (json hello), or None.
    resume: int | None = None
    #: Highest sequence number handed to this client; nothing at or below is sent again.
    last_seq: int = 0
    #: While the client is sent its welcome and replay, live events (and resets) wait here;
    #: None once it is live.
    waiting: list[RoomEvent | RoomReset] | None = field(default_factory=list)
    limiter: TokenBucket | None = None
    #: When anything last arrived from this client: its heartbeat.
    last_heard: float = 0.0
    #: Its join was published: its leave will be, exactly once.
    joined: bool = False
    #: In the room: False once it left, was replaced, evicted or dropped.
    present: bool = True


class ChatRoom:
    """One chat room's rules: who may join, who gets what, who is too slow, who is gone.

    Args:
        name: the room (``RoomEvent.room``).
        server_id: names this server in events (``via``).
        overflow: what happens to a client whose backlog exceeds ``max_backlog``.
        max_backlog: bytes allowed to wait for a client before ``overflow`` applies.
        max_waiting: live events held for a client while it is sent its replay; past that,
            it counts as too slow as well.
        max_users: refuse newcomers (1013, try again later) when this many are in.
        rate: ``(messages per second, burst)`` per connection; more closes it with 1008.
        tokens: if set, a json hello must carry a token for its name; plain clients are refused.
        heartbeat: if set, json clients are pinged and dropped after ``timeout`` of silence.
        remembered_refs: how many recent ``(author, ref)`` pairs the room remembers, so a
            message resent after a lost ack is acknowledged, not published twice.
        presence: when joins and leaves stop being announced one by one (see
            :mod:`wslab.presence`); past it, the shell must call :meth:`tick` on a timer.
        clock: monotonic seconds (rate limits, heartbeats, stats): the shell's, since the
            room reads no clock of its own.
    """

    def __init__(
        self,
        *,
        name: str = "lobby",
        server_id: str = "chat",
        overflow: OverflowPolicy | str = OverflowPolicy.DISCONNECT,
        max_backlog: int = 1 << 20,
        max_waiting: int = 10_000,
        max_users: int | None = None,
        rate: tuple[float, float] | None = None,
        tokens: Tokens | None = None,
        heartbeat: HeartbeatPolicy | None = None,
        remembered_refs: int = 10_000,
        presence: PresencePolicy | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.server_id = server_id
        self.overflow = OverflowPolicy(overflow)
        self.max_backlog = max_backlog
        self.max_waiting = max_waiting
        self.max_users = max_users
        self.rate = rate
        self.tokens = tokens
        self.heartbeat = heartbeat
        self.clock = clock
        self.stats = ChatStats()
        self.members: dict[str, Member] = {}
        #: The newest events fanned out, for live views.
        self.transcript: deque[RoomEvent] = deque(maxlen=200)
        #: Seconds of silence after which each dead client was dropped (newest last).
        self.dead_after: deque[float] = deque(maxlen=1000)
        #: How many times the broker came back without the room's data.
        self.epoch = 0
        #: Highest sequence number fanned out in this epoch.
        self.last_seq = 0
        self._refs: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()
        self._remembered_refs = remembered_refs
        #: Who is in the whole room, and the joins and leaves a big room announces per tick.
        self.presence = Presence(presence or PresencePolicy(), server_id, self._presence_event)
        self._folded: set[str] = set()  # members' names, casefolded: a name check costs O(1)

    @property
    def users(self) -> list[str]:
        """Who is in the room on this server, in order of arrival."""
        return list(self.members)

    @property
    def everyone(self) -> list[str]:
        """Who is in the whole room: this server's people, then those other servers announced."""
        return self.presence.everyone(self.members)

    @property
    def size(self) -> int:
        """How many people are in the whole room, as far as this server knows."""
        return self.presence.size(len(self.members))

    @property
    def full(self) -> bool:
        return self.max_users is not None and len(self.members) >= self.max_users

    def event(self, kind: EventKind, name: str, text: str = "", ref: str = "") -> RoomEvent:
        """A new event of this room, from this server, to publish."""
        return RoomEvent(kind, name, text, room=self.name, via=self.server_id, ref=ref)

    def _presence_event(self, kind: EventKind, names: tuple[str, ...], total: int | None) -> RoomEvent:
        if total is None:  # a small room's: one person, as the tutorial announces it
            return self.event(kind, names[0])
        return RoomEvent(
            kind, names[0], room=self.name, via=self.server_id, names=names, count=len(names), total=total
        )

    # --- admission --------------------------------------------------------------------

    def admit(self, connection: Any, first: str | bytes) -> tuple[Member | None, list[Action]]:
        """Read a connection's first message: the new member, or None and how to refuse it.

        A reconnect that proves its name with a token takes over the same user's older
        connection (a leftover whose network died unnoticed): the old one is closed with
        4002 and, for the room, the user never left.
        """
        actions: list[Action] = []
        try:
            hello = parse_hello(first)
            actions += self._take_over(hello)
            member = self._check(connection, hello)
        except WslabError as exc:
            self.stats.rejected += 1
            refused = Member(connection, "", dialect_of(first), present=False)
            code = exc.close_code or CloseCode.POLICY_VIOLATION
            reply = Error(exc.reply_code or "refused", str(exc))
            return None, [*actions, Send(refused, reply), Close(refused, code, close_reason(str(exc)))]
        self.members[member.name] = member  # claims the name; live events wait in member.waiting
        self._folded.add(member.name.casefold())
        return member, actions

    def _take_over(self, hello: Hello) -> list[Action]:
        holder = self.members.get(hello.name.strip())
        if holder is None or hello.resume is None or self.tokens is None:
            return []
        self.tokens.verify(hello.token, hello.name.strip())
        self._remove(holder)
        return [Close(holder, AppCloseCode.REPLACED, "replaced by a newer connection")]

    def _check(self, connection: Any, hello: Hello) -> Member:
        if self.tokens is not None:
            if hello.dialect is Dialect.PLAIN:
                raise Refused("token-required", "this server needs the json hello with a token")
            self.tokens.verify(hello.token, hello.name.strip())
        name = validate_username(hello.name, taken=self._folded, folded=True)
        if self.full:
            raise Refused(
                "room-full",
                f"the room is full ({self.max_users} people); try again later",
                CloseCode.TRY_AGAIN_LATER,
            )
        limiter = TokenBucket(rate=self.rate[0], burst=self.rate[1], clock=self.clock) if self.rate else None
        return Member(connection, name, hello.dialect, hello.resume, limiter=limiter, last_heard=self.clock())

    # --- catch-up ---------------------------------------------------------------------

    def welcome(self, member: Member, room_seq: int) -> tuple[ServerMessage, int | None]:
        """The welcome for ``member``, given the broker's last seq, and after which seq to replay
        (None: nothing to replay)."""
        # A big room's welcome has the count, not the names: N of them to each of N
        # newcomers would be N² again, in bytes.
        big = self.presence.big(len(self.members))
        users, count = ([], self.size) if big else (self.users, None)
        if member.dialect is Dialect.PLAIN:
            member.last_seq = room_seq
            return Welcome(member.name, room_seq, users, self.server_id, count=count), None
        resume = member.resume
        member.last_seq = room_seq if resume is None else min(resume, room_seq)
        beat = self.heartbeat
        welcome = Welcome(
            member.name,
            room_seq,
            users,
            self.server_id,
            (beat.interval, beat.timeout) if beat is not None else None,
            self.rate,
            count,
        )
        return welcome, (None if resume is None else member.last_seq)

    def history_lost(self, member: Member, lost: HistoryTooOld) -> tuple[HistoryLost, int]:
        """What to tell ``member`` when its history is gone, and after which seq to replay instead."""
        member.last_seq = lost.oldest - 1
        return HistoryLost(lost.wanted_after + 1, lost.oldest - 1, str(lost)), lost.oldest - 1

    def replay(self, member: Member, items: list[RoomEvent | RoomReset]) -> list[ServerMessage]:
        """What ``member`` is sent, one awaited send at a time, of events it has not had yet."""
        messages: list[ServerMessage] = []
        for item in items:
            if isinstance(item, RoomReset):
                member.last_seq = item.last_seq
                messages.append(Reset(item.last_seq))
            elif item.seq > member.last_seq:
                member.last_seq = item.seq
                message = self._rendition(member, item)
                if message is not None:
                    messages.append(message)
        return messages

    def catch_up(self, member: Member) -> tuple[list[ServerMessage], bool]:
        """The next messages of ``member``'s catch-up, and whether it is now live.

        Events that arrived while it was sent its replay come first; once none wait, the
        member is live (from now on :meth:`fan_out` includes it) and a json client is told so.
        """
        waiting = member.waiting or []
        if waiting:
            member.waiting = []
            return self.replay(member, waiting), False
        member.waiting = None
        return ([Live(member.last_seq)] if member.dialect is Dialect.JSON else []), True

    def joined(self, member: Member) -> list[Action]:
        """Once ``member`` is live: its join to publish now, or nothing yet (a big room
        announces it at the next :meth:`tick`)."""
        member.joined = True
        join = self.presence.joined(member.name, len(self.members))
        return [] if join is None else [Publish(join)]

    def tick(self, now: float) -> list[Action]:
        """The shell's timer: a big room's joins and leaves since the last tick, coalesced."""
        return [Publish(event) for event in self.presence.tick(now, len(self.members))]

    # --- what clients say -------------------------------------------------------------

    def receive(self, member: Member, message: str | bytes) -> list[Action]:
        """What to do about a message from ``member``: publish it, answer it, or close."""
        member.last_heard = now = self.clock()
        try:
            said = parse_client_message(message, member.dialect)
        except ProtocolViolation as exc:
            said, problem = None, exc
        else:
            problem = None
        if isinstance(said, Pong):
            return []  # heartbeats never count against the rate limit
        if member.limiter is not None and not member.limiter.allow():
            rate, burst = self.rate or (0, 0)
            reason = f"rate limit: at most {rate:g} messages/s (bursts of {burst:g})"
            return [Close(member, CloseCode.POLICY_VIOLATION, reason)]
        if problem is not None:
            ref = ref_of(message) if member.dialect is Dialect.JSON else ""
            return [Send(member, Error(problem.reply_code or "bad-message", str(problem), ref))]
        if isinstance(said, Who):
            return [Send(member, Users(self.everyone, self.size))]
        if not isinstance(said, Say):
            return []
        return self._say(member, said, now)

    def _say(self, member: Member, said: Say, now: float) -> list[Action]:
        known = self._refs.get((member.name, said.ref)) if said.ref else None
        if known is None:
            self.stats.note_published(now)
            return [Publish(self.event(EventKind.CHAT, member.name, said.text, said.ref))]
        epoch, seq = known
        # A resend whose ack was lost: acknowledge it again, never publish it twice. Seq 0
        # says it was published before a reset: its number means nothing now.
        if epoch != self.epoch:
            return [Send(member, Ack(0, said.ref))]
        return [Send(member, Ack(seq, said.ref))] if seq <= member.last_seq else []

    def published(self, event: RoomEvent) -> None:
        """The broker numbered ``event``: remember its ref, in case its ack gets lost, and
        learn from it who is in (another server's joins and leaves)."""
        self.presence.seen(event)
        if event.ref:
            self._refs[(event.name, event.ref)] = (self.epoch, event.seq)
            while len(self._refs) > self._remembered_refs:
                self._refs.popitem(last=False)

    # --- what the broker delivers -----------------------------------------------------

    def fan_out(self, event: RoomEvent, backlog: Callable[[Member], int]) -> FanOut:
        """Who gets ``event`` now, and who is too slow for it.

        ``backlog(member)`` is how many bytes already wait to go to that client. Everyone
        gets the same encoded text, except the author, who gets an ``ack``. A client above
        ``max_backlog`` is applied the overflow policy: DROP skips the event for it, as the
        original tutorial did; DISCONNECT closes it with 4001, so it resumes later from the
        last seq it saw and loses nothing.
        """
        plan = FanOut()
        self.last_seq = event.seq
        self.transcript.append(event)
        self.published(event)
        for member in list(self.members.values()):
            if member.waiting is not None:  # still being sent its replay: the event waits
                self._hold(member, event, plan)
            elif event.seq <= member.last_seq:  # it had it already, in its replay
                continue
            elif backlog(member) > self.max_backlog:  # too slow to take more now
                self._overflow(member, event, plan, backlog(member))
            else:
                member.last_seq = event.seq
                self._deliver(member, event, plan)
        self.stats.delivered += sum(len(delivery.to) for delivery in plan.deliveries.values())
        return plan

    def _deliver(self, member: Member, event: RoomEvent, plan: FanOut) -> None:
        if event.kind is EventKind.CHAT and event.name == member.name:
            if member.dialect is Dialect.JSON:  # the author's own message comes back as its ack
                plan.add(member, Ack(event.seq, event.ref), "ack")
        else:
            plan.add(member, event, member.dialect)

    def _rendition(self, member: Member, event: RoomEvent) -> ServerMessage | None:
        if event.kind is EventKind.CHAT and event.name == member.name:
            return Ack(event.seq, event.ref) if member.dialect is Dialect.JSON else None
        return event

    def _hold(self, member: Member, event: RoomEvent, plan: FanOut) -> None:
        assert member.waiting is not None
        if len(member.waiting) < self.max_waiting:
            member.waiting.append(event)
        else:
            self._overflow(member, event, plan, 0)

    def _overflow(self, member: Member, event: RoomEvent, plan: FanOut, waiting_bytes: int) -> None:
        if self.overflow is OverflowPolicy.DROP:
            if member.waiting is None:
                member.last_seq = event.seq  # skipped for good, as the tutorial's channel did
            self.stats.dropped += 1
            return
        self.stats.evicted += 1
        reason = f"too slow: {waiting_bytes} bytes waiting; reconnect with resume={member.last_seq}"
        # The user leaves the room now; the close frame waits behind the backlog.
        plan.actions += self._send_away(member, AppCloseCode.TOO_SLOW, close_reason(reason))

    def reset(self, reset: RoomReset) -> FanOut:
        """The broker lost the room's data: every client starts a new epoch after ``reset.last_seq``.

        Without this a connected client would ignore every new event as already seen. Its
        messages published before the reset whose ack never came are acknowledged with seq
        0 (published, number gone), so it does not resend them.
        """
        plan = FanOut()
        lost = [
            key for key, (epoch, seq) in self._refs.items() if epoch == self.epoch and seq > self.last_seq
        ]
        self.epoch += 1
        self.last_seq = reset.last_seq
        for member in list(self.members.values()):
            if member.waiting is not None:
                member.waiting.append(reset)
                continue
            member.last_seq = reset.last_seq
            plan.add(member, Reset(reset.last_seq), ("reset", member.dialect))
        for name, ref in lost:
            member = self.members.get(name)
            if member is not None and member.dialect is Dialect.JSON:
                plan.add(member, Ack(0, ref), ("ack", name, ref))
        return plan

    # --- leaving ----------------------------------------------------------------------

    def heartbeat_tick(self, now: float, wall_time: float) -> FanOut:
        """The application heartbeat: ping every live json client, drop the silent ones."""
        plan = FanOut()
        policy = self.heartbeat
        if policy is None:
            return plan
        ping = Ping(round(wall_time, 3))
        for member in list(self.members.values()):
            if member.dialect is not Dialect.JSON:
                continue  # plain clients are left to the transport's keepalive
            if policy.verdict(last_heard=member.last_heard, now=now) is Verdict.DEAD:
                silence = now - member.last_heard
                self.dead_after.append(silence)
                plan.actions += self._send_away(member, CloseCode.ABNORMAL_CLOSURE, "", abort=True)
            elif member.waiting is None:
                plan.add(member, ping, "ping")
        return plan

    def disconnect(self, name: str, code: int, reason: str) -> list[Action] | None:
        """Send ``name`` away (an instructor's kick, a test's network failure); None if not here."""
        member = self.members.get(name)
        return None if member is None else self._send_away(member, code, reason)

    def gone(self, member: Member) -> list[Action]:
        """``member``'s connection ended: announce its leave, unless that was done already."""
        if not self._remove(member) or not member.joined:
            return []
        leave = self.presence.left(member.name, len(self.members))
        return [] if leave is None else [Publish(leave)]

    def _send_away(self, member: Member, code: int, reason: str, *, abort: bool = False) -> list[Action]:
        leave = self.gone(member)
        return [*leave, Close(member, code, reason, abort)]

    def _remove(self, member: Member) -> bool:
        """Take ``member`` out of the room; False if it was out already."""
        if not member.present:
            return False
        member.present = False
        if self.members.get(member.name) is member:
            del self.members[member.name]  # frees the name for a reconnect
            self._folded.discard(member.name.casefold())
        return True
