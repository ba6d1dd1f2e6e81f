"""An instructor's kick, mute, unmute and clear, as rules without sockets: the room, the client's
session, the wire. (``test_moderation_live.py`` does the same over real connections.)"""

from __future__ import annotations

import json

import pytest
from helpers import Clock, NumberingBroker, hello, live_member, say, texts

from wslab.cli.instructor import HELP, Command, parse_command
from wslab.core.actions import Close, Publish, Send
from wslab.core.close_codes import AppCloseCode
from wslab.core.moderation import KICK_BAR, ModerationError
from wslab.core.protocol import Error, render_plain
from wslab.core.room import ChatRoom
from wslab.core.room_event import EventKind, RoomEvent
from wslab.core.session import AfterClose, ChatSession


def decided(
    room: ChatRoom, broker: NumberingBroker, kind: EventKind, name: str = "", reason: str = ""
) -> RoomEvent:
    """What :meth:`ChatRoom.moderate` publishes, numbered by the broker and taken in as published."""
    [publish] = room.moderate(kind, name, reason)
    assert isinstance(publish, Publish)
    event = broker.number(publish.event)
    room.published(event)
    return event


def test_a_decision_about_nobody_in_the_room_is_refused_and_publishes_nothing() -> None:
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    live_member(room, "ana")
    with pytest.raises(ModerationError, match=r"nobody called 'anna' is in the room \(in: ana\)"):
        room.moderate(EventKind.KICK, "anna")
    with pytest.raises(ModerationError, match="'ana' is not muted"):
        room.moderate(EventKind.UNMUTE, "ana")
    with pytest.raises(ValueError, match="not a moderation event"):
        room.moderate(EventKind.CHAT, "ana")
    # Names are the room's, whatever case the instructor types.
    assert decided(room, broker, EventKind.MUTE, " ANA ").name == "ana"


def test_a_kick_tells_the_person_why_closes_with_4003_and_tells_the_room_who_but_not_why() -> None:
    room, broker = ChatRoom(server_id="s1", clock=Clock()), NumberingBroker()
    ana, bob = live_member(room, "ana"), live_member(room, "bob")
    kick = decided(room, broker, EventKind.KICK, "bob", "spamming links")
    assert (kick.kind, kick.name, kick.text) == (EventKind.KICK, "bob", "spamming links")
    assert room.users == ["ana", "bob"]  # published, not applied: it applies as it comes back

    plan = room.fan_out(kick)
    error = Error("kicked", "the instructor removed you from the room: spamming links")
    assert texts(plan) == {"bob": [error.to_json()], "ana": [kick.to_wire()]}
    assert json.loads(kick.to_wire())["text"] == ""  # the reason is bob's alone
    leave, closing = plan.actions
    assert isinstance(leave, Publish) and (leave.event.kind, leave.event.name) == (EventKind.LEAVE, "bob")
    assert closing == Close(bob, AppCloseCode.KICKED, "kicked: spamming links")
    assert room.users == ["ana"] and room.gone(bob.connection) == []
    assert render_plain(kick) == ">>> bob was removed by the instructor"
    assert ana.last_seq == kick.seq


def test_a_kicked_name_is_refused_until_its_bar_has_passed() -> None:
    clock = Clock()
    room, broker = ChatRoom(clock=clock), NumberingBroker()
    live_member(room, "bob")
    room.fan_out(decided(room, broker, EventKind.KICK, "bob"))

    clock.now += KICK_BAR - 61
    send, closing = room.hello("c2", hello("Bob"))
    assert isinstance(send, Send) and isinstance(send.message, Error) and send.message.code == "kicked"
    assert send.message.text == "the instructor removed 'Bob' from the room; try again in 2 min"
    assert isinstance(closing, Close) and closing.code == AppCloseCode.KICKED
    assert room.users == []
    clock.now += 61
    live_member(room, "bob", seq=1)  # the bar has passed (the broker holds the kick, seq 1)


def test_a_kick_from_another_server_reaches_the_person_here() -> None:
    """The instructor acts on server s2; bob is connected to s1: s1 applies what the broker brings."""
    here, there, broker = (
        ChatRoom(server_id="s1", clock=Clock()),
        ChatRoom(server_id="s2", clock=Clock()),
        NumberingBroker(),
    )
    bob = live_member(here, "bob")
    there.presence.seen(RoomEvent(EventKind.JOIN, "bob", via="s1"))  # s2 heard bob's join
    assert there.everyone == ["bob"]
    kick = decided(there, broker, EventKind.KICK, "bob", "off topic")
    plan = here.fan_out(kick)
    assert texts(plan)["bob"] == [
        Error("kicked", "the instructor removed you from the room: off topic").to_json()
    ]
    assert Close(bob, AppCloseCode.KICKED, "kicked: off topic") in plan.actions
    assert here.moderation.barred_for("bob") > 0 and there.fan_out(kick).actions == []
    assert there.moderation.barred_for("bob") > 0  # every server refuses the name


