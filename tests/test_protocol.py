"""The chat protocol without sockets: names, first messages, events, history, sequence numbers."""

from __future__ import annotations

import itertools
import json

import pytest

from wslab.core.backoff import backoff_delays
from wslab.core.close_codes import AppCloseCode
from wslab.core.history import History, HistoryTooOld, SequenceTracker, Tracked
from wslab.core.protocol import (
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
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
    UsernameError,
    Welcome,
    encode,
    parse_client_message,
    parse_hello,
    parse_server_message,
    render_plain,
    validate_username,
)
from wslab.core.room_event import EventKind, RoomEvent


def chat(seq: int, text: str = "hi", name: str = "alice") -> RoomEvent:
    return RoomEvent(EventKind.CHAT, name, text, seq=seq, at=0.0)


def history_of(seqs: range, maxlen: int) -> History:
    history = History(maxlen=maxlen)
    for seq in seqs:
        history.append(chat(seq, f"m{seq}"))
    return history


# --- usernames ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("  alice\t", "alice"),  # surrounding whitespace is stripped
        ("alice\n", "alice"),  # a trailing newline is whitespace, not a control character inside
        ("Ünïcødé ok", "Ünïcødé ok"),
        ("x" * MAX_NAME_LENGTH, "x" * MAX_NAME_LENGTH),
        (" " + "x" * MAX_NAME_LENGTH + " ", "x" * MAX_NAME_LENGTH),  # the limit counts the stripped name
        ("systems", "systems"),  # only the exact reserved words are reserved
    ],
)
def test_valid_usernames_come_back_cleaned(raw: str, expected: str) -> None:
    assert validate_username(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "name-empty"),
        ("   ", "name-empty"),
        ("\t\n", "name-empty"),
        ("x" * (MAX_NAME_LENGTH + 1), "name-too-long"),
        ("bad\nname", "name-invalid"),
        ("bad\x00name", "name-invalid"),
        ("bad\x1bname", "name-invalid"),  # escape: Cc
        ("zero\u200bwidth", "name-invalid"),  # zero-width space: Cf, invisible
        ("\u200b", "name-invalid"),  # not whitespace to str.strip, so not "empty"
        ("rtl\u202eoverride", "name-invalid"),  # right-to-left override: Cf
        ("line\u2028sep", "name-invalid"),  # Zl
        ("para\u2029sep", "name-invalid"),  # Zp
        ("system", "name-reserved"),
        ("System", "name-reserved"),
        (" SERVER ", "name-reserved"),
    ],
)
def test_invalid_usernames_say_why(raw: str, code: str) -> None:
    with pytest.raises(UsernameError) as info:
        validate_username(raw)
    assert info.value.code == code
    assert isinstance(info.value, ValueError)


def test_username_error_messages_are_readable() -> None:
    messages = {}
    for raw in ["", "x" * 33, "a\x00b", "system"]:
        with pytest.raises(UsernameError) as info:
            validate_username(raw)
        messages[info.value.code] = str(info.value)
    assert messages == {
        "name-empty": "a username cannot be empty",
        "name-too-long": "a username has at most 32 characters",
        "name-invalid": "a username cannot contain control characters",
        "name-reserved": "'system' is reserved for the server",
    }


@pytest.mark.parametrize("raw", ["alice", "ALICE", "Alice", " aLiCe "])
def test_taken_names_compare_case_insensitively(raw: str) -> None:
    with pytest.raises(UsernameError) as info:
        validate_username(raw, taken=["bob", "Alice"])
    assert info.value.code == "name-taken"
    assert str(info.value) == f"the username {raw.strip()!r} is already taken"


def test_taken_accepts_any_iterable_of_names() -> None:
    taken = {"alice": object()}  # the server passes its dict of clients
    assert validate_username("bob", taken=taken) == "bob"
    with pytest.raises(UsernameError):
        validate_username("alice", taken=taken)
    # Casefolding, not just lower(): the German sharp s matches "SS".
    with pytest.raises(UsernameError):
        validate_username("STRASSE", taken=["straße"])


