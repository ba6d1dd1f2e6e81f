"""Lesson 08's exercise checks: the solutions pass, and wrong answers get NOT YET with the diff.

The heartbeat check runs a real idle-timeout proxy; the SIGTERM check runs the learner's
script as a real process.
"""

from __future__ import annotations

from pathlib import Path

from helpers import assert_hint, assert_not_yet, assert_passed, on_time

from wslab.checks.lesson08 import check_graceful_stop, check_heartbeat_for_proxy
from wslab.solutions import lesson08


async def test_heartbeat_solution_passes() -> None:
    # The real proxy's idle timeout (0.6 s) against pings every 0.2 s: a verdict from a run
    # whose loop kept time within the 0.4 s between them.
    assert_passed(await on_time(lambda: check_heartbeat_for_proxy(lesson08.ping_interval_for), 0.4))


async def test_a_heartbeat_as_slow_as_the_timeout_is_cut_by_the_real_proxy() -> None:
    report = await check_heartbeat_for_proxy(lambda timeout: timeout * 2)
    assert_not_yet(report)
    assert "idle timeout 60 s: ping every 120 s is at or above the timeout" in report.failures
    assert any(line.endswith("cut by the proxy (1006)") for line in report.failures), str(report)
    assert_hint(report, "only bytes on the wire keep a connection")


async def test_a_heartbeat_too_frequent_or_not_a_number_is_named() -> None:
    report = await check_heartbeat_for_proxy(lambda timeout: timeout / 100)
    assert "idle timeout 60 s: ping every 0.6 s: wastefully often" in report.failures
    report = await check_heartbeat_for_proxy(lambda timeout: None)  # type: ignore[arg-type, return-value]
    assert "idle timeout 60 s: expected a positive number, got None" in report.failures
    assert not any("real proxy" in line for (line,) in [(r,) for _, r in report.results])


async def test_graceful_stop_solution_passes() -> None:
    assert_passed(await check_graceful_stop(lesson08.__file__))


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "server.py"
    path.write_text(
        "import asyncio, signal, sys\nfrom websockets.asyncio.server import serve\n\n"
        "async def echo(ws):\n    async for m in ws:\n        await ws.send(m)\n\n" + body
    )
    return path


async def test_a_server_without_a_handler_dies_on_sigterm(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "async def main():\n    async with serve(echo, '127.0.0.1', int(sys.argv[1])):\n"
        "        await asyncio.Future()\n\nasyncio.run(main())\n",
    )
    report = await check_graceful_stop(script)
    assert_not_yet(report)
    assert "client 1: expected close code 1012, got 1006" in report.failures
    assert "exit status: expected 0, got -15 (killed by SIGTERM: no handler ran)" in report.failures
    assert_hint(report, "add_signal_handler")


async def test_a_server_that_sends_1001_and_waits_for_the_stuck_client(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "async def main():\n    stop = asyncio.get_running_loop().create_future()\n"
        "    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)\n"
        "    async with serve(echo, '127.0.0.1', int(sys.argv[1])):\n        await stop\n\n"
        "asyncio.run(main())\n",
    )
    report = await check_graceful_stop(script)
    assert_not_yet(report)
    assert report.failures == [
        "client 1: expected close code 1012, got 1001",
        "client 2: expected close code 1012, got 1001",
        "still running 3 s after SIGTERM (a client never answered)",
    ]
    assert_hint(report, "server.close(code=..., reason=...)")
    assert_hint(report, "close_timeout")


async def test_a_script_that_does_not_listen(tmp_path: Path) -> None:
    script = _script(tmp_path, "raise SystemExit('no')\n")
    report = await check_graceful_stop(script)
    assert_not_yet(report)
    assert report.failures[0].startswith("nothing listens on 127.0.0.1 (python server.py 0")
