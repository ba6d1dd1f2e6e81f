"""Live views for notebooks: widgets fed by :class:`wslab.events.EventLog`.

Everything reaches the browser through widget state (trait updates), never through
``with output:`` from a background task: a server's connection handlers run while no
cell is executing, and only state updates render live in JupyterLab then.
"""

from __future__ import annotations

import asyncio
import html

import ipywidgets as widgets

from .events import EventLog, LogEvent

__all__ = ["MessageLog"]

#: Re-render at most this often: a burst of messages becomes one widget update.
RENDER_INTERVAL = 0.05


class MessageLog(widgets.VBox):
    """A scrolling, bounded view of an :class:`EventLog`, newest line at the bottom.

    The view shows the log's window (its ``maxlen`` newest events), so memory stays flat
    however long a demo runs. All text is HTML-escaped: a message is data, never markup.
    """

    def __init__(self, log: EventLog, *, title: str = "Message log", height: str = "220px") -> None:
        self.events = log
        self._title = title
        self._url = ""
        self._header = widgets.HTML()
        self._body = widgets.HTML()
        self._body.add_class("wslab-log-lines")
        self._scheduled: asyncio.TimerHandle | None = None
        super().__init__(
            [self._header, self._body],
            layout=widgets.Layout(border="1px solid #ccc", padding="4px", max_height=height, overflow="auto"),
        )
        self.add_class("wslab-log")
        self._unsubscribe = log.subscribe(self._on_event)
        self.render()

    def show_url(self, url: str) -> None:
        """Show where the logged server listens, in the header."""
        self._url = url
        self.render()

    def _on_event(self, _event: LogEvent) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.render()
            return
        if self._scheduled is None:
            self._scheduled = loop.call_later(RENDER_INTERVAL, self.render)

    def render(self) -> None:
        """Push the current window of the log to the browser."""
        self._scheduled = None
        where = f" &middot; <code>{html.escape(self._url)}</code>" if self._url else ""
        self._header.value = (
            f"<b>{html.escape(self._title)}</b>{where} &middot; "
            f"<span class='wslab-log-count'>{self.events.open_connections} connected</span> &middot; "
            f"{self.events.total} events"
        )
        lines = "\n".join(html.escape(line) for line in self.events.lines()) or "(no events yet)"
        self._body.value = f"<pre style='margin:0;font-size:12px;line-height:1.3'>{lines}</pre>"

    def close(self) -> None:
        self._unsubscribe()
        if self._scheduled is not None:
            self._scheduled.cancel()
        super().close()

    def __repr__(self) -> str:
        # Shown where widgets cannot render; constant so stored outputs stay comparable.
        return f"MessageLog({self._title!r}: a live widget; run the notebook to see it)"
