"""The chat room without sockets: each decision, from its inputs to the actions it returns."""

from __future__ import annotations

import json

import pytest
from helpers import Clock, NumberingBroker, hello, live_member, say, shell, texts

from wslab.core.actions import (
    CheckBroker,
    CheckInDoubt,
    Close,
    FetchHistory,
    GoLive,
    OverflowPolicy,
    Publish,
    Send,
)
from wslab.core.auth import Tokens
from wslab.core.close_codes import AppCloseCode
from wslab.core.heartbeat import HeartbeatPolicy
from wslab.core.history import HistoryTooOld
from wslab.core.member import Member
from wslab.core.protocol import Ack, Dialect, Error, HistoryLost, Live, Reset, Welcome, encode
from wslab.core.room import ChatRoom
from wslab.core.room_event import BrokerReset, EventKind, RoomEvent

# --- admission --------------------------------------------------------------------------


def test_a_json_hello_is_admitted_and_claims_the_name() -> None:
    room = ChatRoom(clock=Clock())
    [fetch] = room.hello("c1", hello("ana"))
    assert isinstance(fetch, FetchHistory) and fetch.after is None  # its welcome needs the room's seq
    member = fetch.member
    assert (member.name, member.dialect, member.connection) == ("ana", Dialect.JSON, "c1")
    assert room.users == ["ana"]


@pytest.mark.parametrize(
    ("first", "code", "close"),
    [
        ("", "name-empty", 1008),
        ("system", "name-reserved", 1008),
        ('{"type": "hello"}', "bad-hello", 1008),
        (b"\x00", "bad-hello", 1008),
    ],
)
def test_a_bad_hello_gets_an_error_reply_and_a_close(first: str | bytes, code: str, close: int) -> None:
    room = ChatRoom(clock=Clock())
    actions = room.hello("c1", first)
    assert room.users == []
    send, closing = actions
    assert isinstance(send, Send) and isinstance(send.message, Error) and send.message.code == code
    assert isinstance(closing, Close) and closing.code == close
    assert room.stats.rejected == 1


def test_a_taken_name_is_refused_case_insensitively_in_the_plain_dialect_too() -> None:
    room = ChatRoom(clock=Clock())
    live_member(room, "ana")
    actions = room.hello("c2", "ANA")
    assert [type(a) for a in actions] == [Send, Close]
    assert actions[0].text() == "error: the username 'ANA' is already taken"  # type: ignore[union-attr]


def test_a_full_room_says_try_again_later() -> None:
    room = ChatRoom(max_users=1, clock=Clock())
    live_member(room, "ana")
    actions = room.hello("c2", hello("ben"))
    assert [type(a) for a in actions] == [Send, Close]
    assert actions[0].message.code == "room-full"  # type: ignore[union-attr]
    assert actions[1].code == 1013  # type: ignore[union-attr]


def test_tokens_are_required_and_a_proven_reconnect_takes_over_without_a_leave() -> None:
    tokens = Tokens(secret=b"k" * 32, clock=lambda: 1000.0)
    room = ChatRoom(tokens=tokens, clock=Clock())
    refused = room.hello("c0", "ana")  # plain: cannot carry a token
    assert refused[0].message.code == "token-required"  # type: ignore[union-attr]
    refused = room.hello("c0", hello("ana", token="forged"))
    assert refused[0].message.code == "bad-token"  # type: ignore[union-attr]
    old = live_member(room, "ana", hello("ana", token=tokens.issue("ana")))
    actions = room.hello("c2", hello("ana", token=tokens.issue("ana"), resume=0))
    new = room.members["ana"]
    assert new is not old
    assert actions == [
        Close(old, AppCloseCode.REPLACED, "replaced by a newer connection"),
        FetchHistory(new, 0),
    ]
    assert room.gone(old.connection) == []  # the old connection ending announces nothing: ana never left


# --- catch-up ---------------------------------------------------------------------------


