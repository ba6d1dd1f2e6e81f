"""Exercise checks for lesson 08: the learner's standalone chat server, stopped by SIGTERM as a
real process, and a heartbeat against a real idle-timeout proxy.

The blank (``graceful_stop_exercise``) is a ``%%writefile`` script: the check gets its path,
runs ``python SCRIPT PORT``, connects real clients (one of which never answers the closing
handshake) and sends SIGTERM. Like every check, each returns a
:class:`~wslab.checks.report.CheckReport` saying what held and what differed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.protocol import State

from ..core.close_codes import CloseCode
from ..faults.proxy import FaultProxy
from ..runtime.handles import serve
from ..solutions import lesson08 as solutions
from .report import FAILED, REPLY_TIMEOUT, CheckReport, Hints, call, exercise

__all__ = ["check_heartbeat_for_proxy", "graceful_stop_exercise"]

#: wslab's answer to the blank: the lesson's script, written in full.
CHAT_SERVER_SCRIPT = str(Path(solutions.__file__).with_name("chat_server.py"))

#: Idle timeouts the interval rule is checked for: nginx's and AWS ALB's default (60 s), others, scaled down.
TIMEOUTS = (60.0, 350.0, 240.0, 1.0)
#: The idle timeout of the real proxy in the check (scaled down), and how long it stays quiet.
REAL_TIMEOUT = 0.6
QUIET_FOR = 4 * REAL_TIMEOUT
#: A graceful stop must be over this long after SIGTERM, stuck client included.
STOP_BOUND = 3.0

HEARTBEAT_HINTS: Hints = [
    (None, "only bytes on the wire keep a connection: the proxy must see one before its timeout"),
    (None, "half the timeout leaves room for one late ping; far less only costs traffic"),
]
#: Advice for a program that SIGTERM kills (status -15, clients cut without a close frame).
_ON_ITS_OWN_TERMS = "loop.add_signal_handler(signal.SIGTERM, ...) lets the program stop on its own terms"
GRACEFUL_STOP_HINTS: Hints = [
    ("killed by SIGTERM", _ON_ITS_OWN_TERMS),
    ("got 1006", _ON_ITS_OWN_TERMS),
    (("expected close code", ", got 10"), "the code every client gets is the one the server closes with"),
    (
        "still running",
        "close_timeout=... (an option of serve) bounds the wait for a client's closing handshake",
    ),
    ("nothing listens", "the script must serve on 127.0.0.1 and the port its first argument gives"),
]


async def _hold(connection: object) -> None:
    await connection.wait_closed()  # type: ignore[attr-defined]


def _interval_rules(report: CheckReport, choose: Callable[[float], float]) -> None:
    for timeout in TIMEOUTS:
        where = f"idle timeout {timeout:g} s"
        interval = call(report, where, choose, timeout)
        if interval is FAILED:
            continue
        if not isinstance(interval, int | float) or interval <= 0:
            report.add(False, f"{where}: expected a positive number, got {interval!r}")
        elif interval > timeout / 2:
            what = "at or above the timeout" if interval >= timeout else "above half the timeout"
            report.add(False, f"{where}: ping every {interval:g} s is {what}")
        elif interval < timeout / 10:
            report.add(False, f"{where}: ping every {interval:g} s: wastefully often")
        else:
            report.add(True, f"{where}: ping every {interval:g} s")


@exercise(
    reference=solutions.ping_interval_for,
    hints=[hint for _, hint in HEARTBEAT_HINTS],
    title="heartbeat for a proxy's idle timeout",
)
async def check_heartbeat_for_proxy(choose: Callable[[float], float]) -> CheckReport:
    """Exercise 1: ``choose(idle_timeout)`` -> the server's ping interval, in seconds.

    It must keep a quiet connection through a proxy with that idle timeout (at most half
    of it, so that one late ping still arrives in time) without pinging needlessly often
    (at least a tenth of it). Then a real proxy with a 0.6 s idle timeout tests it.
    """
    report = CheckReport("heartbeat for a proxy's idle timeout")
    _interval_rules(report, choose)
    try:
        interval = choose(REAL_TIMEOUT)
    except Exception:
        interval = None
    if isinstance(interval, int | float) and interval > 0:
        server = await serve(_hold, name="check:heartbeat", ping_interval=interval, ping_timeout=5)
        proxy = await FaultProxy.start(server.host, server.port, name="check:idle", idle_timeout=REAL_TIMEOUT)
        try:
            async with connect(proxy.url, ping_interval=None) as ws:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.wait_closed(), QUIET_FOR)
                alive = ws.state is State.OPEN
            line = f"a real proxy with a {REAL_TIMEOUT:g} s idle timeout, a quiet client, {QUIET_FOR:g} s"
            report.add(alive, f"{line}: {'still open' if alive else 'cut by the proxy (1006)'}")
        finally:
            await proxy.stop()
            await server.stop()
    report.hints_for(HEARTBEAT_HINTS)
    return report


async def _raw_client(port: int) -> asyncio.StreamWriter:
    """A client that completes the opening handshake, then never reads: it cannot close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REPLY_TIMEOUT)
    return writer


