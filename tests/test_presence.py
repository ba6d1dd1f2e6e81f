"""Presence that scales, in the I/O-free room: exact in small rooms, coalesced and counted in big ones."""

from __future__ import annotations

import json

import pytest
from helpers import Clock, NumberingBroker, hello, live_member, shell, texts

from wslab.core.actions import Publish, Send
from wslab.core.presence import PresencePolicy
from wslab.core.protocol import Users, Welcome, parse_server_message, render_plain
from wslab.core.room import ChatRoom
from wslab.core.room_event import NAMES_SHOWN, EventKind, RoomEvent
from wslab.core.session import ChatSession

WHO = json.dumps({"type": "who"})


def published(actions: list) -> list[RoomEvent]:
    assert all(isinstance(action, Publish) for action in actions), actions
    return [action.event for action in actions]


def room_of(limit: int, *, server_id: str = "s1", tick: float = 0.5) -> tuple[ChatRoom, Clock]:
    clock = Clock()
    policy = PresencePolicy(exact_up_to=limit, tick=tick)
    return ChatRoom(server_id=server_id, presence=policy, clock=clock), clock


def arrive(room: ChatRoom, name: str) -> tuple[Welcome, list[RoomEvent]]:
    """Admit ``name`` and take it live: the welcome it is sent, and the presence events its
    arrival publishes now."""
    actions = shell(room, room.hello(f"conn-{name}", hello(name)), room.last_seq)
    [welcome] = [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Welcome)]
    return welcome, published([action for action in actions if isinstance(action, Publish)])


def join(room: ChatRoom, name: str) -> list[RoomEvent]:
    """Admit ``name`` and take it live; the presence events its arrival publishes now."""
    return arrive(room, name)[1]


def test_a_small_room_announces_every_join_and_leave_at_once_one_by_one() -> None:
    room, _ = room_of(50)
    events = [event for name in ("ana", "ben", "cy") for event in join(room, name)]
    expected = [(EventKind.JOIN, name, ()) for name in ("ana", "ben", "cy")]
    assert [(e.kind, e.name, e.names) for e in events] == expected
    [leave] = published(room.gone("conn-ben"))
    assert (leave.kind, leave.name, leave.coalesced) == (EventKind.LEAVE, "ben", False)
    assert room.tick(1e9) == []  # nothing waits for a tick
    # The wire and the plain lines are those lessons 02-06 show.
    assert leave.with_seq(4).to_wire() == '{"type":"leave","seq":4,"name":"ben","text":"","via":"s1"}'
    assert render_plain(events[0]) == ">>> ana joined the chat"


def test_past_the_threshold_joins_wait_for_the_tick_and_go_out_as_one_event_with_counts() -> None:
    room, clock = room_of(3)
    exact = [event for name in ("a1", "a2", "a3") for event in join(room, name)]
    assert len(exact) == 3  # up to the threshold: one event each
    later = [f"p{i:02d}" for i in range(40)]
    assert [event for name in later for event in join(room, name)] == []  # the 4th on: wait
    clock.now += 0.5
    [event] = published(room.tick(clock.now))
    assert (event.kind, event.name, event.names, event.count, event.total) == (
        EventKind.JOIN,
        "p00",
        tuple(later),
        40,
        43,
    )
    wire = json.loads(event.with_seq(9).to_wire())
    assert wire["names"] == later[:NAMES_SHOWN] and (wire["count"], wire["total"]) == (40, 43)
    assert render_plain(event) == ">>> p00, p01, p02 and 37 others joined the chat (43 here)"
    assert room.tick(clock.now + 1) == []  # nothing new: no event


def test_a_big_room_s_leaves_are_coalesced_and_a_join_and_leave_within_one_tick_cancel() -> None:
    room, clock = room_of(2)
    for name in ("a1", "a2", "a3", "a4", "a5"):
        join(room, name)
    clock.now += 1
    room.tick(clock.now)  # a3..a5's join
    assert room.gone("conn-a1") == [] and room.gone("conn-a4") == []
    join(room, "brief")
    assert room.gone("conn-brief") == []  # came and went within the tick
    join(room, "a1")  # left, and back within the same tick
    clock.now += 1
    leave, back = published(room.tick(clock.now))
    assert (leave.kind, leave.names, leave.total) == (EventKind.LEAVE, ("a1", "a4"), 4)
    assert (back.kind, back.names, back.total) == (EventKind.JOIN, ("a1",), 4)
    assert render_plain(leave) == ">>> a1 and a4 left the chat (4 here)"


