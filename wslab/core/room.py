# long: one state machine (admission, delivery, leaving, moderation); parts with state of their own
# (presence, moderation, refs and in-doubt messages, resume checks, limits) are modules of their own.
"""The chat room without I/O: every decision the chat server makes, as plain method calls.

Like :class:`websockets.protocol.Protocol` under :mod:`websockets.asyncio`, a
:class:`ChatRoom` never touches a socket, a task or a clock it was not given. The shell
hands it each input once (a first message, a client's message, a broker event or reset, a
tick, a connection that ended) and carries out the actions it gets back: messages to send
(:class:`~wslab.core.actions.Send`, or a :class:`~wslab.core.actions.FanOut` of
ready-encoded texts), connections to close, events to publish. What only the shell can do
(ask the broker for history, wait for sends) is an action too, whose result comes back as
the next input: a client gets in by ``hello`` → ``FetchHistory`` → ``history_arrived`` →
``GoLive`` → ``go_live``. :class:`wslab.servers.chat.ChatServer` is the asyncio shell.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .actions import (
    Action,
    ChatStats,
    CheckBroker,
    CheckInDoubt,
    Close,
    FanOut,
    FetchHistory,
    GoLive,
    OverflowPolicy,
    Publish,
    Send,
    close_reason,
)
from .auth import Tokens
from .close_codes import AppCloseCode, CloseCode
from .errors import WslabError
from .heartbeat import HeartbeatPolicy, Verdict
from .history import HistoryTooOld
from .limits import TokenBucket
from .member import Member
from .moderation import KICK_BAR, Moderation, kicked_text, muted_text
from .presence import Presence, PresencePolicy
from .protocol import (
    Ack,
    Dialect,
    Error,
    Hello,
    HistoryLost,
    Live,
    Ping,
    Pong,
    ProtocolViolation,
    Reset,
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
from .refs import Answer, Refs
from .resume_check import Lag, from_lost_numbering, room_behind
from .room_event import MODERATION, BrokerReset, EventKind, RoomEvent

__all__ = ["ChatRoom", "Refused"]


class Refused(WslabError):
    """A hello the room turns down for a reason of its own (no token, room full)."""

    def __init__(self, reply_code: str, text: str, close_code: int = CloseCode.POLICY_VIOLATION) -> None:
        super().__init__(text)
        self.reply_code = reply_code
        self.close_code = close_code


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
            :mod:`wslab.core.presence`); past it, the shell must call :meth:`tick` on a timer.
        kick_bar: seconds a kicked name is refused (see :mod:`wslab.core.moderation`).
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
        kick_bar: float = KICK_BAR,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.server_id = server_id
        self.overflow = OverflowPolicy(overflow)
        self.max_backlog = max_backlog
        self.max_waiting = max_waiting
        self.max_users = max_users
        self.rate = rate
        self.heartbeat = heartbeat
        self.clock = clock
        self.stats = ChatStats()
        self.members: dict[str, Member] = {}
        #: The newest events fanned out, for live views.
        self.transcript: deque[RoomEvent] = deque(maxlen=200)
        #: Seconds of silence after which each dead client was dropped (newest last).
        self.dead_after: deque[float] = deque(maxlen=1000)
        #: Highest sequence number fanned out in this epoch.
        self.last_seq = 0
        #: Where the broker stood when this room's subscription started (see subscribed()).
        self._subscribed_at = 0
        self._tokens = tokens
        self._connections: dict[Any, Member] = {}  # each member by its shell's connection
        self._refs = Refs(remembered_refs)
        self._lag = Lag()
        #: Who is in the whole room, and the joins and leaves a big room announces per tick.
        self.presence = Presence(presence or PresencePolicy(), server_id, self._presence_event)
        self._folded: set[str] = set()  # members' names, casefolded: a name check costs O(1)
        #: The instructor's decisions as this server learned them: who is muted, who is barred.
        self.moderation = Moderation(bar=kick_bar, clock=clock)

    @property
    def epoch(self) -> int:
        """How many times the broker came back without the room's data."""
        return self._refs.epoch

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

    @property
    def tokens(self) -> Tokens | None:
        """What signs and checks the tokens a json hello carries, if the room asks for them."""
        return self._tokens

    def require_tokens(self, tokens: Tokens) -> None:
        """From now on, a json hello must carry a token that ``tokens`` issued for its name
        (lesson 04's web app hands them out); plain clients are refused."""
        self._tokens = tokens

    def event(self, kind: EventKind, name: str, text: str = "", ref: str = "") -> RoomEvent:
        """A new event of this room, from this server, to publish."""
        return RoomEvent(kind, name, text, room=self.name, via=self.server_id, ref=ref)

    def _presence_event(self, kind: EventKind, names: tuple[str, ...], total: int | None) -> RoomEvent:
        if total is None:  # a small room's: one person, as the tutorial announces it
            return self.event(kind, names[0])
        return RoomEvent(
            kind, names[0], room=self.name, via=self.server_id, names=names, count=len(names), total=total
        )

    # --- admission: hello, history, live ------------------------------------------------

    def hello(self, connection: Any, first: str | bytes) -> list[Action]:
        """A connection's first message: admitted (its welcome needs the room's history), or refused.

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
            return [*actions, Send(refused, reply), Close(refused, code, close_reason(str(exc)))]
        self.members[member.name] = member  # claims the name; live events wait in member.waiting
        self._connections[connection] = member
        self._folded.add(member.name.casefold())
        # With the client's fingerprint of its last event, fetch that one too: see history_arrived.
        after = member.resume
        if after and member.fingerprint is not None:
            after -= 1
        return [*actions, self._fetch(member, after)]

    def _take_over(self, hello: Hello) -> list[Action]:
        holder = self.members.get(hello.name.strip())
        if holder is None or hello.resume is None or self._tokens is None:
            return []
        self._tokens.verify(hello.token, hello.name.strip())
        self._remove(holder)
        return [Close(holder, AppCloseCode.REPLACED, "replaced by a newer connection")]

    def _check(self, connection: Any, hello: Hello) -> Member:
        if self._tokens is not None:
            if hello.dialect is Dialect.PLAIN:
                raise Refused("token-required", "this server needs the json hello with a token")
            self._tokens.verify(hello.token, hello.name.strip())
        name = validate_username(hello.name, taken=self._folded, folded=True)
        if (barred := self.moderation.barred_for(name)) > 0:
            text = f"the instructor removed {name!r} from the room; try again in {math.ceil(barred / 60)} min"
            raise Refused("kicked", text, AppCloseCode.KICKED)
        if self.full:
            raise Refused(
                "room-full",
                f"the room is full ({self.max_users} people); try again later",
                CloseCode.TRY_AGAIN_LATER,
            )
        rate = self.rate
        limiter = None if rate is None else TokenBucket(rate=rate[0], burst=rate[1], clock=self.clock)
        member = Member(connection, name, hello.dialect, hello.resume, hello.last, limiter=limiter)
        member.last_heard = self.clock()
        return member

    def history_arrived(
        self, member: Member, last_seq: int, history: list[RoomEvent] | HistoryTooOld
    ) -> list[Action]:
        """The broker's answer to :class:`FetchHistory`: the room's last seq, and the events after
        what ``member`` asked for (or :class:`HistoryTooOld`, when they are gone).

        What to send, in order: the welcome, then what the member missed; then, once that is
        sent, :class:`GoLive`. Lost history is said (``history-lost``) and the replay starts
        at the oldest event kept instead.
        """
        if not member.present:
            return []  # replaced or sent away meanwhile
        actions: list[Action] = []
        if not member.welcomed:
            kept = history if isinstance(history, list) else []
            if from_lost_numbering(member.resume, member.fingerprint, last_seq, kept):
                # From a numbering the broker lost: fetch the new one from its start first.
                member.lost_after, member.resume = member.resume, 0
                return [self._fetch(member, 0)]
            if self._lag.holds_back(room_behind(*member.room_mark, last_seq, kept), self.clock()):
                reason = "this server is catching up with its message broker; try again"
                return [CheckBroker(), *self._send_away(member, CloseCode.TRY_AGAIN_LATER, reason)]
            member.welcomed = True
            actions.append(Send(member, self._welcome(member, last_seq)))
            if member.lost_after is not None:  # say what it may have missed, then replay anew
                actions.append(Send(member, Reset.lost(0, member.lost_after)))
        if isinstance(history, HistoryTooOld):
            # It has up to member.last_seq (the fetch may have started one earlier, to check it).
            first = max(history.wanted_after, member.last_seq) + 1
            member.last_seq = history.oldest - 1
            lost = HistoryLost(first, history.oldest - 1, str(HistoryTooOld(first - 1, history.oldest)))
            return [*actions, Send(member, lost), FetchHistory(member, member.last_seq)]
        return [*actions, *self._replay(member, history), GoLive(member)]

    def _fetch(self, member: Member, after: int | None) -> FetchHistory:
        """Ask for ``member``'s history, noting where this room is: the broker's answer, read
        later, can never be behind it in the same numbering (see history_arrived)."""
        mine = self.transcript[-1] if self.transcript else None
        member.room_mark = (self.last_seq, mine if mine is not None and mine.seq == self.last_seq else None)
        return FetchHistory(member, after)

    def subscribed(self, last_seq: int) -> None:
        """The shell subscribed to the room when the broker stood at ``last_seq``: every later
        event will be fanned out here, so this room's picture of the room starts there.

        Kept apart from :attr:`last_seq`, which says what was fanned out, and which the check
        for a broker that lost its numbering compares with the broker's answers."""
        self._subscribed_at = last_seq

    def _welcome(self, member: Member, room_seq: int) -> ServerMessage:
        # A big room's welcome has the count, not the names: N of them to each of N
        # newcomers would be N² again, in bytes.
        big = self.presence.big(len(self.members))
        users, count = ([], self.size) if big else (self.everyone, None)
        if member.resume is None:
            # A newcomer sees the room as this server knows it, as of the last event it fanned
            # out; what the broker numbered since reaches the newcomer when it arrives here.
            room_seq = min(room_seq, max(self.last_seq, self._subscribed_at))
        if member.dialect is Dialect.PLAIN:
            member.last_seq = room_seq
            return Welcome(member.name, room_seq, users, self.server_id, count=count)
        member.last_seq = room_seq if member.resume is None else min(member.resume, room_seq)
        beat = self.heartbeat
        timing = (beat.interval, beat.timeout) if beat is not None else None
        return Welcome(member.name, room_seq, users, self.server_id, timing, self.rate, count)

    def _replay(self, member: Member, items: Iterable[RoomEvent]) -> list[Action]:
        """What ``member`` is sent, one awaited send at a time, of what it has not had yet."""
        sends: list[Action] = []
        for item in items:
            if item.seq > member.last_seq:
                member.last_seq = item.seq
                message = self._rendition(member, item)
                if message is not None:
                    sends.append(Send(member, message))
        return sends

    def go_live(self, member: Member) -> list[Action]:
        """``member``'s sends so far are done: what arrived for it meanwhile, or live.

        Events that arrived while it was sent its replay come first; once none wait, the
        member is live (from now on :meth:`fan_out` includes it), a json client is told so,
        and its join is published (a big room announces it at the next :meth:`tick`).
        """
        if not member.present:
            return []
        if member.waiting:
            waiting, member.waiting = member.waiting, []
            return [*self._replay(member, waiting), GoLive(member)]
        member.waiting = None
        live: list[Action] = [Send(member, Live(member.last_seq))] if member.dialect is Dialect.JSON else []
        join = self.presence.joined(member.name, len(self.members))
        member.joined = join is None  # announced with the tick's; else once published()
        return live if join is None else [*live, Publish(join)]

    def tick(self, now: float) -> list[Action]:
        """The shell's timer: a big room's joins and leaves since the last tick, coalesced."""
        return [Publish(event) for event in self.presence.tick(now, len(self.members))]

    # --- what clients say -------------------------------------------------------------

    def receive(self, connection: Any, message: str | bytes) -> list[Action]:
        """What to do about a message on ``connection``: publish it, answer it, or close."""
        member = self._connections.get(connection)
        if member is None:
            return []  # refused, replaced or sent away: it is closing
        member.last_heard = now = self.clock()
        said: Say | Pong | Who | None = None
        problem: ProtocolViolation | None = None
        try:
            said = parse_client_message(message, member.dialect)
        except ProtocolViolation as exc:
            problem = exc
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
        if self.moderation.is_muted(member.name):
            return [Send(member, Error("muted", muted_text(), said.ref))]
        answer = self._refs.answer((member.name, said.ref)) if said.ref else Answer.PUBLISH
        if answer is Answer.PUBLISH:
            self.stats.note_published(now)
            return [Publish(self.event(EventKind.CHAT, member.name, said.text, said.ref))]
        if answer is Answer.WAIT:
            return []  # in doubt across a reset: the new numbering settles it
        # A resend whose ack was lost: acknowledge it again, never publish it twice.
        return [Send(member, Ack(answer, said.ref))] if answer <= member.last_seq else []

    def published(self, event: RoomEvent) -> None:
        """The broker numbered ``event``: remember its ref, in case its ack gets lost, and
        learn from it who is in (another server's joins and leaves; this server's own join,
        now announced)."""
        self._learn(event, own=True)

    def _learn(self, event: RoomEvent, *, own: bool) -> None:
        self.presence.seen(event)
        if event.ref:
            self._refs.numbered(event, own=own)
        elif event.kind is EventKind.JOIN and event.via == self.server_id and not event.names:
            member = self.members.get(event.name)
            if member is not None:
                member.joined = True

    # --- what the broker delivers -----------------------------------------------------

    def fan_out(self, event: RoomEvent) -> FanOut:
        """Who gets ``event``: each text once, with its recipients.

        Everyone gets the same encoded text, except the author, who gets an ``ack``. Whether
        a client can take one more message is the shell's to see, as it writes (a client's
        backlog is I/O): it skips those with more than ``max_backlog`` bytes waiting and
        hands them to :meth:`too_slow`. The first write need not wait for a look at every
        client's buffer.
        """
        plan = FanOut(before=self.last_seq)
        self.last_seq = event.seq
        if event.kind in MODERATION:
            self._moderated(event, plan)
        self.transcript.append(event)
        if self._news(event):
            self._learn(event, own=False)  # this server's own events were taken in when published
        if event.ref:
            self._refs.delivered(event)
        for name, ref in self._refs.in_doubt.settle(event) if self._refs.in_doubt else ():  # gone
            if (author := self.members.get(name)) is not None and author.dialect is Dialect.JSON:
                plan.add(author, Ack(0, ref), ("ack", name, ref))
        for member in list(self.members.values()):
            if member.waiting is not None:  # still being sent its replay: the event waits
                self._hold(member, event, plan)
            elif event.seq > member.last_seq:  # else it had it already, in its replay
                member.last_seq = event.seq
                self._deliver(member, event, plan)
        self.stats.delivered += sum(len(delivery.to) for delivery in plan.deliveries.values())
        return plan

    def too_slow(self, plan: FanOut, slow: Iterable[tuple[Member, int]]) -> list[Action]:
        """The shell did not write ``plan`` to these clients: each had more than ``max_backlog``
        bytes waiting (the number beside it). The overflow policy applies: DROP skips the
        message for it, as the original tutorial did; DISCONNECT closes it with 4001, so it
        resumes later from the last seq it got and loses nothing."""
        actions: list[Action] = []
        for member, waiting_bytes in slow:
            if plan.before is not None:  # an event's fan-out, counted as delivered: it was not
                self.stats.delivered -= 1
                if self.overflow is OverflowPolicy.DISCONNECT:
                    member.last_seq = min(member.last_seq, plan.before)  # it resumes from what it got
            if member.present:
                actions += self._overflow(member, waiting_bytes)
        return actions

    def moderate(self, kind: EventKind, name: str = "", reason: str = "") -> list[Action]:
        """An instructor's kick (``reason``: for the person kicked), mute, unmute or clear: published,
        and applied by every server as it arrives (:meth:`fan_out`); ``ModerationError`` for nobody."""
        target = self.moderation.target(kind, name, self.everyone)
        return [Publish(self.event(kind, target, reason if kind is EventKind.KICK else ""))]

    def _moderated(self, event: RoomEvent, plan: FanOut) -> None:
        """A decision arrived: remember it; send away the person kicked, if connected here."""
        self.moderation.learn(event)
        if event.kind is EventKind.CLEAR:
            self.transcript.clear()
        target = self.members.get(event.name) if event.kind is EventKind.KICK else None
        if target is not None:  # the reason, then the close: the push goes out before the frame
            plan.add(target, Error("kicked", kicked_text(event.text)), ("kicked", target.name))
            why = close_reason(f"kicked: {event.text}" if event.text else "kicked")
            plan.actions += self._send_away(target, AppCloseCode.KICKED, why)

    def _news(self, event: RoomEvent) -> bool:
        """Whether ``event`` tells the room what :meth:`published` has not: another server's
        event, or one of its own messages numbered in another epoch (a reset came between)."""
        if event.via != self.server_id:
            return True
        return bool(event.ref) and self._refs.is_news(event)

    def _deliver(self, member: Member, event: RoomEvent, plan: FanOut) -> None:
        # The name first: it differs for all but one member, and comparing two strings costs
        # less than looking up EventKind.CHAT (an attribute hook on Enum classes before 3.12).
        if event.name == member.name and event.kind is EventKind.CHAT:
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
            plan.actions += self._overflow(member, 0)

    def _overflow(self, member: Member, waiting_bytes: int) -> list[Action]:
        if self.overflow is OverflowPolicy.DROP:
            self.stats.dropped += 1
            return []
        self.stats.evicted += 1
        reason = f"too slow: {waiting_bytes} bytes waiting; reconnect with resume={member.last_seq}"
        # The user leaves the room now; the close frame waits behind the backlog.
        return self._send_away(member, AppCloseCode.TOO_SLOW, close_reason(reason))

    def reset(self, reset: BrokerReset) -> FanOut:
        """The broker lost the room's data: every client starts a new epoch after ``reset.last_seq``.

        Without this a connected client would ignore every new event as already seen. Messages
        published but not delivered before it stay in doubt until the new numbering settles them
        (:mod:`wslab.core.in_doubt`), read at once from the new numbering (:class:`CheckInDoubt`);
        the client never resends them. Each client is told after which seq it may have missed some.
        """
        plan = FanOut()
        self._refs.reset()
        self.last_seq, self._subscribed_at = reset.last_seq, 0
        for member in list(self.members.values()):
            if member.waiting is not None:  # still joining: its replay may be of either numbering
                reason = "the room's history was reset while you joined; try again"
                plan.actions += self._send_away(member, CloseCode.TRY_AGAIN_LATER, reason)
                continue
            lost_after, member.last_seq = member.last_seq, reset.last_seq
            plan.add(member, Reset.lost(reset.last_seq, lost_after), ("reset", member.dialect, lost_after))
        if self._refs.in_doubt:
            plan.actions.append(CheckInDoubt(self._refs.in_doubt.first - 1))
        return plan

    def in_doubt_checked(self, kept: list[RoomEvent]) -> list[Action]:
        """The broker's answer to :class:`CheckInDoubt`: its new numbering's events. A message in
        doubt not among them is gone; its author is told (an ack with seq 0) and never resends it."""
        return [*self._gone(self._refs.in_doubt.check(kept))]

    def _gone(self, keys: list[tuple[str, str]]) -> Iterable[Send]:
        for name, ref in keys:
            if (author := self.members.get(name)) is not None and author.dialect is Dialect.JSON:
                yield Send(author, Ack(0, ref))

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
        """Close ``name``'s connection here (a test's network failure); None if not here. An
        instructor's kick is :meth:`moderate`: it reaches every server, and tells the person why."""
        member = self.members.get(name)
        return None if member is None else self._send_away(member, code, reason)

    def gone(self, connection: Any) -> list[Action]:
        """``connection`` ended: announce its member's leave, unless that was done already."""
        member = self._connections.get(connection)
        return [] if member is None else self._leave(member)

    def _leave(self, member: Member) -> list[Action]:
        if not self._remove(member) or not member.joined:
            return []
        leave = self.presence.left(member.name, len(self.members))
        return [] if leave is None else [Publish(leave)]

    def _send_away(self, member: Member, code: int, reason: str, *, abort: bool = False) -> list[Action]:
        return [*self._leave(member), Close(member, code, reason, abort)]

    def _remove(self, member: Member) -> bool:
        """Take ``member`` out of the room; False if it was out already."""
        if not member.present:
            return False
        member.present = False
        if self._connections.get(member.connection) is member:
            del self._connections[member.connection]
        if self.members.get(member.name) is member:
            del self.members[member.name]  # frees the name for a reconnect
            self._folded.discard(member.name.casefold())
        return True
