"""How big the views' text is: JupyterLab's own size, or larger for a projector, with one setting.

Every wslab view sizes its text relative to JupyterLab's widget font size
(``--jp-widgets-font-size``, 13 px by default, which follows the user's theme settings), times
one scale: 1 normally; :data:`PROJECTOR_SCALE` or whatever :func:`projector` is given when the
room reads the screen from the back. It applies to views created from then on and to those
already shown. The environment variable ``WSLAB_PROJECTOR`` (``1.6``, or ``on``) sets it for a
whole session before any view exists: ``WSLAB_PROJECTOR=1.6 make lab``.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable

__all__ = ["ENVIRONMENT", "PROJECTOR_SCALE", "follow", "projector", "scale", "scaled", "text_size"]

#: The environment variable read when no :func:`projector` call has set the scale.
ENVIRONMENT = "WSLAB_PROJECTOR"
#: ``projector()``'s scale: 13 px text becomes about 21 px.
PROJECTOR_SCALE = 1.6
_LIMITS = (0.5, 4.0)

logger = logging.getLogger("wslab.widgets")
_chosen: float | None = None  # set by projector(); else the environment decides
_followers: list[weakref.WeakMethod[Callable[[], None]]] = []


def _from_environment() -> float:
    raw = os.environ.get(ENVIRONMENT, "").strip().lower()
    if raw in ("", "0", "off", "no", "false"):
        return 1.0
    if raw in ("on", "yes", "true"):
        return PROJECTOR_SCALE
    try:
        return _clamped(float(raw))
    except ValueError:
        logger.warning("%s=%r is not a number (try 1.6, or on): text stays as it is", ENVIRONMENT, raw)
        return 1.0


def _clamped(value: float) -> float:
    low, high = _LIMITS
    return min(high, max(low, value))


def scale() -> float:
    """The scale in force: the last :func:`projector` call's, else ``WSLAB_PROJECTOR``'s, else 1."""
    return _chosen if _chosen is not None else _from_environment()


def projector(on: bool | None = True, *, scale: float = PROJECTOR_SCALE) -> float:
    """Make every view's text ``scale`` times larger (``projector(False)``: back to normal;
    ``projector(None)``: as ``WSLAB_PROJECTOR`` says).

    Views already on the screen follow at once. Returns the scale now in force.
    """
    global _chosen
    _chosen = None if on is None else _clamped(scale) if on else 1.0
    for follower in list(_followers):
        restyle = follower()
        if restyle is None:
            _followers.remove(follower)
            continue
        try:
            restyle()
        except Exception:  # one closed view must not keep the others small
            logger.debug("restyling a view failed", exc_info=True)
    return _chosen if _chosen is not None else _from_environment()


def follow(restyle: Callable[[], None]) -> None:
    """Call the bound method ``restyle`` whenever the scale changes (weakly: a view that is gone is
    forgotten), and once now."""
    _followers.append(weakref.WeakMethod(restyle))
    restyle()


def text_size(factor: float = 1.0) -> str:
    """CSS for text ``factor`` times the widgets' size, at the current scale: an ipywidgets
    ``style.font_size``; ``""`` (the theme's own) when nothing is scaled."""
    times = scale() * factor
    return "" if times == 1 else f"calc(var(--jp-widgets-font-size, 13px) * {times:g})"


def scaled(pixels: float) -> str:
    """A length in pixels at the current scale (a view's width or height): ``"512px"``."""
    return f"{pixels * scale():g}px"
