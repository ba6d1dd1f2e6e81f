"""Where the learner's browser is, relative to this kernel, and so which URL reaches a server.

I/O-free: it takes the kernel's environment variables, the running Jupyter servers' info
(``jpserver-*.json`` dicts) and this process's ancestry, and decides. :mod:`wslab.runtime.urls`
gathers those inputs and is what lessons import.

Three places:

* ``LOCAL``: no Jupyter server runs this kernel (a script, nbclient), or one with base URL
  ``/`` and no hub. Browser and kernel share a machine: ``http://127.0.0.1:PORT/``.
* ``HUB``: JupyterHub (and Binder, which runs on it) sets ``JUPYTERHUB_SERVICE_PREFIX`` (the
  single-user server's base URL, e.g. ``/user/ana/``). The browser is elsewhere; only the
  Jupyter server is reachable, and jupyter-server-proxy forwards ``<base>proxy/PORT/...``
  (HTTP and WebSocket) to ``localhost:PORT/...``.
* ``PREFIXED``: a Jupyter server with another base URL than ``/`` (as a hub's single-user
  server has) but no hub variable: treated like a hub, through the proxy.

A proxied URL is a path on the Jupyter server's own host (``/user/ana/proxy/8000/``) unless
the hub says its public URL (``JUPYTERHUB_PUBLIC_URL``): the kernel cannot know by which name
the browser reached the server, and a link that is a path is resolved by the browser against
the page it is on, which is exactly the host that holds the learner's login cookie.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import addresses

__all__ = ["JupyterServer", "Place", "PlaceKind", "find_place", "match_server"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class PlaceKind(enum.Enum):
    LOCAL = "local"
    HUB = "hub"
    PREFIXED = "prefixed"


@dataclass(frozen=True)
class JupyterServer:
    """What a ``jpserver-<pid>.json`` says about a running Jupyter server."""

    pid: int
    url: str  # e.g. "http://127.0.0.1:8888/user/ana/"
    base_url: str  # e.g. "/user/ana/"
    port: int
    token: str = ""

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> JupyterServer:
        return cls(
            pid=int(info["pid"]),
            url=str(info.get("url") or ""),
            base_url=_slashed(str(info.get("base_url") or "/")),
            port=int(info.get("port") or 0),
            token=str(info.get("token") or ""),
        )

    @property
    def origins(self) -> list[str]:
        """The origins a browser on this machine may load this server's pages from.

        A server on a loopback address is reached as ``127.0.0.1`` or ``localhost`` alike.
        """
        parts = urlsplit(self.url)
        if not parts.hostname:
            return []
        port = f":{parts.port}" if parts.port else ""
        if parts.hostname in LOOPBACK_NAMES:
            return [f"{parts.scheme}://{name}{port}" for name in LOOPBACK_NAMES]
        return [f"{parts.scheme}://{parts.netloc}"]


@dataclass(frozen=True)
class Place:
    """Where this kernel runs, as far as a browser is concerned; makes browser URLs."""

    kind: PlaceKind
    base_url: str = "/"  # the Jupyter server's base URL (the hub prefix under a hub)
    public_url: str = ""  # absolute base of the Jupyter server, when the hub says it
    server: JupyterServer | None = None  # the Jupyter server that runs this kernel, if found
    why: str = ""  # how it was decided, in words

    @property
    def proxied(self) -> bool:
        return self.kind is not PlaceKind.LOCAL

    def proxy_base(self, port: int) -> str:
        """``<base>proxy/PORT/``: absolute under a hub that says its public URL, else a path."""
        prefix = self.public_url or self.base_url
        return f"{_slashed(prefix)}proxy/{port}/"

    def browser_url(self, port: int, path: str = "", *, host: str = "127.0.0.1") -> str:
        """The address a browser opens for ``path`` of a server on ``port``.

        ``path`` is relative to the server's root (``"page"``, ``"ws"``, ``"#code=1"``).
        Locally that is the server itself (``host`` is where it listens).
        """
        path = path.lstrip("/")
        if not self.proxied:
            return addresses.url("http", host, port, "/" + path)
        return self.proxy_base(port) + path

    def browser_ws_url(self, port: int, path: str = "ws", *, host: str = "127.0.0.1") -> str:
        """The WebSocket form of :meth:`browser_url`: ``ws://``, ``wss://`` or, when the
        host is the page's own, a path (the browser takes ``ws:``/``wss:`` from its page)."""
        url = self.browser_url(port, path, host=host)
        if url.startswith("http"):
            return "ws" + url.removeprefix("http")
        return url

    @property
    def notebook_origins(self) -> list[str]:
        """Origins of the notebook page that a server in this kernel must accept for an
        in-notebook browser client to connect straight to it.

        Only locally: there the notebook (``http://127.0.0.1:8888``) and the server
        (``http://127.0.0.1:PORT``) are different origins. Through the proxy both are the
        Jupyter server's origin, which the same-origin rule already accepts.
        """
        if self.proxied or self.server is None:
            return []
        return self.server.origins


def _slashed(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def match_server(servers: Iterable[JupyterServer], lineage: Iterable[int]) -> JupyterServer | None:
    """The server whose pid is first among ``lineage`` (``JPY_PARENT_PID``, or this process's
    parent, grandparent, ...): the one that started this kernel.

    Never "the only server running": a kernel that nbclient started on a machine where
    someone's JupyterLab also runs belongs to no server.
    """
    by_pid = {server.pid: server for server in servers}
    for pid in lineage:
        if pid in by_pid:
            return by_pid[pid]
    return None


def find_place(env: Mapping[str, str], servers: Iterable[JupyterServer], lineage: Iterable[int]) -> Place:
    """Decide the :class:`Place` from the kernel's ``env``, the running ``servers`` and ``lineage``."""
    server = match_server(servers, lineage)
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if prefix:
        public = env.get("JUPYTERHUB_PUBLIC_URL", "").strip()
        return Place(
            PlaceKind.HUB,
            base_url=_slashed(prefix),
            public_url=_slashed(public) if public.startswith(("http://", "https://")) else "",
            server=server,
            why=f"JUPYTERHUB_SERVICE_PREFIX={prefix} (JupyterHub or Binder)",
        )
    if server is None:
        return Place(PlaceKind.LOCAL, why="no Jupyter server started this kernel: a script or nbclient did")
    if server.base_url != "/":
        return Place(
            PlaceKind.PREFIXED,
            base_url=server.base_url,
            server=server,
            why=f"the Jupyter server (pid {server.pid}) has base URL {server.base_url}",
        )
    return Place(
        PlaceKind.LOCAL,
        server=server,
        why=f"the Jupyter server (pid {server.pid}) has base URL / and no hub is set",
    )