def test_a_big_room_s_welcome_has_the_count_and_who_gives_the_names() -> None:
    room, _ = room_of(2)
    join(room, "a1")
    small, _ = arrive(room, "a2")
    assert (small.users, small.count) == (["a1", "a2"], None)
    assert "count" not in small.to_json()
    big, _ = arrive(room, "a3")
    assert (big.users, big.count) == ([], 3)
    [reply] = room.receive("conn-a3", WHO)
    assert isinstance(reply, Send) and reply.message == Users(["a1", "a2", "a3"], 3)
    assert parse_server_message(reply.text() or "") == Users(["a1", "a2", "a3"], 3)


def test_who_in_the_plain_dialect_is_just_a_chat_message() -> None:
    room, _ = room_of(50)
    plain = live_member(room, "pat", first="pat")
    [action] = room.receive(plain.connection, WHO)
    assert isinstance(action, Publish) and action.event.text == WHO


def test_two_servers_rooms_learn_each_other_s_people_from_the_events_they_share() -> None:
    """What two servers sharing a broker see: every event, numbered once, in one order."""
    broker = NumberingBroker()
    a, clock = room_of(3, server_id="A")
    b, _ = room_of(3, server_id="B")
    live_member(b, "bea")  # a client of server B, whose join B published

    def deliver(events: list[RoomEvent]) -> list[dict[str, list[str]]]:
        plans = []
        for event in events:
            numbered = broker.number(event)
            plans.append(texts(a.fan_out(numbered)))
            plans.append(texts(b.fan_out(numbered)))
        return plans

    deliver([b.event(EventKind.JOIN, "bea")])  # the broker delivers it everywhere
    for name in ("a1", "a2", "a3", "a4", "a5"):
        deliver(join(a, name))
    assert (a.size, b.size) == (6, 3)  # past 3, a3..a5 wait for A's tick; B knows bea, a1, a2
    clock.now += 1
    plans = deliver(published(a.tick(clock.now)))
    assert b.everyone == ["bea", "a1", "a2", "a3", "a4", "a5"] and b.size == a.size == 6
    # B's client receives A's coalesced join and understands it.
    session = ChatSession("bea")
    session.receive(Welcome("bea", 0, [], "B", count=b.size).to_json())  # as B welcomes in a room this big
    [wire] = plans[1]["bea"]
    session.receive(wire)
    assert session.lines()[-1] == ">>> a3, a4 and a5 joined the chat (6 here)"
    assert (session.count, session.users) == (6, ["a3", "a4", "a5"])  # a big room welcomes with a count
    [reply] = b.receive("conn-bea", WHO)
    session.receive(reply.text())  # type: ignore[union-attr]
    assert session.users == ["bea", "a1", "a2", "a3", "a4", "a5"]
    # A's coalesced leave: B forgets them too.
    a.gone("conn-a1")
    a.gone("conn-a5")
    clock.now += 1
    deliver(published(a.tick(clock.now)))
    assert b.everyone == ["bea", "a2", "a3", "a4"] and b.size == 4


def test_chat_messages_keep_their_exact_numbering_between_coalesced_presence_events() -> None:
    broker = NumberingBroker()
    room, clock = room_of(1)
    welcome, _ = arrive(room, "ana")
    session = ChatSession("ana")
    session.receive(welcome.to_json())
    seqs = []
    for i in range(3):
        for name in (f"x{i}", f"y{i}"):
            join(room, name)
        clock.now += 1
        for event in [*published(room.tick(clock.now)), room.event(EventKind.CHAT, "bob", f"hi {i}")]:
            numbered = broker.number(event)
            seqs.append(numbered.seq)
            for text in texts(room.fan_out(numbered)).get("ana", []):
                session.receive(text)
    assert seqs == [1, 2, 3, 4, 5, 6] and session.tracker.last == 6
    assert session.texts() == ["hi 0", "hi 1", "hi 2"] and not [n for n in session.notices if "gap" in n]
    assert session.count == 7


def test_a_very_big_room_s_announcements_slow_down_to_stay_within_the_budget() -> None:
    room, clock = room_of(2, tick=0.5)
    room.presence.policy = PresencePolicy(exact_up_to=2, tick=0.5, budget=10)  # 10 deliveries/s
    for name in ("a1", "a2", "a3", "a4"):
        join(room, name)
    clock.now += 0.5
    assert room.tick(clock.now) != []  # 4 people: every 0.5 s
    for i in range(16):
        join(room, f"b{i}")  # 20 people: every 2 s
    clock.now += 1
    assert room.tick(clock.now) == []
    clock.now += 1
    [event] = published(room.tick(clock.now))
    assert (event.count, event.total) == (16, 20)
    assert PresencePolicy().interval(10_000) == 1.0 and PresencePolicy().interval(100) == 0.5


@pytest.mark.parametrize("bad", [{"exact_up_to": -1}, {"tick": 0}, {"budget": 0}])
def test_a_presence_policy_refuses_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError):
        PresencePolicy(**bad)