def test_an_empty_name_is_empty_before_it_is_taken_or_reserved() -> None:
    with pytest.raises(UsernameError) as info:
        validate_username("  ", taken=["", "  "])
    assert info.value.code == "name-empty"


# --- the first message ----------------------------------------------------------------


def test_a_plain_first_message_is_the_name() -> None:
    assert parse_hello("alice") == Hello("alice", Dialect.PLAIN, None)
    # The name is validated (and stripped) later, by validate_username.
    assert parse_hello("  alice ").name == "  alice "
    assert parse_hello("[not json]").dialect is Dialect.PLAIN


def test_a_json_hello() -> None:
    assert parse_hello('{"type": "hello", "name": "alice"}') == Hello("alice", Dialect.JSON, None)
    assert parse_hello('  {"type":"hello","name":"bob"}\n') == Hello("bob", Dialect.JSON, None)


@pytest.mark.parametrize(("resume", "expected"), [(0, 0), (42, 42), (None, None)])
def test_a_json_hello_with_resume(resume: int | None, expected: int | None) -> None:
    hello = parse_hello(json.dumps({"type": "hello", "name": "alice", "resume": resume}))
    assert hello == Hello("alice", Dialect.JSON, expected)


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ('{"type": "hello", "name": ', "not valid JSON"),
        ("{alice}", "not valid JSON"),
        ('{"type": "chat", "name": "alice"}', "expected"),
        ('{"name": "alice"}', "expected"),
        ('{"type": "hello"}', "expected"),
        ('{"type": "hello", "name": 7}', "expected"),
        ('{"type": "hello", "name": "alice", "resume": -1}', "resume must be"),
        ('{"type": "hello", "name": "alice", "resume": true}', "resume must be"),
        ('{"type": "hello", "name": "alice", "resume": false}', "resume must be"),
        ('{"type": "hello", "name": "alice", "resume": "3"}', "resume must be"),
        ('{"type": "hello", "name": "alice", "resume": 1.5}', "resume must be"),
    ],
)
def test_bad_json_hellos_are_protocol_violations(message: str, complaint: str) -> None:
    with pytest.raises(ProtocolViolation, match=complaint):
        parse_hello(message)


def test_a_binary_first_message_is_a_protocol_violation() -> None:
    with pytest.raises(ProtocolViolation, match="must be text"):
        parse_hello(b"alice")


# --- chat messages --------------------------------------------------------------------


def test_plain_messages_are_stripped_text_without_ref() -> None:
    assert parse_client_message("hi", Dialect.PLAIN) == Say("hi", "")
    assert parse_client_message("  hi there \n", Dialect.PLAIN) == Say("hi there", "")
    # In the plain dialect JSON is just text.
    assert parse_client_message('{"type":"chat"}', Dialect.PLAIN) == Say('{"type":"chat"}', "")


def test_json_messages_carry_an_optional_ref() -> None:
    assert parse_client_message('{"type":"chat","text":" hi ","ref":"a-1"}', Dialect.JSON) == Say("hi", "a-1")
    assert parse_client_message('{"type":"chat","text":"hi"}', Dialect.JSON) == Say("hi", "")
    assert parse_client_message('{"type":"chat","text":"hi","ref":7}', Dialect.JSON) == Say("hi", "7")
    long_ref = json.dumps({"type": "chat", "text": "hi", "ref": "r" * 100})
    assert parse_client_message(long_ref, Dialect.JSON) == Say("hi", "r" * 64)


@pytest.mark.parametrize(
    ("message", "dialect"),
    [
        ("", Dialect.PLAIN),
        ("   ", Dialect.PLAIN),
        ("\n\t", Dialect.PLAIN),
        ('{"type":"chat","text":""}', Dialect.JSON),
        ('{"type":"chat","text":"  ","ref":"x"}', Dialect.JSON),
    ],
)
def test_empty_messages_are_nothing_to_say(message: str, dialect: Dialect) -> None:
    assert parse_client_message(message, dialect) is None


