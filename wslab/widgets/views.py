"""Live views for notebooks: widgets fed by logs, chat clients and chat servers.

Everything reaches the browser through widget state (trait updates), never through
``with output:`` from a background task: a server's connection handlers run while no
cell is executing, and only state updates render live in JupyterLab then. Updates are
coalesced (at most one render per :data:`RENDER_INTERVAL`), so a burst of a thousand
messages costs a handful of widget updates, not a thousand.

After every cell, each view that changed sends its state once more, so that a notebook
executed and saved without a browser (``make notebooks``) stores what the views showed
at the end, not when they were created: see :class:`_Live`.
"""

from __future__ import annotations

import asyncio
import html
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from IPython import get_ipython

from ..core.connection_log import LogEvent
from ..core.protocol import render_plain
from ..core.room_event import RoomEvent
from ..runtime.event_log import EventLog
from .audience import reach_url
from .live_region import Announcer, LiveRegion
from .moderation_panel import ModerationPanel
from .style import follow, scaled, text_size

if TYPE_CHECKING:
    from ..clients.chat import ChatClient
    from ..clients.fleet import FleetClient
    from ..servers.chat import ChatServer

__all__ = ["AudienceView", "ChatBox", "ChatPanel", "FleetView", "MessageLog", "ServerPanel"]

#: Re-render at most this often.
RENDER_INTERVAL = 0.05

logger = logging.getLogger("wslab.widgets")

# 1em: the widget's text size, which follows the theme and the projector setting (.style).
_PRE = "<pre style='margin:0;font-size:1em;line-height:1.35;white-space:pre-wrap'>{}</pre>"


