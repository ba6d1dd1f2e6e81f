"""An in-notebook browser client: a chat user whose WebSocket the *browser* opens.

Every other client in the lessons runs in the kernel and talks to servers over loopback. This
widget's front end (``static/browser_chat.js``, an anywidget module) runs in the page that
shows the notebook: it fetches a token with ``fetch`` and opens its own ``WebSocket`` to the
app, at the address :func:`wslab.runtime.browser_url` gives, so it takes the same road as the
chat page in a browser tab: straight to ``127.0.0.1:PORT`` locally, through the Jupyter
server's proxy on Binder or a hub. Same protocol as the page: token over HTTP, a json
``hello`` with the name (and ``resume`` with the last seq after a cut), text rendered as text.

Locally the notebook page is another origin than the app: create the app with
``allowed_origins=notebook_origins()`` (:mod:`wslab.runtime`) so its Origin guard lets it in.
The kernel only learns what the browser reports back: ``state`` and ``last_seq``.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..runtime.urls import browser_url
from .style import follow
from .style import scale as text_scale

__all__ = ["BrowserChat"]

_STATIC = Path(__file__).parent.parent / "static"


class BrowserChat(anywidget.AnyWidget):
    """``BrowserChat(server, name="grace")``: join ``server``'s chat from this notebook's browser."""

    _esm = _STATIC / "browser_chat.js"
    # Sizes in em (the view's size follows the projector setting, ``scale``); colours inherited
    # from the theme, light or dark, so notices differ by style, not by a faint grey.
    _css = """
    .wslab-browser-chat { border: 1px solid #ccc; padding: 4px 6px; max-width: 50em; }
    .wslab-browser-chat .wslab-bc-where { font-size: 0.85em; overflow-wrap: anywhere; }
    .wslab-browser-chat ol { list-style: none; margin: 4px 0; padding: 0; font: 1em monospace; }
    .wslab-browser-chat li.notice { font-style: italic; }
    .wslab-browser-chat form { display: flex; gap: 4px; }
    .wslab-browser-chat input, .wslab-browser-chat button { flex: 1; font-size: 1em; }
    .wslab-browser-chat button { flex: 0 0 auto; }
    .wslab-browser-chat .wslab-bc-live { position: absolute; width: 1px; height: 1px; margin: -1px;
      overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
    """

    client_id = traitlets.Unicode("").tag(sync=True)  # finds the model's connection from any view
    url = traitlets.Unicode("").tag(sync=True)  # the app's root, as the browser reaches it
    name = traitlets.Unicode("").tag(sync=True)
    code = traitlets.Unicode("").tag(sync=True)  # the room's join code, if it has one
    scale = traitlets.Float(1.0).tag(sync=True)  # the projector setting (wslab.widgets.projector)
    # Reported by the browser, in custom messages (observable here, never sent back):
    state = traitlets.Unicode("connecting")
    last_seq = traitlets.Int(-1)

    def __init__(self, server: Any, *, name: str, code: str = "", **kwargs: Any) -> None:
        super().__init__(client_id=uuid.uuid4().hex, url=browser_url(server), name=name, code=code, **kwargs)
        self.on_msg(self._reported)
        follow(self._restyle)

    def _restyle(self) -> None:
        self.scale = text_scale()

    def _reported(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict):
            with contextlib.suppress(traitlets.TraitError, TypeError, ValueError):
                self.state = str(content.get("state", self.state))
                self.last_seq = int(content.get("last_seq", self.last_seq))

    def __repr__(self) -> str:
        # Shown where widgets cannot render; constant so stored outputs stay comparable.
        return f"BrowserChat({self.name!r}: a client that runs in your browser; run the notebook to see it)"
