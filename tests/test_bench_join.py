"""``python -m wslab bench join`` as a user runs it: real processes, real sockets, a tiny room.

Only correctness is checked here (everyone gets in, every message reaches everyone, the
fields are there); how fast and how much memory is for the benchmark itself, on a quiet
machine (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TIMEOUT

from wslab.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {
    "server", "clients", "batch", "messages", "joined", "failed", "join_s", "join_server_cpu_s",
    "rss_kib_per_client", "deliveries_per_s", "lost", "p50_ms", "p99_ms", "handshakes",
    "handshake_max_ms", "handshakes_timed_out", "server_cpu_s", "other_cpu_s",
}  # fmt: skip


def test_join_json_reports_everyone_in_and_every_delivery_for_both_servers() -> None:
    # 60 people: past the 50 where the chat's presence turns to ticks and counts.
    done = subprocess.run(
        [sys.executable, "-m", "wslab", "bench", "join", "--clients", "60", "--batch", "25",
         "--messages", "10", "--probe-every", "0.01", "--servers", "chat,baseline", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=24 * TIMEOUT,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["server"] for r in records) == ["baseline", "chat"]
    for record in records:
        assert record.keys() >= FIELDS, FIELDS - record.keys()
        assert (record["clients"], record["batch"], record["messages"]) == (60, 25, 10)
        assert (record["joined"], record["failed"]) == (60, 0), record
        assert record["deliveries"] == record["expected"] == 600 and record["lost"] == 0, record
        assert record["join_s"] > 0 and record["rss_kib_per_client"] is not None
        assert record["handshakes"] >= 1 and record["handshakes_timed_out"] == 0, record
    assert "Traceback" not in done.stderr


def test_a_join_storm_lets_everyone_in_at_once() -> None:
    # 120 people connecting at once: past asyncio's default listen backlog of 100.
    done = subprocess.run(
        [sys.executable, "-m", "wslab", "bench", "join", "--clients", "120", "--storm",
         "--messages", "5", "--probe-every", "0", "--servers", "chat", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (record["server"], record["storm"], record["joined"], record["failed"]) == ("chat", True, 120, 0)
    assert record["server_command"] == "python -m wslab serve chat --port 0"
    assert record["deliveries"] == record["expected"] == 600 and record["lost"] == 0, record
    assert record["rss_kib_per_client"] is not None and record["join_s"] > 0


def test_the_storm_heading_says_so() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wslab", "bench", "join", "--clients", "5", "--storm",
         "--messages", "2", "--probe-every", "0", "--servers", "chat"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("join: 5 clients all at once (storm), then a burst of 2 messages")


@pytest.mark.parametrize("bad", [["--clients", "0"], ["--batch", "0"], ["--servers", "nginx"]])
def test_bench_join_refuses_what_it_cannot_measure(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "join", *bad])