def test_a_resuming_client_is_welcomed_replayed_then_live() -> None:
    room = ChatRoom(server_id="s1", clock=Clock())
    [fetch] = room.hello("c1", hello("ana", resume=2))
    member = fetch.member
    assert fetch == FetchHistory(member, 2)
    history = [RoomEvent(EventKind.CHAT, "ben", f"m{seq}", seq=seq) for seq in (3, 4, 5)]
    history[1] = RoomEvent(EventKind.CHAT, "ana", "mine", seq=4, ref="ana-1")
    assert room.history_arrived(member, 5, history) == [
        Send(member, Welcome("ana", 5, ["ana"], "s1")),
        Send(member, history[0]),
        Send(member, Ack(4, "ana-1")),
        Send(member, history[2]),
        GoLive(member),
    ]
    # An event fanned out during the replay waits, then goes first, then live, then the join.
    waiting = RoomEvent(EventKind.JOIN, "cy", seq=6)
    assert texts(room.fan_out(waiting)) == {}
    assert room.go_live(member) == [Send(member, waiting), GoLive(member)]
    send, join = room.go_live(member)
    assert send == Send(member, Live(6)) and isinstance(join, Publish) and join.event.name == "ana"


def test_a_newcomer_welcomed_while_the_broker_is_ahead_of_the_room_still_hears_what_it_missed() -> None:
    """Another server's join, numbered before the newcomer's welcome, reaches this room after it."""
    room = ChatRoom(server_id="s1", clock=Clock())
    [fetch] = room.hello("c1", hello("ana"))
    actions = room.history_arrived(fetch.member, 1, [])  # the broker numbered bob's join already
    assert actions[0] == Send(fetch.member, Welcome("ana", 0, ["ana"], "s1"))
    shell(room, actions)
    bobs_join = RoomEvent(EventKind.JOIN, "bob", seq=1, via="s2")
    assert texts(room.fan_out(bobs_join)) == {"ana": [encode(bobs_join)]}
    assert room.everyone == ["ana", "bob"]
    # Someone who comes later is told of bob in the welcome itself.
    [fetch] = room.hello("c2", hello("cy"))
    assert room.history_arrived(fetch.member, 1, [])[0] == Send(
        fetch.member, Welcome("cy", 1, ["ana", "cy", "bob"], "s1")
    )


def test_a_room_that_subscribes_late_starts_its_picture_where_the_subscription_starts() -> None:
    """A server started beside a busy room: its newcomers start at seq 40, not 0 (no false gap)."""
    room = ChatRoom(server_id="s1", clock=Clock())
    room.subscribed(40)
    [fetch] = room.hello("c1", hello("ana"))
    assert room.history_arrived(fetch.member, 41, [])[0] == Send(
        fetch.member, Welcome("ana", 40, ["ana"], "s1")
    )


def test_lost_history_is_announced_and_replay_starts_at_the_oldest_kept() -> None:
    room = ChatRoom(clock=Clock())
    [fetch] = room.hello("c1", hello("ana", resume=1))
    member, lost = fetch.member, HistoryTooOld(1, 41)
    welcome, said, again = room.history_arrived(member, 50, lost)
    assert isinstance(welcome, Send) and isinstance(welcome.message, Welcome)
    assert said == Send(member, HistoryLost(2, 40, str(lost))) and again == FetchHistory(member, 40)
    assert room.history_arrived(member, 50, []) == [GoLive(member)]  # welcomed once


# --- what clients say -------------------------------------------------------------------


def test_a_message_is_published_stripped_and_numbered_by_the_broker_not_the_room() -> None:
    room = ChatRoom(server_id="s1", clock=Clock())
    ana = live_member(room, "ana")
    [publish] = room.receive(ana.connection, say("  hello  ", "ana-1"))
    assert isinstance(publish, Publish)
    assert (publish.event.text, publish.event.ref, publish.event.seq, publish.event.via) == (
        "hello",
        "ana-1",
        0,
        "s1",
    )
    assert room.stats.published == 1