class _Live:
    """One view's link to the browser: coalesced renders, and a copy for the saved notebook.

    ``render`` writes the ``value`` of the HTML widgets in ``parts``. :meth:`poke` renders
    soon after the first of a burst of changes, once. With ``every``, it also renders every
    that many seconds while an event loop runs, for figures that change with time.

    Why re-send after each cell: JupyterLab applies every trait update it receives, but
    nbclient (``jupyter nbconvert --execute``, which saves the lessons' widget state) keeps
    only the comm messages whose parent header is the cell it is executing
    (``NotebookClient._async_poll_output_msg``). ipykernel takes the parent from a context
    variable (``Kernel.get_parent``), so an update sent from a server's connection handler,
    a client's reader task or a render timer carries the cell that started that task or
    armed that timer, often long finished: nbclient drops it, and the saved view stays as it
    was first shown. So after every cell (IPython's ``post_run_cell`` event, which runs in
    the cell's own context), each view renders what is pending and sends the parts that
    changed since then again, parented to the cell that just ran. Live updates while no cell
    runs are untouched; the final cell of a lesson leaves the final state saved.
    """

    def __init__(self, render: Callable[[], None], parts: list[widgets.HTML], *, every: float = 0.0) -> None:
        self._render = render
        self._parts = parts
        self._every = every
        self._scheduled: asyncio.TimerHandle | None = None
        self._synced: list[str] = []
        _after_cell.add(self)

    def poke(self, *_: object) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._render()  # no loop (a plain script, a test): render at once
            return
        if self._scheduled is None:
            self._scheduled = loop.call_later(self._every or RENDER_INTERVAL, self._fire)

    def _fire(self) -> None:
        self._scheduled = None
        self._render()
        if self._every:
            self.poke()

    def show(self) -> None:
        """The first render, from the cell that creates the view: saved as it is sent."""
        self._render()
        self._synced = [part.value for part in self._parts]
        if self._every:
            self.poke()

    def sync(self) -> None:
        """Render what is pending now, then re-send each part that changed since the last sync."""
        if self._scheduled is not None:
            self.cancel()
            self._fire()
        for index, part in enumerate(self._parts):
            if index >= len(self._synced) or self._synced[index] != part.value:
                part.send_state("value")
        self._synced = [part.value for part in self._parts]

    def cancel(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def close(self) -> None:
        self.cancel()
        _after_cell.discard(self)


class _AfterCell:
    """The live views to sync after each cell; hooks into IPython when the first one appears."""

    def __init__(self) -> None:
        self._views: weakref.WeakSet[_Live] = weakref.WeakSet()
        self._hooked = False

    def add(self, view: _Live) -> None:
        self._views.add(view)
        if not self._hooked:
            shell = get_ipython()
            if shell is not None:
                shell.events.register("post_run_cell", self.sync_all)
                self._hooked = True

    def discard(self, view: _Live) -> None:
        self._views.discard(view)

    def sync_all(self, _result: object = None) -> None:
        for view in list(self._views):
            try:
                view.sync()
            except Exception:  # IPython would print it into the cell's output
                logger.debug("syncing a view after a cell failed", exc_info=True)


_after_cell = _AfterCell()


def _lines_html(lines: list[str], empty: str) -> str:
    return _PRE.format("\n".join(html.escape(line) for line in lines) or html.escape(empty))


def _size_text(*parts: widgets.DOMWidget) -> None:
    """Every part's text at the current scale (``.style``): HTML, buttons and text fields alike."""
    for part in parts:
        part.style.font_size = text_size()


def _px(length: str) -> float | None:
    return float(length[:-2]) if length.endswith("px") else None


class MessageLog(widgets.VBox):
    """A scrolling, bounded view of an :class:`EventLog`, newest line at the bottom.

    The view shows the log's window (its ``maxlen`` newest events), so memory stays flat
    however long a demo runs. All text is HTML-escaped: a message is data, never markup. New
    lines are also read out to screen readers (:class:`~wslab.widgets.live_region.LiveRegion`).
    """

    def __init__(self, log: EventLog, *, title: str = "Message log", height: str = "220px") -> None:
        self.events = log
        self._title = title
        self._url = ""
        self._height = height
        self._header = widgets.HTML()
        self._body = widgets.HTML()
        self._body.add_class("wslab-log-lines")
        self.live_region = LiveRegion(label=f"{title}, new lines")
        self._announce = Announcer(self.live_region, lambda: tuple(log), LogEvent.format)
        self._live = _Live(self.render, [self._header, self._body])
        super().__init__(
            [self._header, self._body, self.live_region],
            layout=widgets.Layout(border="1px solid #ccc", padding="4px", max_height=height, overflow="auto"),
        )
        self.add_class("wslab-log")
        follow(self._restyle)
        self._unsubscribe = log.subscribe(self._on_event)
        self._live.show()

    def _restyle(self) -> None:
        _size_text(self._header, self._body)
        pixels = _px(self._height)
        self.layout.max_height = scaled(pixels) if pixels is not None else self._height

    def show_url(self, url: str) -> None:
        """Show where the logged server listens, in the header."""
        self._url = url
        self._live.poke()

    def _on_event(self, _event: LogEvent) -> None:
        self._live.poke()

    def render(self) -> None:
        """Push the current window of the log to the browser."""
        url = html.escape(self._url)
        where = f" &middot; <code>{url}</code>" if url else ""
        if self._url.startswith(("http://", "https://", "/")):  # a page (wslab.runtime.urls): a link to it
            where = f' &middot; <a href="{url}" target="_blank"><code>{url}</code></a>'
        self._header.value = (
            f"<b>{html.escape(self._title)}</b>{where} &middot; "
            f"<span class='wslab-log-count'>{self.events.open_connections} connected</span> &middot; "
            f"{self.events.total} events"
        )
        self._body.value = _lines_html(self.events.lines(), "(no events yet)")
        self._announce()

    def close(self) -> None:
        self._unsubscribe()
        self._live.close()
        self.live_region.close()
        super().close()

    def __repr__(self) -> str:
        # Shown where widgets cannot render; constant so stored outputs stay comparable.
        return f"MessageLog({self._title!r}: a live widget; run the notebook to see it)"


class ChatPanel(widgets.VBox):
    """One chat user's screen: status line and the newest ``lines`` of its transcript."""

    children: tuple[Any, ...]  # ipywidgets' trait, untyped: what it holds

    def __init__(
        self, client: ChatClient, *, lines: int = 12, width: str = "320px", show_via: bool = False
    ) -> None:
        self.client = client
        self._lines = lines
        self._show_via = show_via
        self._width = width
        self._status = widgets.HTML()
        self._body = widgets.HTML()
        self.live_region = LiveRegion(label=f"{client.name}'s chat, new lines")
        self._announce = Announcer(self.live_region, lambda: client.events, self._line)
        self._notices_read = len(client.notices)
        self._live = _Live(self.render, [self._status, self._body])
        super().__init__(
            [self._status, self._body, self.live_region],
            layout=widgets.Layout(border="1px solid #ccc", padding="4px", width=width),
        )
        self.add_class("wslab-chat-panel")
        follow(self._restyle)
        self._unsubscribe = client.subscribe(self._live.poke)
        self._live.show()

    def _restyle(self) -> None:
        _size_text(self._status, self._body)
        pixels = _px(self._width)
        self.layout.width = scaled(pixels) if pixels is not None else self._width

    def _line(self, event: RoomEvent) -> str:
        # With several servers (lesson 06), say which one each line came through.
        via = f"   via {event.via or self.client.server}" if self._show_via else ""
        return render_plain(event) + via

    def render(self) -> None:
        c = self.client
        # Not live after a connection has ended: dropped (and reconnecting) or stopped.
        state = (
            "live" if c.live else "rejected" if c.rejected else "disconnected" if c.closes else "connecting"
        )
        missing = sum(last - first + 1 for first, last in c.tracker.missing)
        self._status.value = (
            f"<b>{html.escape(c.name)}</b> &middot; {state} &middot; seq {c.tracker.last or 0}"
            f" &middot; {len(c.events)} events &middot; missing {missing}"
        )
        notices = [f"* {n}" for n in c.notices[-3:]]
        lines = [self._line(e) for e in c.events[-self._lines :]]
        self._body.value = _lines_html(lines + notices, "(nothing yet)")
        self._announce()
        if len(c.notices) > self._notices_read:
            self.live_region.announce([f"* {n}" for n in c.notices[self._notices_read :]])
            self._notices_read = len(c.notices)

    def close(self) -> None:
        self._unsubscribe()
        self._live.close()
        self.live_region.close()
        super().close()

    def __repr__(self) -> str:
        return f"ChatPanel({self.client.name!r}: a live widget; run the notebook to see it)"


class ChatBox(ChatPanel):
    """A chat panel you can type into: text box, Send button, and the live transcript."""

    def __init__(self, client: ChatClient, *, lines: int = 15, width: str = "420px") -> None:
        super().__init__(client, lines=lines, width=width)
        self.input = widgets.Text(
            placeholder="say something, press Enter", layout=widgets.Layout(width="70%")
        )
        self.button = widgets.Button(description="Send")
        self.input.on_submit(lambda _: self.submit())
        self.button.on_click(lambda _: self.submit())
        self.children = (*self.children, widgets.HBox([self.input, self.button]))
        self.add_class("wslab-chat-box")
        self._restyle()  # the panel follows the scale already; this call sizes the new controls

    def _restyle(self) -> None:
        super()._restyle()
        if hasattr(self, "button"):  # the panel's own first restyle comes before these exist
            _size_text(self.input, self.button)

    def submit(self) -> None:
        """Send what is typed in the box (what Enter and the Send button do)."""
        text = self.input.value.strip()
        if text:
            self.input.value = ""
            asyncio.get_running_loop().create_task(self.client.send(text))

    def __repr__(self) -> str:
        return f"ChatBox({self.client.name!r}: a live widget; run the notebook to see it)"


class ServerPanel(widgets.HTML):
    """A chat server at a glance: who is connected, messages per second, deliveries, losses.

    It refreshes itself every ``interval`` seconds while an event loop runs; :meth:`close`
    stops that.
    """

    def __init__(self, server: ChatServer, *, title: str = "chat server", interval: float = 0.5) -> None:
        super().__init__()
        self.server = server
        self._title = title
        self._live = _Live(self.render, [self], every=interval)
        self.add_class("wslab-server-panel")
        follow(self._restyle)
        self._live.show()

    def _restyle(self) -> None:
        _size_text(self)

    def render(self) -> None:
        room, stats = self.server.room, self.server.room.stats
        users = ", ".join(room.users) or "nobody"
        self.value = (
            f"<b>{html.escape(self._title)}</b> ({html.escape(room.server_id)},"
            f" broker: {html.escape(self.server.broker.kind)})"
            f"<br>connected: {len(room.users)} ({html.escape(users)})"
            f"<br>messages/s: {stats.rate(now=room.clock()):.1f} &middot; published {stats.published}"
            f" &middot; delivered {stats.delivered} &middot; dropped {stats.dropped}"
            f" &middot; too slow {stats.evicted}"
        )

    def close(self) -> None:
        self._live.close()
        super().close()

    def __repr__(self) -> str:
        return f"ServerPanel({self._title!r}: a live widget; run the notebook to see it)"


def _link(url: str) -> str:
    """A join URL the instructor can click (it opens the room in a new tab), shown in full."""
    shown = html.escape(url)
    return f'<a href="{shown}" target="_blank" rel="noopener"><code>{shown}</code></a>'


class AudienceView(widgets.HBox):
    """The instructor's screen in live-audience mode: where to join, who is in, what they say,
    and the controls to moderate them (:class:`~wslab.widgets.moderation_panel.ModerationPanel`).

    Shows the join URL(s) with a QR code, the number of people connected, and the room's
    newest messages, updating live from the chat server's own event stream.
    """

    def __init__(self, server: ChatServer, urls: list[str], *, qr: str = "", lines: int = 15) -> None:
        self.server = server
        self._lines = lines
        links = "<br>".join(_link(url) for url in urls)
        check = f"<br><small>first, from a phone: {_link(reach_url(urls[0]))}</small>" if urls else ""
        self._join = widgets.HTML(f"<b>Join the chat</b><br>{links}<br>{qr}{check}")
        self._count = widgets.HTML()
        self._count.add_class("wslab-audience-count")
        self._body = widgets.HTML()
        self._body.add_class("wslab-audience-lines")
        self.live_region = LiveRegion(label="the class chat, new lines")
        self._announce = Announcer(self.live_region, lambda: tuple(server.room.transcript), render_plain)
        #: Kick, mute, unmute, clear: what the instructor's clicks do (``server.kick(...)`` ...).
        self.moderation = ModerationPanel(server, self.live_region)
        self._live = _Live(self.render, [self._count, self._body, self.moderation.status])
        room = widgets.VBox(
            [self._count, self._body, self.live_region, self.moderation], layout=widgets.Layout(width="60%")
        )
        super().__init__([self._join, room], layout=widgets.Layout(border="1px solid #ccc", padding="4px"))
        self.add_class("wslab-audience")
        follow(self._restyle)
        self._unsubscribe = server.subscribe(self._live.poke)
        self._live.show()

    def _restyle(self) -> None:
        _size_text(self._join, self._count, self._body)
        self.moderation.restyle()

    def render(self) -> None:
        everyone = self.server.room.everyone
        nobody = "nobody now" if self.server.room.transcript else "nobody yet"  # after a class, not before
        self._count.value = f"<b>{len(everyone)}</b> connected: {html.escape(', '.join(everyone) or nobody)}"
        lines = [render_plain(event) for event in list(self.server.room.transcript)[-self._lines :]]
        self._body.value = _lines_html(lines, "(no messages yet)")
        self.moderation.update(everyone)
        self._announce()

    def close(self) -> None:
        self._unsubscribe()
        self._live.close()
        self.live_region.close()
        self.moderation.close()
        super().close()

    def __repr__(self) -> str:
        return "AudienceView(a live widget; run the notebook to see it)"


#: A tile's background per service status (the page's colours).
_FLEET_COLOURS = {"healthy": "#dff5df", "deploying": "#dde8ff", "failed": "#ffd6d6", "rolled back": "#fff0c2"}


class FleetView(widgets.VBox):
    """Lesson 07's dashboard in the notebook: one tile per service, fed by a :class:`FleetClient`.

    The same feed as the page's, over a real WebSocket; escaped like every view here, so a
    service name is shown as text.
    """

    def __init__(self, client: FleetClient, *, title: str = "fleet") -> None:
        self.client = client
        self._title = title
        self._status = widgets.HTML()
        self._tiles = widgets.HTML()
        self._live = _Live(self.render, [self._status, self._tiles])
        super().__init__(
            [self._status, self._tiles], layout=widgets.Layout(border="1px solid #ccc", padding="4px")
        )
        self.add_class("wslab-fleet")
        follow(self._restyle)
        client.on_change = self._live.poke
        self._live.show()

    def _restyle(self) -> None:
        _size_text(self._status, self._tiles)

    def render(self) -> None:
        c = self.client
        state = "live" if c.live else "stopped" if c.stopped else "reconnecting" if c.closes else "connecting"
        self._status.value = (
            f"<b>{html.escape(self._title)}</b> &middot; {state} &middot; seq {c.fleet.seq}"
            f" &middot; {len(c.seen)} changes seen &middot; via <code>{html.escape(c.server)}</code>"
        )
        tiles = [
            # Dark text on the tile's light colour, whatever the theme's text colour is.
            f"<div style='background:{_FLEET_COLOURS.get(str(s.status), '#eee')};color:#112233;"
            f"padding:4px 8px;border-radius:4px;min-width:7em'><b>{html.escape(s.service)}</b><br>"
            f"v{s.version} &middot; {html.escape(str(s.status))}</div>"
            for s in c.fleet.services.values()
        ]
        self._tiles.value = (
            "<div style='display:flex;flex-wrap:wrap;gap:6px'>" + "".join(tiles) + "</div>"
            if tiles
            else html.escape("(no snapshot yet)")
        )

    def close(self) -> None:
        self._live.close()
        super().close()

    def __repr__(self) -> str:
        return f"FleetView({self._title!r}: a live widget; run the notebook to see it)"
