"""``await wslab.where()``: where this kernel runs and what of the course works there, checked live.

The orientation of lesson 01. Nothing is guessed from the platform: the Jupyter server is the
one that started this kernel (:mod:`wslab.runtime.urls`), the proxy is tried with a real request
through that server to a throw-away listener in this kernel, and the programs lessons 06 and 08 and the
browser tests need are looked up where wslab itself would find them. Every request goes to
this machine's loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from .core.places import JupyterServer, Place
from .runtime.urls import here
from .services.discovery import find_kafka_server, find_nats_server, find_redis_server
from .services.nginx import find_nginx

__all__ = ["Report", "where"]

PROBE_BODY = b"wslab proxy probe"
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")


@dataclass
class Report:
    """What :func:`where` found; its text is the report."""

    place: Place
    proxy: str
    brokers: dict[str, str] = field(default_factory=dict)
    chromium: str = ""
    nginx: str = ""

    @property
    def proxy_works(self) -> bool:
        return self.proxy.startswith("works")

    def lines(self) -> list[str]:
        place, example = self.place, self.place.browser_url(8000)
        server = place.server
        lines = [
            f"where: {place.kind.value} ({place.why})",
            f"Jupyter server: {server.url or '?'} (base URL {server.base_url})"
            if server
            else "Jupyter server: none found for this kernel",
            f"jupyter-server-proxy: {self.proxy}",
            "Python clients in this kernel reach its servers at: ws://127.0.0.1:PORT/ (always)",
            f"your browser reaches a server on port 8000 at: {example}",
        ]
        if place.proxied and not self.proxy_works:
            lines.append("  (through the proxy, which was not confirmed working: pages may not open)")
        if place.proxied:
            lines.append("live audience (lesson 04): only you, through the proxy; phones need a local run")
        else:
            lines.append("live audience (lesson 04): phones on your network, with PUBLIC = True")
        lines += [f"{name} (lesson 06): {found}" for name, found in self.brokers.items()]
        lines.append(f"nginx (lesson 08): {self.nginx}")
        lines.append(f"Chromium (browser tests): {self.chromium}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]


def _auth_token(server: JupyterServer) -> str:
    return server.token or os.environ.get("JUPYTERHUB_API_TOKEN", "")


def _get(url: str, token: str) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no HTTP proxy
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read(200)
    except urllib.error.HTTPError as error:
        return error.code, b""


async def probe_proxy(place: Place) -> str:
    """``works ...``, or why the Jupyter server's proxy could not be confirmed."""
    installed = importlib.util.find_spec("jupyter_server_proxy") is not None
    server = place.server
    if server is None:
        return f"{'installed' if installed else 'not installed'}; no Jupyter server to try it through"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(PROBE_BODY)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + PROBE_BODY)
            await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{server.port}{server.base_url}proxy/{port}/"
    try:
        status, body = await asyncio.to_thread(_get, url, _auth_token(server))
    except OSError as error:
        return f"could not reach the Jupyter server on loopback ({error})"
    finally:
        listener.close()
        await listener.wait_closed()
    if status == 200 and body == PROBE_BODY:
        return f"works (a request through {server.base_url}proxy/{port}/ reached this kernel)"
    state = "installed" if installed else "not installed"
    if status in (401, 403) or 300 <= status < 400:
        return f"{state}; not checked: the server wants a login (HTTP {status})"
    return f"not working here (HTTP {status}; {state})"


def _found(found: tuple[object, str]) -> str:
    program, how = found
    return f"found (from {how})" if program else f"missing: {how}"


async def where() -> Report:
    """Find out, live, where this kernel runs and what works there (see the module's docstring)."""
    place = here()
    chromium = os.environ.get("WSLAB_CHROMIUM") or any(shutil.which(name) for name in CHROMIUMS)
    return Report(
        place=place,
        proxy=await probe_proxy(place),
        brokers={
            "Redis server": _found(find_redis_server()),
            "NATS server": _found(find_nats_server()),
            "Kafka broker": _found(find_kafka_server()),
        },
        chromium="found" if chromium else "none found (the browser tests would skip)",
        nginx="found" if find_nginx() else "none found (lesson 08's nginx cell will say it skipped)",
    )