def test_a_malformed_message_gets_an_error_naming_its_ref() -> None:
    room = ChatRoom(clock=Clock())
    ana = live_member(room, "ana")
    [reply] = room.receive(ana.connection, json.dumps({"type": "chat", "text": "x" * 5000, "ref": "ana-9"}))
    assert isinstance(reply, Send) and reply.message == Error(
        "bad-message", "a message has at most 4000 characters", "ana-9"
    )
    assert room.receive(ana.connection, '{"type": "pong", "t": 1}') == []


def test_the_rate_limit_closes_with_1008_and_pongs_do_not_count() -> None:
    clock = Clock()
    room = ChatRoom(rate=(1, 2), clock=clock)
    ana = live_member(room, "ana")
    for _ in range(5):
        assert room.receive(ana.connection, '{"type": "pong"}') == []
    assert all(isinstance(a, Publish) for m in ("a", "b") for a in room.receive(ana.connection, say(m)))
    [closing] = room.receive(ana.connection, say("c"))
    assert isinstance(closing, Close) and closing.code == 1008 and "rate limit" in closing.reason
    clock.now += 10  # tokens refill with time
    assert isinstance(room.receive(ana.connection, say("d"))[0], Publish)


def test_a_resent_ref_is_acknowledged_not_published_twice() -> None:
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    ana = live_member(room, "ana")
    [publish] = room.receive(ana.connection, say("once", "ana-1"))
    numbered = broker.number(publish.event)  # type: ignore[union-attr]
    room.published(numbered)
    assert room.receive(ana.connection, say("once", "ana-1")) == []  # its ack is on the way: nothing to do
    assert texts(room.fan_out(numbered)) == {"ana": ['{"type":"ack","seq":1,"ref":"ana-1"}']}
    assert room.receive(ana.connection, say("once", "ana-1")) == [Send(ana, Ack(1, "ana-1"))]
    assert room.stats.published == 1


# --- fan-out ----------------------------------------------------------------------------


def test_fan_out_encodes_once_per_dialect_and_acks_the_author() -> None:
    room = ChatRoom(clock=Clock())
    ana, ben, cy = live_member(room, "ana"), live_member(room, "ben"), live_member(room, "cy")
    plain = live_member(room, "pat", "pat")
    event = RoomEvent(EventKind.CHAT, "ana", "hi", seq=1, via="s1", ref="ana-1")
    plan = room.fan_out(event)
    assert len(plan.deliveries) == 3  # json, plain, and ana's ack: three encodings for four people
    assert texts(plan) == {
        "ana": ['{"type":"ack","seq":1,"ref":"ana-1"}'],
        "ben": [event.to_wire()],
        "cy": [event.to_wire()],
        "pat": ["[ana] hi"],
    }
    assert (ana.last_seq, ben.last_seq, cy.last_seq, plain.last_seq) == (1, 1, 1, 1)
    assert room.fan_out(event).deliveries == {}  # a duplicate reaches nobody
    assert room.stats.delivered == 4 and list(room.transcript)[-1] == event


def test_a_plain_author_never_gets_its_own_line_back() -> None:
    room = ChatRoom(clock=Clock())
    live_member(room, "pat", "pat")
    assert texts(room.fan_out(RoomEvent(EventKind.CHAT, "pat", "hi", seq=1))) == {}


def test_a_slow_client_is_disconnected_with_4001_and_its_leave_published() -> None:
    room = ChatRoom(max_backlog=1000, clock=Clock())
    ana, slow = live_member(room, "ana"), live_member(room, "slow")
    event = RoomEvent(EventKind.CHAT, "ana", "hi", seq=1)
    plan = room.fan_out(event)
    assert texts(plan) == {"ana": ['{"type":"ack","seq":1,"ref":""}'], "slow": [encode(event)]}
    # The shell found 5000 bytes waiting for slow, and did not write to it.
    leave, closing = room.too_slow(plan, [(slow, 5000)])
    assert isinstance(leave, Publish) and leave.event.kind is EventKind.LEAVE and leave.event.name == "slow"
    assert isinstance(closing, Close) and closing.code == AppCloseCode.TOO_SLOW
    assert closing.reason == "too slow: 5000 bytes waiting; reconnect with resume=0"
    assert room.users == ["ana"] and room.stats.evicted == 1 and room.stats.delivered == 1
    assert (
        room.gone(slow.connection) == []
    )  # evicted means gone: its connection ending publishes nothing more
    assert ana.last_seq == 1 and slow.last_seq == 0


