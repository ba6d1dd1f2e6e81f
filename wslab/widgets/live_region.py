"""New lines of a live view, for screen readers: an ARIA live region that gets only what is new.

wslab's views redraw their text whole (an HTML widget's value, replaced), which a screen reader
never announces; announcing the whole log again at each change would be worse. So each live
log carries a :class:`LiveRegion`: visually hidden, present (and empty) from the moment the view
is shown, and given each batch of new lines by an :class:`Announcer`, which a screen reader
then reads politely, once. Lines reach it as custom messages, never as saved widget state: a
saved notebook announces nothing when it is opened. The front end is ``static/live_region.js``
(an anywidget module, like :class:`~wslab.widgets.BrowserChat`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import anywidget
import traitlets

__all__ = ["MAX_LINES", "Announcer", "LiveRegion", "newer"]

_STATIC = Path(__file__).parent.parent / "static"
#: Lines read out per batch: a burst of a hundred is summed up, not read to the end.
MAX_LINES = 5
T = TypeVar("T")


class LiveRegion(anywidget.AnyWidget):
    """A visually hidden ``role="log"`` region (polite) that receives a view's new lines."""

    _esm = _STATIC / "live_region.js"
    _css = (
        ".wslab-live-region { position: absolute !important; width: 1px; height: 1px; margin: -1px;"
        " overflow: hidden; clip-path: inset(50%); white-space: nowrap; }"
    )
    #: What a screen reader calls the region: "echo server, new lines".
    label = traitlets.Unicode("").tag(sync=True)

    def announce(self, lines: Sequence[str]) -> None:
        """Have ``lines`` read out (the last :data:`MAX_LINES`, after a count when there are more)."""
        if not lines:
            return
        shown = list(lines[-MAX_LINES:])
        if len(lines) > MAX_LINES:
            shown.insert(0, f"{len(lines)} new lines; the last {MAX_LINES}:")
        self.send({"lines": shown})

    def __repr__(self) -> str:
        return "LiveRegion(new lines for screen readers)"


def newer(items: Sequence[T], last: T | None) -> list[T]:
    """The items after ``last`` (the same object), oldest first; all of them when ``last`` is gone
    (cleared, or pushed out of a bounded window)."""
    found: list[T] = []
    for item in reversed(items):
        if item is last:
            break
        found.append(item)
    found.reverse()
    return found


class Announcer(Generic[T]):
    """Announces what ``items()`` gained since the last call, each as ``line(item)``.

    What is there when it is created is not news: only what arrives after. Items are told apart
    by identity (events are new objects), so a bounded window, a cleared transcript or a broker's
    new numbering never makes it read old lines again.
    """

    def __init__(
        self, region: LiveRegion, items: Callable[[], Sequence[T]], line: Callable[[T], Any]
    ) -> None:
        self.region = region
        self._items = items
        self._line = line
        current = items()
        self._last: T | None = current[-1] if current else None

    def __call__(self) -> None:
        new = newer(self._items(), self._last)
        if new:
            self._last = new[-1]
            self.region.announce([str(self._line(item)) for item in new])
