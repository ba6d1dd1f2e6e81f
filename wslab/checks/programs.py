"""Checking a relay program the learner wrote: started twice as real OS processes, then talked to.

Lesson 06's relays (over Redis, over Kafka) are programs, not functions: ``python SCRIPT NAME
BROKER`` serves WebSockets on a free port of 127.0.0.1, prints ``listening on port N`` first,
and relays between its own clients and the broker. :func:`two_relays` starts a program as
servers A and B; :func:`conversation` connects a client to each and checks that what one
says reaches both, tagged with the server it came through. Whatever goes wrong (the program
exits, prints something else, relays nothing) is a failed line of the report, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .report import CheckReport

__all__ = ["START_TIMEOUT", "conversation", "two_relays"]

#: Seconds a program gets to say where it listens: Python starts and imports its broker's client.
START_TIMEOUT = 20.0
#: Seconds a line may take to cross from one server, through the broker, to a client of the other.
CROSSING_TIMEOUT = 5.0
_LISTENING = re.compile(r"listening on port (\d+)")

Process = asyncio.subprocess.Process


async def _why_not(process: Process) -> str:
    """The last line the program wrote to stderr (its exception), if it has exited."""
    if process.returncode is None or process.stderr is None:
        return ""
    lines = (await process.stderr.read()).decode(errors="replace").strip().splitlines()
    return f": {lines[-1]}" if lines else f" (exit status {process.returncode})"


async def _address(report: CheckReport, name: str, process: Process, script: str) -> str | None:
    """The URL server ``name`` listens on, from its first line; None (and a failed line) if none."""
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode(errors="replace")
    except TimeoutError:
        report.add(False, f"server {name} printed nothing within {START_TIMEOUT:g} s ({script} {name} ...)")
        return None
    if (found := _LISTENING.search(line)) is None:
        if not line:  # the end of its output: it is exiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 2)
        said = f"printed {line.strip()!r}" if line.strip() else "exited"
        report.add(False, f"server {name} {said} instead of 'listening on port N'{await _why_not(process)}")
        return None
    return f"ws://127.0.0.1:{found.group(1)}/"


@asynccontextmanager
async def two_relays(
    report: CheckReport, script: str | Path, broker: str
) -> AsyncIterator[dict[str, str] | None]:
    """``python SCRIPT A BROKER`` and ``python SCRIPT B BROKER``, as child processes: their URLs by
    name, or None if either did not start (the report says why). Both are killed afterwards."""
    processes = {
        name: await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            name,
            broker,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for name in "AB"
    }
    started: set[str] = set()
    try:
        shown = Path(script).name
        urls = {name: await _address(report, name, process, shown) for name, process in processes.items()}
        started = {name for name, url in urls.items() if url}
        yield None if None in urls.values() else {name: url for name, url in urls.items() if url}
    finally:
        for name, process in processes.items():
            if name in started and await _exited(process):
                report.add(False, f"server {name} exited while it was talked to{await _why_not(process)}")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def _exited(process: Process) -> bool:
    """Whether ``process`` has exited already (given a moment to say so)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 0.1)
    return process.returncode is not None


async def _next_line(client: ClientConnection) -> str:
    try:
        message = await asyncio.wait_for(client.recv(), CROSSING_TIMEOUT)
    except TimeoutError:
        return f"nothing within {CROSSING_TIMEOUT:g} s"
    except ConnectionClosed as exc:
        return f"the connection closed ({exc})"
    return repr(message)


async def conversation(report: CheckReport, urls: dict[str, str], *, first_number: int | None = None) -> None:
    """A client on each server; each says one line. Both clients must get it, tagged with the
    sender's server, and numbered from ``first_number`` on (the log's offset) if given."""
    number = first_number
    try:
        async with connect(urls["A"]) as on_a, connect(urls["B"]) as on_b:
            for sender, server, text in [(on_b, "B", "hello from B's client"), (on_a, "A", "and A's")]:
                await sender.send(text)
                want = f"{text} (via {server})" if number is None else f"{number} {text} (via {server})"
                for client, where in [(on_a, "A"), (on_b, "B")]:
                    got = await _next_line(client)
                    if got == repr(want):
                        report.add(True, f"sent to {server}: {where}'s client got {want!r}")
                    else:
                        report.add(False, f"sent to {server}: {where}'s client expected {want!r}, got {got}")
                number = None if number is None else number + 1
    except (OSError, ConnectionClosed) as exc:
        report.add(False, f"a client could not talk to the servers: {exc}")