def test_the_drop_policy_skips_events_for_a_slow_client_and_counts_them() -> None:
    room = ChatRoom(max_backlog=1000, overflow=OverflowPolicy.DROP, clock=Clock())
    slow = live_member(room, "slow")
    plan = room.fan_out(RoomEvent(EventKind.JOIN, "x", seq=1))
    assert room.too_slow(plan, [(slow, 5000)]) == []
    assert slow.last_seq == 1 and room.stats.dropped == 1 and room.users == ["slow"]
    assert room.stats.delivered == 0


def test_too_many_events_waiting_during_a_replay_count_as_too_slow() -> None:
    room = ChatRoom(max_waiting=2, clock=Clock())
    [fetch] = room.hello("c1", hello("ana", resume=0))
    room.history_arrived(fetch.member, 0, [])
    for seq in (1, 2):
        assert room.fan_out(RoomEvent(EventKind.JOIN, f"u{seq}", seq=seq)).actions == []
    plan = room.fan_out(RoomEvent(EventKind.JOIN, "u3", seq=3))
    assert [type(a) for a in plan.actions] == [Close]  # it never joined: no leave to publish
    assert plan.actions[0].code == AppCloseCode.TOO_SLOW  # type: ignore[union-attr]


# --- broker reset -----------------------------------------------------------------------


def test_a_broker_reset_starts_a_new_epoch_for_everyone_and_later_events_arrive() -> None:
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    ana, _ = live_member(room, "ana"), live_member(room, "ben")
    plain = live_member(room, "pat", "pat")
    for text in ("a", "b", "c"):
        room.fan_out(broker.number(RoomEvent(EventKind.CHAT, "ben", text)))
    assert ana.last_seq == 3
    plan = room.reset(BrokerReset("lobby", 0))
    # Each json client is told after which seq of the old numbering it may have missed some (plain: no line).
    assert texts(plan) == {"ana": [Reset.lost(0, 3).to_json()], "ben": [Reset.lost(0, 3).to_json()]}
    assert "messages after seq 3 that had not reached you are gone" in Reset.lost(0, 3).text
    after = RoomEvent(EventKind.CHAT, "ben", "after the reset", seq=1)
    assert texts(room.fan_out(after)) == {
        "ana": [after.to_wire()],
        "ben": ['{"type":"ack","seq":1,"ref":""}'],
        "pat": ["[ben] after the reset"],
    }
    assert (ana.last_seq, plain.last_seq, room.epoch) == (1, 1, 1)


def test_a_message_whose_ack_was_lost_in_a_reset_is_acknowledged_and_never_published_again() -> None:
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    ana, ben = live_member(room, "ana"), live_member(room, "ben")
    [publish] = room.receive(ana.connection, say("lost ack", "ana-1"))
    room.published(broker.number(publish.event))  # type: ignore[union-attr]
    # The broker restarts empty before the subscription delivered seq 1: in doubt for now.
    plan = room.reset(BrokerReset("lobby", 0))
    assert texts(plan) == {"ana": [Reset.lost(0, 0).to_json()], "ben": [Reset.lost(0, 0).to_json()]}
    assert plan.actions == [CheckInDoubt(0)]  # read the new numbering from ana's seq on
    # The client resends anyway (say, it reconnected first): not published again.
    assert room.receive(ana.connection, say("lost ack", "ana-1")) == []
    # The new numbering reaches seq 1 with another message: ana's died with the old broker.
    other = RoomEvent(EventKind.CHAT, "ben", "first of the new numbering", seq=1, ref="ben-1")
    assert texts(room.fan_out(other)) == {
        "ana": ['{"type":"ack","seq":0,"ref":"ana-1"}', other.to_wire()],
        "ben": ['{"type":"ack","seq":1,"ref":"ben-1"}'],
    }
    assert room.receive(ana.connection, say("lost ack", "ana-1")) == [Send(ana, Ack(0, "ana-1"))]
    assert room.stats.published == 1 and ben.last_seq == 1


