"""The event log and its lines, without any socket."""

from __future__ import annotations

import time

import pytest

from wslab.core.connection_log import PREVIEW_CHARS, LogEvent, LogKind, close_label
from wslab.runtime.event_log import EventLog

PEER = "127.0.0.1:50000"


def message(text: str, direction: LogKind = LogKind.RECEIVED) -> LogEvent:
    return LogEvent(direction, PEER, text=text)


# --- EventLog -----------------------------------------------------------------------


def test_window_keeps_the_last_maxlen_events_in_order() -> None:
    log = EventLog(maxlen=3)
    for i in range(5):
        log.append(message(f"m{i}"))

    assert len(log) == 3
    assert log.maxlen == 3
    assert [event.text for event in log] == ["m2", "m3", "m4"]
    assert log.texts() == ["m2", "m3", "m4"]
    assert len(log.lines()) == 3


def test_totals_keep_counting_beyond_the_window() -> None:
    log = EventLog(maxlen=2)
    for port in range(5):
        log.record(LogKind.CONNECT, f"127.0.0.1:{port}")
    log.record(LogKind.DISCONNECT, "127.0.0.1:0", code=1000)
    for i in range(10):
        log.append(message(f"m{i}"))

    assert len(log) == 2
    assert log.total == 16
    assert log.open_connections == 4


def test_clear_empties_the_window_but_not_the_totals() -> None:
    log = EventLog(maxlen=10)
    log.record(LogKind.CONNECT, PEER)
    log.append(message("hi"))
    log.clear()

    assert len(log) == 0
    assert list(log) == []
    assert log.total == 2
    assert log.open_connections == 1


def test_open_connections_never_goes_negative() -> None:
    log = EventLog()
    log.record(LogKind.DISCONNECT, PEER, code=1000)
    assert log.open_connections == 0


def test_maxlen_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        EventLog(maxlen=0)


def test_iterating_is_a_snapshot() -> None:
    log = EventLog()
    log.append(message("first"))
    events = iter(log)
    log.append(message("second"))  # would break iteration over the live deque
    assert [event.text for event in events] == ["first"]


def test_record_builds_appends_and_returns_the_event() -> None:
    log = EventLog()
    event = log.record(LogKind.SENT, PEER, text="hi")

    assert event.direction is LogKind.SENT
    assert event.peer == PEER
    assert event.text == "hi"
    assert list(log) == [event]


def test_subscribers_see_every_new_event_until_they_unsubscribe() -> None:
    log = EventLog()
    seen: list[str | None] = []
    also_seen: list[str | None] = []
    unsubscribe = log.subscribe(lambda event: seen.append(event.text))
    log.subscribe(lambda event: also_seen.append(event.text))

    log.append(message("one"))
    log.append(message("two"))
    unsubscribe()
    log.append(message("three"))
    unsubscribe()  # a second call is harmless

    assert seen == ["one", "two"]
    assert also_seen == ["one", "two", "three"]


def test_a_listener_may_unsubscribe_itself_while_being_called() -> None:
    log = EventLog()
    seen: list[str] = []

    def once(event: LogEvent) -> None:
        seen.append(f"once {event.text}")
        unsubscribe()

    unsubscribe = log.subscribe(once)
    log.subscribe(lambda event: seen.append(f"always {event.text}"))
    log.append(message("a"))
    log.append(message("b"))

    assert seen == ["once a", "always a", "always b"]


def test_texts_lists_text_messages_only_optionally_by_direction() -> None:
    log = EventLog()
    log.record(LogKind.CONNECT, PEER, text="/chat")
    log.record(LogKind.RECEIVED, PEER, text="hello")
    log.record(LogKind.RECEIVED, PEER, size=3)
    log.record(LogKind.SENT, PEER, text="Echo: hello")
    log.record(LogKind.NOTE, PEER, text="handler failed: boom")
    log.record(LogKind.DISCONNECT, PEER, code=1000, text="by peer")

    assert log.texts() == ["hello", "Echo: hello"]
    assert log.texts(LogKind.RECEIVED) == ["hello"]
    assert log.texts(LogKind.SENT) == ["Echo: hello"]


# --- LogEvent lines -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (1000, "1000 (normal closure)"),
        (1001, "1001 (going away)"),
        (1009, "1009 (message too big)"),
        (1011, "1011 (internal error)"),
        (4000, "4000"),
        (None, "no close code"),
    ],
)
def test_close_label(code: int | None, label: str) -> None:
    assert close_label(code) == label


def test_disconnect_names_who_closed_the_code_and_the_reason() -> None:
    event = LogEvent(LogKind.DISCONNECT, PEER, code=1009, reason="frame too big", text="by us")
    assert event.describe() == "disconnected by us, 1009 (message too big) 'frame too big'"


def test_disconnect_without_details() -> None:
    assert LogEvent(LogKind.DISCONNECT, PEER).describe() == "disconnected, no close code"


def test_connect_shows_a_path_when_there_is_one() -> None:
    assert LogEvent(LogKind.CONNECT, PEER).describe() == "connected"
    assert LogEvent(LogKind.CONNECT, PEER, text="/chat").describe() == "connected: /chat"


def test_short_text_is_shown_whole() -> None:
    assert message("hi").describe() == "recv text 'hi'"
    assert message("hi", LogKind.SENT).describe() == "send text 'hi'"


def test_long_text_is_truncated_with_its_length() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(500))
    line = message(text).describe()

    assert line.startswith("recv text '" + text[:PREVIEW_CHARS] + "...'")
    assert line.endswith("(500 chars)")
    assert text[: PREVIEW_CHARS + 1] not in line
    assert len(line) < PREVIEW_CHARS + 40


def test_truncated_text_keeps_its_quotes_matched() -> None:
    text = "it's " * 40  # repr() quotes this with double quotes
    line = message(text).describe()
    assert line.startswith("recv text \"it's")
    assert line.endswith('..." (200 chars)')


def test_exactly_preview_length_is_not_truncated() -> None:
    text = "x" * PREVIEW_CHARS
    assert message(text).describe() == f"recv text {text!r}"


def test_binary_shows_its_size_only() -> None:
    event = LogEvent(LogKind.SENT, PEER, size=1024)
    assert event.describe() == "send binary 1024 bytes"


def test_control_frames_without_payload_show_their_kind() -> None:
    assert LogEvent(LogKind.PING, PEER).describe() == "ping"
    assert LogEvent(LogKind.PONG, PEER).describe() == "pong"


def test_format_is_time_peer_marker_description() -> None:
    at = time.mktime((2024, 1, 2, 3, 4, 5, 0, 0, -1)) + 0.25
    received = LogEvent(LogKind.RECEIVED, PEER, text="hi", at=at)
    assert received.format() == f"03:04:05.250  {PEER:<21} < recv text 'hi'"
    closed = LogEvent(LogKind.DISCONNECT, PEER, code=1001, text="by us", at=at)
    assert closed.format() == f"03:04:05.250  {PEER:<21} x disconnected by us, 1001 (going away)"