@pytest.mark.parametrize("dialect", list(Dialect))
def test_the_text_length_limit(dialect: Dialect) -> None:
    def wrap(text: str) -> str:
        return json.dumps({"type": "chat", "text": text}) if dialect is Dialect.JSON else text

    assert parse_client_message(wrap("x" * MAX_TEXT_LENGTH), dialect) == Say("x" * MAX_TEXT_LENGTH, "")
    assert parse_client_message(wrap(" x" + "x" * (MAX_TEXT_LENGTH - 1) + " "), dialect) is not None
    with pytest.raises(ProtocolViolation, match=f"at most {MAX_TEXT_LENGTH}"):
        parse_client_message(wrap("x" * (MAX_TEXT_LENGTH + 1)), dialect)


@pytest.mark.parametrize("dialect", list(Dialect))
def test_binary_messages_are_protocol_violations(dialect: Dialect) -> None:
    with pytest.raises(ProtocolViolation, match="binary"):
        parse_client_message(b"hi", dialect)


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ("hi", "not valid JSON"),
        ('{"type":"chat","text":"hi"', "not valid JSON"),
        ('["chat", "hi"]', "expected"),
        ('{"type":"hello","name":"alice"}', "expected"),
        ('{"text":"hi"}', "expected"),
        ('{"type":"chat","text":5}', "expected"),
        ('{"type":"chat"}', "expected"),
    ],
)
def test_malformed_json_messages_are_protocol_violations(message: str, complaint: str) -> None:
    with pytest.raises(ProtocolViolation, match=complaint):
        parse_client_message(message, Dialect.JSON)


# --- events ---------------------------------------------------------------------------


def test_room_events_survive_a_json_round_trip() -> None:
    event = RoomEvent(EventKind.CHAT, "alice", "héllo 👋", room="r", seq=7, via="a", at=12.5, ref="alice-3")
    payload = event.to_json()

    assert json.loads(payload) == {
        "type": "chat",
        "name": "alice",
        "text": "héllo 👋",
        "room": "r",
        "seq": 7,
        "via": "a",
        "at": 12.5,
        "ref": "alice-3",
    }
    assert "héllo 👋" in payload  # not escaped: readable in a log
    assert RoomEvent.from_json(payload) == event
    assert RoomEvent.from_json(payload.encode()) == event


def test_the_wire_form_carries_only_what_clients_use() -> None:
    event = RoomEvent(EventKind.CHAT, "alice", "héllo 👋", room="r", seq=7, via="a", at=12.5, ref="alice-3")

    payload = event.to_wire()

    assert json.loads(payload) == {"type": "chat", "seq": 7, "name": "alice", "text": "héllo 👋", "via": "a"}
    assert len(payload.encode()) < len(event.to_json().encode())
    # a client reads it back with the defaults filled in
    back = RoomEvent.from_json(payload)
    assert back == RoomEvent(EventKind.CHAT, "alice", "héllo 👋", seq=7, via="a", at=0.0)


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_round_trips(kind: EventKind) -> None:
    event = RoomEvent(kind, "bob", seq=1, at=1.0)
    assert RoomEvent.from_json(event.to_json()) == event
    assert RoomEvent.from_json(event.to_json()).kind is kind


def test_from_dict_fills_in_defaults() -> None:
    assert RoomEvent.from_dict({"type": "join", "name": "bob"}) == RoomEvent(EventKind.JOIN, "bob", at=0.0)
    with pytest.raises(ValueError):
        RoomEvent.from_dict({"type": "shout", "name": "bob"})


def test_with_seq_keeps_everything_else() -> None:
    event = RoomEvent(EventKind.CHAT, "alice", "hi", room="r", via="a", at=3.0, ref="x")
    numbered = event.with_seq(5)
    assert numbered.seq == 5
    assert numbered == RoomEvent(EventKind.CHAT, "alice", "hi", room="r", seq=5, via="a", at=3.0, ref="x")
    assert event.seq == 0  # frozen: a new event, the old one untouched