def test_a_message_the_new_broker_numbered_before_the_reset_arrived_is_delivered_not_called_lost() -> None:
    """A publish can return from the broker that came back before the subscription says it reset."""
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    ana = live_member(room, "ana")
    for text in ("a", "b"):
        room.fan_out(broker.number(RoomEvent(EventKind.CHAT, "ben", text)))
    [publish] = room.receive(ana.connection, say("just after the crash", "ana-1"))
    numbered = publish.event.with_seq(1)  # type: ignore[union-attr]
    room.published(numbered)  # seq 1 of the NEW numbering, which the room does not know of yet
    assert texts(room.reset(BrokerReset("lobby", 0))) == {"ana": [Reset.lost(0, 2).to_json()]}
    assert texts(room.fan_out(numbered)) == {"ana": ['{"type":"ack","seq":1,"ref":"ana-1"}']}
    # A resend is acknowledged again under its number, not published twice.
    assert room.receive(ana.connection, say("just after the crash", "ana-1")) == [Send(ana, Ack(1, "ana-1"))]
    assert room.stats.published == 1


def test_a_reset_while_a_client_joins_sends_it_away_to_join_again() -> None:
    """Its replay may be of the old numbering or the new one: it starts again, cleanly."""
    room = ChatRoom(clock=Clock())
    [fetch] = room.hello("c1", hello("ana", resume=5))
    member = fetch.member
    room.history_arrived(member, 9, [])
    plan = room.reset(BrokerReset("lobby", 0))
    reason = "the room's history was reset while you joined; try again"
    assert plan.actions == [Close(member, 1013, reason)] and texts(plan) == {}
    assert room.go_live(member) == [] and room.users == []


def test_a_message_in_doubt_is_settled_by_reading_the_new_numbering_not_by_waiting_for_it() -> None:
    """A quiet room: the new numbering never reaches the old seq, yet the author hears at once."""
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    ana, ben = live_member(room, "ana"), live_member(room, "ben")
    for text in ("a", "b", "c"):
        room.fan_out(broker.number(RoomEvent(EventKind.CHAT, "ben", text)))
    gone, kept = (room.receive(m.connection, say(m.name, f"{m.name}-1"))[0] for m in (ana, ben))
    room.published(gone.event.with_seq(4))  # type: ignore[union-attr]  # by the broker that died
    room.published(kept.event.with_seq(1))  # type: ignore[union-attr]  # by the one that came back
    plan = room.reset(BrokerReset("lobby", 0))
    assert plan.actions == [CheckInDoubt(0)]  # both undelivered: read the new numbering from 1 on
    # The new numbering has ben's message under 1, and not ana's under 4: it died with the old broker.
    new_numbering = [kept.event.with_seq(1)]  # type: ignore[union-attr]
    assert room.in_doubt_checked(new_numbering) == [Send(ana, Ack(0, "ana-1"))]
    assert room.receive(ana.connection, say("ana", "ana-1")) == [Send(ana, Ack(0, "ana-1"))]
    assert texts(room.fan_out(new_numbering[0])) == {
        "ana": [new_numbering[0].to_wire()],
        "ben": ['{"type":"ack","seq":1,"ref":"ben-1"}'],
    }