async def _listening_port(process: asyncio.subprocess.Process, timeout: float = 15) -> int | None:
    """The port ``process`` listens on, once it does; None if it exits or never listens.

    Read from the process's own sockets (psutil, which IPython requires), so it is the
    program under test that answers, never another one that took a port meanwhile.
    """
    import psutil

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    child = psutil.Process(process.pid)
    while loop.time() < deadline and process.returncode is None:
        with contextlib.suppress(psutil.Error):
            for connection in child.net_connections(kind="tcp"):
                if connection.status == psutil.CONN_LISTEN:
                    return connection.laddr.port
        await asyncio.sleep(0.05)
    return None


@exercise(
    reference=CHAT_SERVER_SCRIPT,
    hints=[
        "asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, callback, *args) runs callback"
        " on SIGTERM instead of dying: let it complete a future the function awaits",
        "install the handlers before you print the address: whoever reads it may stop you at once",
        "once the future completes, stop the server: it stops listening, then closes every client",
        "a client that never answers holds a close for close_timeout (10 s by default): pass a smaller one",
    ],
    title="graceful stop on SIGTERM",
)
async def graceful_stop_exercise(script: str | Path, *, code: int = CloseCode.GOING_AWAY) -> CheckReport:
    """Section 3: ``python SCRIPT PORT`` serves WebSockets on 127.0.0.1:PORT; on SIGTERM it must
    close every client with ``code`` (1001 going away; 1012 for a restart) and exit with status 0
    within 3 s, even though one client never answers the closing handshake.

    The check passes PORT 0: the program listens on a port the system chooses, free for
    sure, and the check reads which from the program's sockets.
    """
    report = CheckReport("graceful stop on SIGTERM")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        "0",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        port = await _listening_port(process)
        if port is None:
            report.add(False, f"nothing listens on 127.0.0.1: python {Path(script).name} 0 opened no port")
            report.hints_for(GRACEFUL_STOP_HINTS)
            return report
        clients = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(2)]
        stuck = await _raw_client(port)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        process.send_signal(signal.SIGTERM)
        for number, ws in enumerate(clients, 1):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), STOP_BOUND)
            got = ws.close_code if ws.state is State.CLOSED else "nothing yet"
            report.add(got == code, f"client {number}: expected close code {int(code)}, got {got}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), max(0.1, sent + STOP_BOUND - loop.time()))
        stuck.close()
        if process.returncode is None:
            report.add(False, f"still running {STOP_BOUND:g} s after SIGTERM (a client never answered)")
        else:
            report.add(True, f"exited within {STOP_BOUND:g} s of SIGTERM")
            status = process.returncode
            why = " (killed by SIGTERM: no handler ran)" if status == -signal.SIGTERM else ""
            report.add(status == 0, f"exit status: expected 0, got {status}{why}")
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    report.hints_for(GRACEFUL_STOP_HINTS)
    return report
