"""A real nginx in front of the course's servers: its configuration, and nginx as a child process.

Lesson 08 shows the configuration a WebSocket app needs behind nginx (nginx.org's
"WebSocket proxying" page) and runs it: ``nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'``
in a temporary directory, listening on a free port of 127.0.0.1, stopped with the lesson.
Where no nginx is installed (``apt-get install nginx``), :func:`find_nginx` returns None
and the lesson says it skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from ..core import addresses
from ..runtime.handles import register, release
from .process import START_TIMEOUT, ServerProcess

__all__ = ["NginxServer", "find_nginx", "nginx_config"]

#: Where Debian and Homebrew put nginx when it is not on PATH (sbin is often left out).
_PLACES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/opt/homebrew/bin/nginx")


def find_nginx() -> Path | None:
    """The nginx program, or None if this machine has none."""
    found = shutil.which("nginx")
    if found:
        return Path(found)
    return next((Path(p) for p in _PLACES if Path(p).is_file()), None)


def nginx_config(
    backends: Sequence[tuple[str, int]], *, listen: str = "127.0.0.1:8080", read_timeout: float = 60
) -> str:
    """The ``http`` part of an nginx configuration that proxies WebSockets to ``backends``.

    ``Upgrade`` and ``Connection`` are hop-by-hop: nginx does not pass them on by itself,
    so they are set again, from the client's request (the ``map`` sends ``close`` for a
    request that asks no upgrade). The upgrade needs HTTP/1.1 to the backend. A tunnel
    that carries no byte from the backend for ``proxy_read_timeout`` (60 s by default) is
    closed: the server's heartbeat must be more frequent.
    """
    servers = "\n".join(f"    server {addresses.host_port(h, p)};" for h, p in backends)
    return f"""\
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
}}

upstream chat {{
{servers}
}}

server {{
    listen {listen};

    location / {{
        proxy_pass http://chat;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout {read_timeout:g}s;
    }}
}}
"""


class NginxServer(ServerProcess):
    """nginx as a child process (not a daemon), its files in a temporary directory."""

    kind = "nginx"
    scheme = "ws"
    path = "/"

    def __init__(self, binary: Path, http: str, *, port: int = 0) -> None:
        super().__init__(binary, name="nginx", port=port)
        self.http = http.replace(
            "listen 127.0.0.1:8080;", f"listen {addresses.host_port(self.host, self.port)};"
        )
        self.origin = "nginx"
        (self.workdir / "nginx.conf").write_text(self._main_config())

    def _main_config(self) -> str:
        inner = "\n".join(f"    {line}" if line else "" for line in self.http.splitlines())
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = " ".join(f"{kind}_temp_path {self.workdir}/{kind};" for kind in kinds)
        return f"""\
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.log_path} warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    {temp}
{inner}
}}
"""

    def command(self) -> list[str]:
        conf = self.workdir / "nginx.conf"
        return [str(self.binary), "-p", f"{self.workdir}/", "-c", str(conf), "-g", "daemon off;"]

    async def start(self, timeout: float = START_TIMEOUT) -> NginxServer:
        if not self.serving:
            await release(self.name, self.host, 0)
        await super().start(timeout)
        register(self)
        return self
