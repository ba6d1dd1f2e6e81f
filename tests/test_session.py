"""The chat client's rules without sockets: what it records, sends, resends and reports."""

from __future__ import annotations

import json
import time

from wslab.core.actions import GoLive, Send
from wslab.core.heartbeat import HeartbeatPolicy
from wslab.core.protocol import (
    Ack,
    Error,
    HistoryLost,
    Live,
    Ping,
    Reset,
    Welcome,
    encode,
    parse_client_message,
)
from wslab.core.protocol import Dialect as _Dialect
from wslab.core.room import ChatRoom
from wslab.core.room_event import EventKind, RoomEvent
from wslab.core.session import AfterClose, Answer, ChatSession, ResendOutbox, WatchServer


def event(seq: int, name: str = "ben", text: str = "hi") -> str:
    return encode(RoomEvent(EventKind.CHAT, name, text, seq=seq))


def welcomed(seq: int = 0) -> ChatSession:
    session = ChatSession("ana")
    session.receive(encode(Welcome("ana", seq, ["ana"], "s1")))
    session.receive(encode(Live(seq)))
    return session


def test_the_first_hello_has_no_resume_and_a_reconnect_resumes_after_the_last_seq() -> None:
    session = ChatSession("ana")
    assert json.loads(session.hello()) == {"type": "hello", "name": "ana"}
    session.receive(encode(Welcome("ana", 4, ["ana"], "s1")))
    session.receive(event(5))
    session.disconnected()
    last = RoomEvent(EventKind.CHAT, "ben", "hi").fingerprint  # the event under 5: checked by the server
    assert json.loads(session.hello("tok")) == {
        "type": "hello",
        "name": "ana",
        "resume": 5,
        "last": last,
        "token": "tok",
    }
    assert session.resumed_after == 5


def test_events_are_kept_once_in_order_and_gaps_are_reported() -> None:
    session = welcomed(0)
    for seq in (1, 2, 2, 5):
        session.receive(event(seq))
    assert [e.seq for e in session.events] == [1, 2, 5]
    assert session.tracker.duplicates == 1 and session.tracker.missing == [(3, 4)]
    assert session.notices[-1] == "gap: seq 3..4 missing"


def test_own_messages_enter_the_transcript_through_their_ack_stripped_like_the_server_does() -> None:
    session = welcomed(0)
    ref, wire = session.say("  hello  ")
    room_side = parse_client_message(wire, _Dialect.JSON)
    assert room_side is not None and room_side.text == "hello"  # one stripping rule, shared
    assert session.unacknowledged == ["hello"]
    session.receive(encode(Ack(1, ref)))
    assert session.unacknowledged == [] and session.lines() == ["[ana] hello"]


def test_live_asks_to_resend_the_outbox_in_order() -> None:
    session = ChatSession("ana")
    first, _ = session.say("one")
    session.say("two")
    session.receive(encode(Welcome("ana", 0, [], "s1")))
    assert session.receive(encode(Live(0))) == [ResendOutbox()]
    assert [ref for ref, _ in session.resend(set())] == [first, "ana-2"]
    assert session.resend({first, "ana-2"}) == []


def test_pings_are_answered_and_a_heartbeat_in_the_welcome_starts_the_watchdog() -> None:
    session = ChatSession("ana")
    reactions = session.receive(encode(Welcome("ana", 0, [], "s1", heartbeat=(0.5, 1.5))))
    assert reactions == [WatchServer(HeartbeatPolicy(0.5, 1.5))]
    assert session.receive(encode(Ping(3.5))) == [Answer('{"type":"pong","t":3.5}')]


def test_a_reset_starts_a_new_epoch_so_later_events_are_not_taken_for_duplicates() -> None:
    session = welcomed(0)
    session.receive(event(7))
    session.receive(encode(Reset(0)))
    session.receive(event(1, text="after"))
    assert session.texts() == ["hi", "after"] and session.tracker.duplicates == 0