def resuming(room: ChatRoom, name: str, resume: int, last: str | None) -> Member:
    fields: dict[str, object] = {"resume": resume} if last is None else {"resume": resume, "last": last}
    [fetch] = room.hello(f"c-{name}", hello(name, **fields))
    assert isinstance(fetch, FetchHistory)
    assert fetch.after == (resume - 1 if last else resume)  # with a fingerprint: that event too
    return fetch.member


def test_a_resume_from_a_numbering_the_broker_lost_is_told_and_replays_the_new_one() -> None:
    room = ChatRoom(clock=Clock())
    new = [RoomEvent(EventKind.CHAT, "ben", f"new {seq}", seq=seq) for seq in (1, 2, 3)]
    # Away at seq 7 of the old numbering; the new one has reached 3: past it, certainly old.
    member = resuming(room, "cleo", 7, None)
    assert room.history_arrived(member, 3, []) == [FetchHistory(member, 0)]  # the new numbering, first
    welcome, reset, *replay = room.history_arrived(member, 3, new)
    assert isinstance(welcome, Send) and welcome.message.seq == 3  # type: ignore[union-attr]
    assert reset == Send(member, Reset.lost(0, 7))
    assert replay == [*(Send(member, e) for e in new), GoLive(member)]
    # Away at seq 2 of the old numbering, which the new one has reached with another event.
    old_two = RoomEvent(EventKind.CHAT, "ana", "old 2", seq=2)
    member = resuming(room, "dan", 2, old_two.fingerprint)
    assert room.history_arrived(member, 3, new[1:]) == [FetchHistory(member, 0)]
    assert room.history_arrived(member, 3, new)[1] == Send(member, Reset.lost(0, 2))


def test_a_server_whose_subscription_has_not_seen_the_reset_yet_sends_newcomers_away_for_a_moment() -> None:
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    live_member(room, "ana")
    for text in ("a", "b", "c", "d"):
        room.fan_out(broker.number(RoomEvent(EventKind.CHAT, "ben", text)))
    # The broker came back empty and has numbered 2 events; this room is still at seq 4.
    [fetch] = room.hello("c-cleo", hello("cleo"))
    check, close = room.history_arrived(fetch.member, 2, [])
    assert close == Close(fetch.member, 1013, "this server is catching up with its message broker; try again")
    assert check == CheckBroker()  # and its subscription looks at the room again
    # The same seq with another event under it gives it away too.
    other = RoomEvent(EventKind.CHAT, "eve", "not d", seq=4)
    [fetch] = room.hello("c-dan", hello("dan", resume=3, last="00000000"))
    assert isinstance(room.history_arrived(fetch.member, 4, [other])[-1], Close)


def test_a_resume_whose_event_is_the_broker_s_goes_on_after_it() -> None:
    room = ChatRoom(clock=Clock())
    new = [RoomEvent(EventKind.CHAT, "ben", f"new {seq}", seq=seq) for seq in (1, 2, 3)]
    member = resuming(room, "cleo", 2, new[1].fingerprint)
    _, *rest = room.history_arrived(member, 3, new[1:])
    assert rest == [Send(member, new[2]), GoLive(member)]


# --- presence, leaving, heartbeat ---------------------------------------------------------


def test_a_leave_is_published_once_and_only_after_a_join() -> None:
    room = ChatRoom(server_id="s1", clock=Clock())
    ana = live_member(room, "ana")
    [leave] = room.gone(ana.connection)
    assert isinstance(leave, Publish) and (leave.event.kind, leave.event.name) == (EventKind.LEAVE, "ana")
    assert room.gone(ana.connection) == [] and room.users == []
    room.hello("c2", hello("ben"))  # its connection ends before it joined
    assert room.gone("c2") == [] and room.users == []


def test_an_instructor_can_disconnect_someone() -> None:
    room = ChatRoom(clock=Clock())
    ana = live_member(room, "ana")
    assert room.disconnect("nobody", 4001, "bye") is None
    leave, closing = room.disconnect("ana", 4001, "bye") or []
    assert isinstance(leave, Publish) and closing == Close(ana, 4001, "bye")


