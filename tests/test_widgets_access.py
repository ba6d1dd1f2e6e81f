"""The live views for everyone in the room: text size for a projector, new lines for a screen
reader, and the audience view's moderation buttons. Real widgets and, for the buttons, a real
chat server and client; no browser (``test_browser_widgets.py`` renders them in JupyterLab).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import wait_for

from wslab import EventLog, LogKind
from wslab.clients.chat import ChatClient
from wslab.core.close_codes import AppCloseCode
from wslab.core.protocol import render_plain
from wslab.core.room_event import EventKind, RoomEvent
from wslab.servers.chat import ChatServer
from wslab.widgets import AudienceView, ChatBox, MessageLog, projector
from wslab.widgets.live_region import Announcer, LiveRegion
from wslab.widgets.style import ENVIRONMENT, text_size

BIG = "calc(var(--jp-widgets-font-size, 13px) * 1.6)"


@pytest.fixture(autouse=True)
def normal_size(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts at the theme's size, whatever the machine's environment says."""
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    projector(None)
    yield
    projector(None)


def announced(region: LiveRegion, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """What ``region`` is given to read out, batch by batch."""
    batches: list[list[str]] = []
    monkeypatch.setattr(region, "send", lambda content: batches.append(content["lines"]))
    return batches


def test_projector_scales_views_already_shown_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog()
    view = MessageLog(log, title="echo server", height="200px")
    assert view.children[0].style.font_size == "" and view.layout.max_height == "200px"  # the theme's

    assert projector() == 1.6
    assert [part.style.font_size for part in view.children[:2]] == [BIG, BIG]
    assert view.layout.max_height == "320px"  # as many lines in view as before
    box = MessageLog(log)  # created after: at the same size
    assert box.children[1].style.font_size == BIG

    assert projector(False) == 1.0
    assert view.children[1].style.font_size == "" and view.layout.max_height == "200px"
    monkeypatch.setenv(ENVIRONMENT, "2")
    assert projector(None) == 2.0 and text_size() == "calc(var(--jp-widgets-font-size, 13px) * 2)"
    monkeypatch.setenv(ENVIRONMENT, "on")
    assert projector(None) == 1.6
    monkeypatch.setenv(ENVIRONMENT, "big")  # not a number: a warning, and the usual size
    assert projector(None) == 1.0


def test_the_environment_sizes_views_when_they_are_created(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT, "1.6")
    client = ChatClient("ws://127.0.0.1:9/", "ada")  # never started: its view only
    box = ChatBox(client)
    assert [box.input.style.font_size, box.button.style.font_size] == [BIG, BIG]
    assert box.layout.width == "672px"


async def test_a_log_reads_out_only_its_new_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renders are coalesced while an event loop runs (as in a kernel): a burst is one batch."""
    log = EventLog()
    log.record(LogKind.CONNECT, "127.0.0.1:1")
    view = MessageLog(log, title="echo server")
    batches = announced(view.live_region, monkeypatch)
    assert view.live_region.label == "echo server, new lines"

    log.record(LogKind.RECEIVED, "127.0.0.1:1", text="<b>hi</b>")
    view.render()
    view.render()  # nothing new: nothing read
    for n in range(7):
        log.record(LogKind.SENT, "127.0.0.1:1", text=f"echo {n}")
    view.render()
    [first], [summary, *last] = batches[0], batches[1]
    assert first.endswith("'<b>hi</b>'") and "connect" not in first  # what was there before is not news
    assert summary == "7 new lines; the last 5:"
    assert [line.rsplit(" ", 1)[-1] for line in last] == ["2'", "3'", "4'", "5'", "6'"]


async def test_the_audience_view_reads_out_the_room_and_moderates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = ChatServer(server_id="class")
    server = await chat.serve(name="class")
    view = AudienceView(chat, [server.url])
    batches = announced(view.live_region, monkeypatch)
    ana, bob = ChatClient(server.url, "ana").start(), ChatClient(server.url, "bob").start()
    try:
        await wait_for(lambda: ana.live and bob.live and len(chat.room.transcript) == 2)
        view.render()
        assert view.moderation.person.options == ("ana", "bob")  # the names to pick from
        assert [line for batch in batches for line in batch] == [
            ">>> ana joined the chat",
            ">>> bob joined the chat",
        ]

        panel = view.moderation
        panel.press("mute")
        assert panel.status.value == "pick or type the name of the person to mute first"
        panel.person.value = "bob"
        panel.press("mute")
        await wait_for(lambda: chat.room.moderation.is_muted("bob"), what="bob muted by the button")
        await wait_for(lambda: panel.status.value == "muted bob")

        panel.press("clear")  # once: only asks
        assert panel.buttons["clear"].description == "Clear: sure?" and len(chat.room.transcript) == 3
        panel.press("clear")
        await wait_for(lambda: [e.kind for e in chat.room.transcript] == [EventKind.CLEAR])
        await wait_for(lambda: ana.lines() == [">>> the instructor cleared the chat"])

        panel.reason.value = "time for a break"
        panel.press("kick")
        await bob.wait()
        assert bob.closes == [(AppCloseCode.KICKED, "kicked: time for a break")]
        await wait_for(lambda: panel.status.value == "kicked bob" and panel.reason.value == "")
        panel.press("kick")
        await wait_for(lambda: panel.status.value.startswith("nobody called &#x27;bob&#x27;"))
        view.render()
        said = [line for batch in batches for line in batch]  # renders may split or merge batches
        assert "kicked bob" in said and any(line.startswith("nobody called 'bob'") for line in said)
        assert [line for line in said if line.startswith(">>>")][-3:] == [
            ">>> the instructor cleared the chat",
            ">>> bob was removed by the instructor",
            ">>> bob left the chat",
        ]
    finally:
        await ana.stop()
        await bob.stop()
        view.close()


def test_a_cleared_room_is_read_out_from_the_clear_on() -> None:
    region = LiveRegion()
    sent: list[list[str]] = []
    region.send = lambda content: sent.append(content["lines"])  # type: ignore[method-assign]
    transcript = [RoomEvent(EventKind.CHAT, "ana", "old", seq=1)]
    announce = Announcer(region, lambda: transcript, render_plain)
    transcript[:] = [RoomEvent(EventKind.CLEAR, "", seq=2), RoomEvent(EventKind.CHAT, "bob", "new", seq=3)]
    announce()
    assert sent == [[">>> the instructor cleared the chat", "[bob] new"]]
