"""The one place lessons get a URL for the learner's *browser*.

A server started in the kernel listens on ``127.0.0.1:PORT``. Python clients in the kernel
(and programs in a Jupyter terminal) reach it there. A browser reaches it there only when it
runs on the same machine; on Binder or a JupyterHub it reaches the Jupyter server alone, and
jupyter-server-proxy carries ``<base>proxy/PORT/`` on to the kernel's server::

    from wslab.runtime import browser_url
    browser_url(server)           # 'http://127.0.0.1:8000/'  or  '/user/ana/proxy/8000/'
    browser_url(server, "page")   # 'http://127.0.0.1:8000/page'  or  '/user/ana/proxy/8000/page'
    browser_ws_url(server)        # 'ws://127.0.0.1:8000/ws'  or  '/user/ana/proxy/8000/ws'

How this kernel's Jupyter server is found: JupyterHub's ``JUPYTERHUB_SERVICE_PREFIX`` first;
else :func:`jupyter_server.serverapp.list_running_servers` (the ``jpserver-<pid>.json`` files
in the runtime directory, which the kernel shares with its server) matched by pid against
``JPY_PARENT_PID`` (set by jupyter_client when it launches a kernel), or else this process's
ancestors. The decision itself is :func:`wslab.core.places.find_place`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Protocol

from ..core.places import JupyterServer, Place, find_place

__all__ = ["browser_url", "browser_ws_url", "here", "notebook_origins"]


class _Listening(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def running_jupyter_servers() -> list[JupyterServer]:
    """Every Jupyter server whose info file is in this process's Jupyter runtime directory."""
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:  # a kernel without jupyter_server installed beside it
        return []
    servers = []
    for info in list_running_servers():
        with contextlib.suppress(KeyError, TypeError, ValueError):
            servers.append(JupyterServer.from_info(info))
    return servers


def lineage() -> list[int]:
    """The pids that may be this kernel's Jupyter server, nearest first.

    On POSIX, jupyter_client sets ``JPY_PARENT_PID`` to the launching process's pid (a kernel
    spec's wrapper script inherits it): if set, it alone decides, so a kernel that nbclient
    started from a Jupyter terminal is not taken for that server's. Elsewhere (on Windows it
    is a handle, not a pid) this process's ancestors are tried.
    """
    parent = os.environ.get("JPY_PARENT_PID", "")
    if os.name == "posix" and parent.isdigit():
        return [int(parent)]
    try:
        import psutil  # a dependency of ipykernel

        return [process.pid for process in psutil.Process().parents()]
    except Exception:  # no psutil, or a process that vanished while we looked
        return [os.getppid()]


@functools.cache
def here() -> Place:
    """Where this kernel runs, decided once (a kernel does not move); ``here.cache_clear()`` re-decides."""
    return find_place(os.environ, running_jupyter_servers(), lineage())


def _port_host(target: _Listening | int) -> tuple[int, str]:
    if isinstance(target, int):
        return target, "127.0.0.1"
    host = target.host
    return target.port, "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def browser_url(target: _Listening | int, path: str = "") -> str:
    """The address the learner's browser opens for ``path`` on ``target`` (a server or a port)."""
    port, host = _port_host(target)
    return here().browser_url(port, path, host=host)


def browser_ws_url(target: _Listening | int, path: str = "ws") -> str:
    """The WebSocket address a browser uses for ``path`` on ``target`` (see :meth:`Place.browser_ws_url`)."""
    port, host = _port_host(target)
    return here().browser_ws_url(port, path, host=host)


def notebook_origins() -> list[str]:
    """What a server must add to its allowed origins so that the notebook page itself (an
    in-notebook browser client) may connect: the local Jupyter server's origins, or nothing
    (through the proxy the notebook and the server share the Jupyter server's origin)."""
    return here().notebook_origins