def test_render_plain_lines() -> None:
    assert render_plain(chat(1, "hello there")) == "[alice] hello there"
    assert render_plain(RoomEvent(EventKind.JOIN, "bob")) == ">>> bob joined the chat"
    assert render_plain(RoomEvent(EventKind.LEAVE, "bob")) == ">>> bob left the chat"


def test_encode_makes_compact_json_control_messages() -> None:
    assert encode(Ack(3, "a-1")) == '{"type":"ack","seq":3,"ref":"a-1"}'
    assert encode(Error("bad-message", "ünïcode")) == '{"type":"error","code":"bad-message","text":"ünïcode"}'


@pytest.mark.parametrize(
    "message",
    [
        Welcome("ana", 7, ["ana", "ben"], "s1"),
        Welcome("ana", 0, [], "s1", heartbeat=(0.5, 1.5), rate=(5.0, 10.0)),
        RoomEvent(EventKind.CHAT, "ben", "hi", seq=8, via="s2", at=0.0, room="lobby"),
        Ack(9, "ana-1"),
        Ack(0, "ana-2"),
        Live(9),
        HistoryLost(3, 5, "gone"),
        Reset(0, "reset"),
        Error("name-taken", "taken", "ana-3"),
        Ping(12.5),
    ],
)
def test_every_server_message_round_trips(message: object) -> None:
    parsed = parse_server_message(encode(message))  # type: ignore[arg-type]
    if isinstance(message, RoomEvent):  # the wire form leaves room, at and ref behind
        assert (parsed.kind, parsed.seq, parsed.name, parsed.text, parsed.via) == (  # type: ignore[union-attr]
            message.kind,
            message.seq,
            message.name,
            message.text,
            message.via,
        )
    else:
        assert parsed == message


def test_client_messages_encode_to_what_the_server_parses() -> None:
    assert parse_hello(encode(Hello("ana", Dialect.JSON, 4, "tok"))) == Hello("ana", Dialect.JSON, 4, "tok")
    assert parse_client_message(encode(Say(" hi ", "r1")), Dialect.JSON) == Say("hi", "r1")
    assert parse_client_message(encode(Pong(1.5)), Dialect.JSON) == Pong(1.5)


def test_the_plain_dialect_has_lines_only_for_welcomes_events_and_errors() -> None:
    assert render_plain(Welcome("ana", 3, [])) == "Welcome, ana!"
    assert render_plain(Error("x", "no")) == "error: no"
    assert [render_plain(m) for m in (Ack(1, "r"), Live(1), Ping(1.0), Reset(0))] == [None] * 4


@pytest.mark.parametrize("raw", ["[]", '{"type": "nonsense"}', '{"type": "ack"}', "not json", b"\xff"])
def test_unknown_or_malformed_server_messages_are_protocol_violations(raw: str | bytes) -> None:
    with pytest.raises(ProtocolViolation):
        parse_server_message(raw)


def test_application_close_codes_are_in_the_private_range() -> None:
    assert AppCloseCode.TOO_SLOW == 4001
    assert AppCloseCode.REPLACED == 4002
    assert all(4000 <= code <= 4999 for code in AppCloseCode)


# --- history --------------------------------------------------------------------------


def test_an_empty_history_has_nothing_after_anything() -> None:
    history = History(maxlen=5)
    assert len(history) == 0
    assert history.last_seq == 0
    assert history.after(0) == []
    assert history.after(10) == []


def test_history_after_returns_the_newer_events_in_order() -> None:
    history = history_of(range(1, 6), maxlen=10)
    assert history.last_seq == 5
    assert [e.seq for e in history.after(0)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in history.after(2)] == [3, 4, 5]
    assert [e.text for e in history.after(3)] == ["m4", "m5"]
    assert history.after(5) == []
    assert history.after(99) == []  # a client ahead of this history gets nothing, not an error


def test_history_keeps_only_the_newest_maxlen_events() -> None:
    history = history_of(range(1, 101), maxlen=5)
    assert len(history) == 5
    assert history.last_seq == 100
    assert [e.seq for e in history.after(95)] == [96, 97, 98, 99, 100]


