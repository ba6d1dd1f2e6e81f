"""The audience view's moderation controls: kick (with a reason), mute, unmute, clear.

Each button calls the chat server's own method (:meth:`~wslab.servers.chat.ChatServer.kick`,
``mute``, ``unmute``, ``clear``), which the room decides and the broker carries to every server
(:mod:`wslab.core.moderation`): what a click does, a cell can do too. Clear asks to be pressed
twice, since it empties every screen in the room. What happened is shown under the buttons and
read out to screen readers, through the view's live region.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.moderation import ModerationError
from .live_region import LiveRegion
from .style import text_size

if TYPE_CHECKING:
    from ..servers.chat import ChatServer

__all__ = ["ModerationPanel"]


def _label(text: str) -> str:
    """A control's label as HTML, so that it takes the projector's size too (``.style``)."""
    size = text_size()
    return f"<span style='font-size:{size}'>{html.escape(text)}</span>" if size else html.escape(text)


class ModerationPanel(widgets.VBox):
    """A name (from who is in, or typed), a reason, and one button per decision."""

    def __init__(self, server: ChatServer, region: LiveRegion) -> None:
        self.server = server
        self._region = region
        self._clear_armed = False
        self.person = widgets.Combobox(
            placeholder="a name in the room", ensure_option=False, description_allow_html=True
        )
        self.reason = widgets.Text(placeholder="only they read it", description_allow_html=True)
        self.buttons = {
            verb: widgets.Button(description=label, tooltip=tip)
            for verb, label, tip in [
                ("kick", "Kick", "close their connection; they read the reason and stay out 10 minutes"),
                ("mute", "Mute", "they stay and read, but cannot send"),
                ("unmute", "Unmute", "they may send again"),
                ("clear", "Clear chat", "remove every message from every screen"),
            ]
        }
        for verb, button in self.buttons.items():
            button.on_click(lambda _, verb=verb: self.press(verb))
        #: What the last button did, or why it did nothing.
        self.status = widgets.HTML()
        super().__init__(
            [widgets.HBox([self.person, self.reason]), widgets.HBox(list(self.buttons.values())), self.status]
        )
        self.add_class("wslab-moderation")
        self.restyle()

    def restyle(self) -> None:
        """Labels, fields, buttons and status at the current text size (``.style``)."""
        self.person.description = _label("Person")
        self.reason.description = _label("Reason")
        for part in (self.person, self.reason, *self.buttons.values(), self.status):
            part.style.font_size = text_size()

    def update(self, everyone: list[str]) -> None:
        """Offer the names in the room (typing another one still works: it may be on another server)."""
        if list(self.person.options) != everyone:
            self.person.options = tuple(everyone)

    def press(self, verb: str) -> None:
        """What clicking ``verb``'s button does (``"kick"``, ``"mute"``, ``"unmute"``, ``"clear"``)."""
        if verb == "clear" and not self._clear_armed:
            self._clear_armed = True
            self.buttons["clear"].description = "Clear: sure?"
            self._say("press Clear again to remove every message from every screen")
            return
        self._disarm()
        name, reason = self.person.value.strip(), self.reason.value.strip()
        if verb != "clear" and not name:
            self._say(f"pick or type the name of the person to {verb} first")
            return
        actions: dict[str, Callable[[], Awaitable[None]]] = {
            "kick": lambda: self.server.kick(name, reason=reason),
            "mute": lambda: self.server.mute(name),
            "unmute": lambda: self.server.unmute(name),
            "clear": self.server.clear,
        }
        done = {"kick": f"kicked {name}", "mute": f"muted {name}", "unmute": f"unmuted {name}"}
        asyncio.get_running_loop().create_task(self._do(actions[verb](), done.get(verb, "cleared the chat")))

    async def _do(self, action: Awaitable[Any], done: str) -> None:
        try:
            await action
        except ModerationError as exc:
            self._say(str(exc))
            return
        self.reason.value = ""
        self._say(done)

    def _disarm(self) -> None:
        self._clear_armed = False
        self.buttons["clear"].description = "Clear chat"

    def _say(self, text: str) -> None:
        self.status.value = html.escape(text)
        self._region.announce([text])