def test_an_ack_with_seq_0_empties_the_outbox_without_recording_a_number() -> None:
    session = welcomed(3)
    ref, _ = session.say("published before the reset")
    session.receive(encode(Ack(0, ref)))
    assert session.unacknowledged == [] and session.events == []


def test_a_welcome_with_a_lower_seq_is_noted_and_the_reset_after_it_starts_a_new_epoch() -> None:
    session = welcomed(10)
    session.receive(encode(Welcome("ana", 2, [], "s1")))
    assert session.tracker.last == 10 and "numbering went back to seq 2" in session.notices[-1]
    session.receive(encode(Reset.lost(0, 10)))  # what the server sends next
    assert session.tracker.last == 0 and session.lost_after_reset == [10]
    assert "messages after seq 10 that had not reached you are gone" in session.notices[-1]
    session.receive(event(1, text="new 1"))
    assert session.texts() == ["new 1"] and session.tracker.duplicates == 0


def test_a_reconnect_names_the_event_it_resumes_after_so_the_server_can_check_it() -> None:
    session = welcomed(4)
    session.receive(event(5, text="the last one"))
    hello = json.loads(session.hello())
    assert (
        hello["resume"] == 5 and hello["last"] == RoomEvent(EventKind.CHAT, "ben", "the last one").fingerprint
    )
    session.receive(encode(HistoryLost(6, 9, "gone")))  # no event under 9 to name
    assert "last" not in json.loads(session.hello())


def test_history_lost_is_recorded_as_missing() -> None:
    session = welcomed(1)
    session.receive(encode(HistoryLost(2, 9, "gone")))
    assert session.tracker.missing == [(2, 9)] and session.tracker.last == 9


def test_errors_reject_for_good_or_ask_to_retry_later() -> None:
    session = ChatSession("ana")
    session.receive(encode(Error("room-full", "full")))
    assert session.retry_later and session.rejected is None
    session.receive(encode(Error("name-reserved", "reserved")))
    assert session.rejected == "reserved"
    ref, _ = session.say("x" * 5000)
    session.receive(encode(Error("bad-message", "too long", ref)))
    assert session.unacknowledged == []  # refused: it would never be acknowledged


def test_presence_follows_joins_and_leaves_and_unknown_messages_are_ignored() -> None:
    session = welcomed(0)
    session.receive(encode(RoomEvent(EventKind.JOIN, "ben", seq=1)))
    assert session.users == ["ana", "ben"]
    session.receive(encode(RoomEvent(EventKind.LEAVE, "ben", seq=2)))
    assert session.users == ["ana"]
    assert session.receive('{"type": "from-the-future"}') == []


def test_session_and_room_agree_end_to_end_without_sockets() -> None:
    room = ChatRoom(server_id="s1", clock=time.monotonic)
    session = ChatSession("ana")
    [fetch] = room.hello("conn", session.hello())
    *sends, go_live = room.history_arrived(fetch.member, 0, [])  # the broker: nothing yet
    assert go_live == GoLive(fetch.member)
    sends += room.go_live(fetch.member)  # the welcome is sent: live, and the join goes out
    for action in sends:
        if isinstance(action, Send):
            session.receive(action.text() or "")
    assert session.live
    _, wire = session.say("hello room")
    [publish] = room.receive("conn", wire)
    plan = room.fan_out(publish.event.with_seq(1))  # type: ignore[union-attr]
    for delivery in plan.deliveries.values():
        session.receive(delivery.text)
    assert session.lines() == ["[ana] hello room"] and session.unacknowledged == []


def test_a_closed_connection_says_what_to_do_next() -> None:
    session = ChatSession("ana")
    assert session.closed(1001) is AfterClose.RECONNECT
    assert session.closed(1013) is AfterClose.BACK_OFF  # e.g. the server's broker is down
    session.receive(encode(Error("room-full", "the room is full (3 people); try again later")))
    assert session.closed(1000) is AfterClose.BACK_OFF  # once: the next close is a plain one
    assert session.closed(1000) is AfterClose.RECONNECT
    session.receive(encode(Error("bad-token", "invalid token")))
    assert session.closed(1008) is AfterClose.GIVE_UP and session.rejected == "invalid token"