def test_the_heartbeat_pings_live_json_clients_and_drops_the_silent_ones() -> None:
    clock = Clock()
    room = ChatRoom(heartbeat=HeartbeatPolicy(interval=1, timeout=3), clock=clock)
    ana, ben = live_member(room, "ana"), live_member(room, "ben")
    live_member(room, "pat", "pat")
    plan = room.heartbeat_tick(clock.now, wall_time=1234.5)
    assert texts(plan) == {"ana": ['{"type":"ping","t":1234.5}'], "ben": ['{"type":"ping","t":1234.5}']}
    clock.now += 2
    room.receive(ben.connection, '{"type": "pong", "t": 1234.5}')
    clock.now += 2  # ana silent for 4 s, ben for 2 s
    plan = room.heartbeat_tick(clock.now, wall_time=1238.5)
    assert texts(plan) == {"ben": ['{"type":"ping","t":1238.5}']}
    leave, closing = plan.actions
    assert isinstance(leave, Publish) and leave.event.name == "ana"
    assert isinstance(closing, Close) and closing.member is ana and closing.abort
    assert list(room.dead_after) == [4.0] and room.users == ["ben", "pat"]


def test_a_client_too_slow_for_a_ping_is_sent_away_and_nothing_counts_as_undelivered() -> None:
    clock = Clock()
    room = ChatRoom(heartbeat=HeartbeatPolicy(interval=1, timeout=3), max_backlog=1000, clock=clock)
    live_member(room, "ana")
    slow = live_member(room, "slow")
    room.fan_out(RoomEvent(EventKind.CHAT, "ana", "hi", seq=1))
    plan = room.heartbeat_tick(clock.now, wall_time=1234.5)
    leave, closing = room.too_slow(plan, [(slow, 5000)])
    assert isinstance(leave, Publish) and leave.event.name == "slow"
    assert isinstance(closing, Close) and closing.code == AppCloseCode.TOO_SLOW
    assert closing.reason == "too slow: 5000 bytes waiting; reconnect with resume=1"  # it had seq 1
    assert room.stats.delivered == 2 and room.stats.evicted == 1 and room.users == ["ana"]


def test_fan_out_learns_another_server_s_refs_so_a_resend_here_is_acknowledged() -> None:
    room = ChatRoom(server_id="s1", clock=Clock())
    ana = live_member(room, "ana")
    mine = RoomEvent(EventKind.CHAT, "ana", "hi", seq=1, via="s1", ref="ana-1")
    theirs = RoomEvent(EventKind.CHAT, "bob", "hi", seq=2, via="s2", ref="bob-1")
    room.published(mine)  # as the shell does when the broker answers the publish
    room.fan_out(mine)
    room.fan_out(theirs)
    bob = live_member(room, "bob", seq=2)  # bob's server died; he comes here and resends
    assert room.receive(bob.connection, say("hi", "bob-1")) == [Send(bob, Ack(2, "bob-1"))]
    assert room.receive(ana.connection, say("hi", "ana-1")) == [Send(ana, Ack(1, "ana-1"))]


def test_a_member_whose_join_never_went_out_leaves_without_a_leave() -> None:
    room = ChatRoom(clock=Clock())
    [fetch] = room.hello("c1", hello("ana"))
    room.history_arrived(fetch.member, 0, [])
    live, join = room.go_live(fetch.member)
    assert isinstance(live, Send) and isinstance(join, Publish)
    # The connection ends while Live is sent: the join is never published, so nobody hears a leave.
    assert room.gone("c1") == [] and room.users == []


def test_what_a_connection_says_after_it_was_sent_away_is_ignored() -> None:
    room = ChatRoom(clock=Clock())
    ana = live_member(room, "ana")
    room.disconnect("ana", 4001, "bye")
    assert room.receive(ana.connection, say("still here?")) == []
    assert room.receive("never-admitted", say("hello?")) == []