def test_history_reaching_exactly_back_to_the_oldest_kept_event_is_enough() -> None:
    history = history_of(range(1, 11), maxlen=3)  # keeps 8, 9, 10
    assert [e.seq for e in history.after(7)] == [8, 9, 10]
    assert [e.seq for e in history.after(8)] == [9, 10]


@pytest.mark.parametrize(("after", "first", "last"), [(6, 7, 7), (0, 1, 7), (3, 4, 7)])
def test_history_too_old_says_what_is_gone(after: int, first: int, last: int) -> None:
    history = history_of(range(1, 11), maxlen=3)  # keeps 8, 9, 10
    with pytest.raises(HistoryTooOld) as info:
        history.after(after)
    assert info.value.wanted_after == after
    assert info.value.oldest == 8
    # What the server reports in its history-lost message:
    assert (info.value.wanted_after + 1, info.value.oldest - 1) == (first, last)
    assert str(info.value) == f"history starts at seq 8; events {first}..{last} are gone"
    assert isinstance(info.value, LookupError)


def test_history_refuses_events_out_of_order() -> None:
    history = history_of(range(1, 4), maxlen=10)
    for seq in (3, 2, 0):
        with pytest.raises(ValueError, match="not after 3"):
            history.append(chat(seq))
    history.append(chat(10))  # gaps are allowed; going back is not
    assert history.last_seq == 10
    assert [e.seq for e in history.after(3)] == [10]


# --- sequence tracking --------------------------------------------------------------------


def test_the_first_sequence_number_seen_starts_the_count() -> None:
    tracker = SequenceTracker()
    assert tracker.observe(41) is Tracked.FIRST
    assert tracker.last == 41
    assert tracker.observe(42) is Tracked.NEXT
    assert (tracker.last, tracker.missing, tracker.duplicates) == (42, [], 0)


def test_a_tracker_that_starts_from_a_known_seq_sees_gaps_from_there() -> None:
    tracker = SequenceTracker(last=0)
    assert tracker.observe(1) is Tracked.NEXT
    tracker = SequenceTracker(last=0)
    assert tracker.observe(3) is Tracked.GAP
    assert tracker.missing == [(1, 2)]


def test_duplicates_are_counted_and_do_not_move_the_tracker() -> None:
    tracker = SequenceTracker(last=5)
    assert tracker.observe(5) is Tracked.DUPLICATE
    assert tracker.observe(2) is Tracked.DUPLICATE
    assert tracker.duplicates == 2
    assert tracker.last == 5
    assert tracker.observe(6) is Tracked.NEXT
    assert tracker.missing == []


def test_gaps_are_recorded_as_inclusive_ranges() -> None:
    tracker = SequenceTracker()
    outcomes = [tracker.observe(seq) for seq in (3, 4, 8, 9, 11, 11, 12)]
    assert outcomes == [
        Tracked.FIRST,
        Tracked.NEXT,
        Tracked.GAP,
        Tracked.NEXT,
        Tracked.GAP,
        Tracked.DUPLICATE,
        Tracked.NEXT,
    ]
    assert tracker.missing == [(5, 7), (10, 10)]
    assert tracker.duplicates == 1
    assert tracker.last == 12


# --- reconnection delays --------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_the_jitter_at_its_top() -> None:
    delays = list(itertools.islice(backoff_delays(jitter=lambda: 1.0), 10))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0])


def test_backoff_with_zero_jitter_retries_at_once() -> None:
    assert list(itertools.islice(backoff_delays(jitter=lambda: 0.0), 20)) == [0.0] * 20


def test_backoff_parameters() -> None:
    delays = backoff_delays(first=1.0, factor=3.0, cap=5.0, jitter=lambda: 0.5)
    assert list(itertools.islice(delays, 4)) == pytest.approx([0.5, 1.5, 2.5, 2.5])


def test_backoff_default_jitter_stays_under_the_ceiling() -> None:
    delays = list(itertools.islice(backoff_delays(first=0.1, cap=1.0), 50))
    ceilings = [min(1.0, 0.1 * 2**n) for n in range(50)]
    assert all(0.0 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))