def test_a_muted_person_reads_but_each_message_is_refused_until_unmuted() -> None:
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    ana, bob = live_member(room, "ana"), live_member(room, "bob")
    mute = decided(room, broker, EventKind.MUTE, "bob")
    assert room.receive(bob.connection, say("before it arrived", "bob-1"))[0] == Publish(
        room.event(EventKind.CHAT, "bob", "before it arrived", "bob-1")
    )
    plan = room.fan_out(mute)
    assert texts(plan) == {"ana": [mute.to_wire()], "bob": [mute.to_wire()]}  # bob stays, and is told
    assert render_plain(mute) == ">>> bob was muted by the instructor"

    refused = room.receive(bob.connection, say("let me talk", "bob-2"))
    assert refused == [Send(bob, Error("muted", refused[0].message.text, "bob-2"))]  # type: ignore[union-attr]
    assert "muted" in refused[0].message.text  # type: ignore[union-attr]
    assert isinstance(room.receive(ana.connection, say("ana still can"))[0], Publish)
    assert room.users == ["ana", "bob"] and room.moderation.muted == ["bob"]

    room.fan_out(decided(room, broker, EventKind.UNMUTE, "bob"))
    assert isinstance(room.receive(bob.connection, say("thanks", "bob-3"))[0], Publish)
    assert room.moderation.muted == []


def test_a_mute_learned_from_another_server_applies_here_and_keeps_the_roster() -> None:
    room = ChatRoom(server_id="s1", clock=Clock())
    bob = live_member(room, "bob")
    room.presence.seen(RoomEvent(EventKind.JOIN, "cy", via="s2"))
    room.fan_out(RoomEvent(EventKind.MUTE, "bob", seq=5, via="s2"))
    room.fan_out(RoomEvent(EventKind.MUTE, "cy", seq=6, via="s2"))
    assert room.receive(bob.connection, say("hi"))[0].message.code == "muted"  # type: ignore[union-attr]
    assert room.everyone == ["bob", "cy"]  # a mute is no leave


def test_a_clear_empties_the_transcript_and_reaches_everyone() -> None:
    room, broker = ChatRoom(clock=Clock()), NumberingBroker()
    ana, pat = live_member(room, "ana"), live_member(room, "pat", "pat")
    for text in ("one", "two"):
        room.fan_out(broker.number(room.event(EventKind.CHAT, "ana", text)))
    clear = decided(room, broker, EventKind.CLEAR)
    plan = room.fan_out(clear)
    assert texts(plan) == {"ana": [clear.to_wire()], "pat": [">>> the instructor cleared the chat"]}
    assert list(room.transcript) == [clear]
    assert ana.last_seq == pat.last_seq == clear.seq


def test_the_session_clears_its_transcript_and_gives_up_after_a_kick() -> None:
    session = ChatSession("bob")
    session.receive(json.dumps({"type": "welcome", "name": "bob", "seq": 0, "users": ["bob"]}))
    session.receive(RoomEvent(EventKind.CHAT, "ana", "hi", seq=1).to_wire())
    session.receive(RoomEvent(EventKind.CLEAR, "", seq=2).to_wire())
    session.receive(RoomEvent(EventKind.CHAT, "ana", "again", seq=3).to_wire())
    assert session.lines() == [">>> the instructor cleared the chat", "[ana] again"]
    assert session.clears == 1 and session.tracker.missing == []

    _, _ = session.say("am I muted?")
    [(ref, _)] = session.resend(set())
    session.receive(Error("muted", "the instructor muted you", ref).to_json())
    assert session.unacknowledged == [] and session.rejected is None  # refused, not lost, not final

    session.receive(Error("kicked", "the instructor removed you from the room: spam").to_json())
    assert session.closed(AppCloseCode.KICKED) is AfterClose.GIVE_UP
    assert session.rejected == "the instructor removed you from the room: spam"


def test_a_4003_alone_is_final_too() -> None:
    """Behind a proxy that drops the error reply, the close code alone says it."""
    session = ChatSession("bob")
    assert session.closed(AppCloseCode.KICKED) is AfterClose.GIVE_UP
    assert session.rejected == "the instructor removed you from the room"


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("/kick bob spamming links", Command("kick", "bob", "spamming links")),
        ('/kick "ada l" off topic', Command("kick", "ada l", "off topic")),
        ("/KICK bob", Command("kick", "bob", "")),
        ("/mute ada l", Command("mute", "ada l")),
        ("  /unmute bob  ", Command("unmute", "bob")),
        ("/clear", Command("clear")),
        ("/who", Command("who")),
        ("/mute", "/mute needs a name: /mute NAME"),
        ('/kick "ada', "cannot read '\"ada': No closing quotation"),
        ("kick bob", f"unknown command 'kick bob'; {HELP}"),
        ("/ban bob", f"unknown command '/ban bob'; {HELP}"),
    ],
)
def test_the_terminals_commands_are_read_or_explained(line: str, parsed: Command | str) -> None:
    assert parse_command(line) == parsed
