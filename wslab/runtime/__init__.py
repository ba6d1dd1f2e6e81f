"""What every asyncio shell stands on: servers that live in a kernel or a script
(``handles.py``), ports (``net.py``), waits with deadlines (``waiting.py``), signals, TLS,
logging, the protocol heartbeat (``keepalive.py``) and the URLs a browser can reach (``urls.py``).

The lessons start and stop servers with ``wslab.serve`` / ``wslab.stop_all``; from here they
use (each loads its module on first use):

* :func:`close_details`: who closed a connection, with which code and reason (lesson 03);
* :func:`browser_url`, :func:`notebook_origins`: addresses the learner's browser can open,
  and the origins of this notebook's pages (lesson 04);
* :func:`keep_alive`: a :class:`~wslab.core.HeartbeatPolicy` on a real connection (lesson 05);
* :func:`explain_tls_error`, :class:`JsonFormatter`, :func:`free_port`: lesson 08.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .closes import close_details
    from .keepalive import keep_alive
    from .logs import JsonFormatter
    from .net import free_port
    from .tls import explain_tls_error
    from .urls import browser_url, notebook_origins

__all__ = [
    "JsonFormatter",
    "browser_url",
    "close_details",
    "explain_tls_error",
    "free_port",
    "keep_alive",
    "notebook_origins",
]

lazy_exports(
    globals(),
    {
        "JsonFormatter": ".logs",
        "browser_url": ".urls",
        "close_details": ".handles",
        "explain_tls_error": ".tls",
        "free_port": ".net",
        "keep_alive": ".keepalive",
        "notebook_origins": ".urls",
    },
)
