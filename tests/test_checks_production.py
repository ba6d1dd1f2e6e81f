"""Lesson 08's exercise checks: the solutions pass, and wrong answers get NOT YET with the diff.

The heartbeat check runs a real idle-timeout proxy; the SIGTERM check (the blank of section 3)
runs the learner's script as a real process.
"""

from __future__ import annotations

from pathlib import Path

from helpers import assert_hint, assert_not_yet, assert_passed, on_time

from wslab.checks.lesson08 import CHAT_SERVER_SCRIPT, check_heartbeat_for_proxy, graceful_stop_exercise
from wslab.checks.report import Verdict
from wslab.core.blanks import blank_out
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
    assert_passed(await graceful_stop_exercise(CHAT_SERVER_SCRIPT))


async def test_the_blank_as_the_learner_edition_ships_it_is_not_written_yet(tmp_path: Path) -> None:
    """The reference script, its function blanked out as the learner edition does: never run."""
    source = Path(CHAT_SERVER_SCRIPT).read_text()
    body = source.split('return the signal."""\n', 1)[1].split("\n\n\nasync def main", 1)[0]
    marked = source.replace(body, f"    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION")
    script = tmp_path / "chat_server.py"
    script.write_text(blank_out(marked))
    report = await graceful_stop_exercise(script)
    assert report.verdict is Verdict.NOT_WRITTEN, str(report)
    assert report.results == []
    assert str(report).splitlines()[0] == (
        "graceful stop on SIGTERM: not written yet (chat_server.py: serve_until_stopped has no body yet)"
    )


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
    report = await graceful_stop_exercise(script)
    assert_not_yet(report)
    assert "client 1: expected close code 1001, got 1006" in report.failures
    assert "exit status: expected 0, got -15 (killed by SIGTERM: no handler ran)" in report.failures
    assert_hint(report, "add_signal_handler")


async def test_a_restart_wants_1012_and_a_stop_that_waits_for_the_stuck_client_hangs(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "async def main():\n    stop = asyncio.get_running_loop().create_future()\n"
        "    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)\n"
        "    async with serve(echo, '127.0.0.1', int(sys.argv[1])):\n        await stop\n\n"
        "asyncio.run(main())\n",
    )
    report = await graceful_stop_exercise(script, code=1012)
    assert_not_yet(report)
    assert report.failures == [
        "client 1: expected close code 1012, got 1001",
        "client 2: expected close code 1012, got 1001",
        "still running 3 s after SIGTERM (a client never answered)",
    ]
    assert_hint(report, "the one the server closes with")
    assert_hint(report, "close_timeout")


async def test_a_script_that_does_not_listen(tmp_path: Path) -> None:
    script = _script(tmp_path, "raise SystemExit('no')\n")
    report = await graceful_stop_exercise(script)
    assert_not_yet(report)
    assert report.failures[0].startswith("nothing listens on 127.0.0.1:")
    assert_hint(report, "the port its first argument gives")
