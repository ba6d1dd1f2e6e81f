"""``python -m wslab bench fanout`` as a user runs it: real processes, real sockets, tiny load.

Only correctness is checked here (every message reaches every receiver, once, from both
servers); how fast is for the benchmark itself, on a quiet machine (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TIMEOUT

from wslab.bench.command import add_bench_parser
from wslab.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
CLIENTS, MESSAGES = 5, 20
FIELDS = {"server", "dialect", "clients", "messages", "size", "deliveries_per_s", "p50_ms", "p99_ms", "lost"}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wslab", "bench", "fanout", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=18 * TIMEOUT,
    )


def test_fanout_json_reports_every_delivery_for_both_servers_in_both_dialects() -> None:
    done = bench("--clients", str(CLIENTS), "--messages", str(MESSAGES), "--size", "16", "--json")

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((r["server"], r["dialect"]) for r in records) == [
        ("baseline", "json"),
        ("baseline", "plain"),
        ("chat", "json"),
        ("chat", "plain"),
    ]
    for record in records:
        assert record.keys() >= FIELDS, record
        assert (record["clients"], record["messages"], record["size"]) == (CLIENTS, MESSAGES, 16)
        assert record["deliveries"] == record["expected"] == CLIENTS * MESSAGES, record
        assert record["lost"] == 0, record
        assert record["duplicates"] == 0, record
        assert record["deliveries_per_s"] > 0
        assert 0 <= record["p50_ms"] <= record["p99_ms"]
    assert "Traceback" not in done.stderr


def test_fanout_table_names_both_servers_and_their_ratio_per_dialect() -> None:
    done = bench("--clients", "3", "--messages", "5", "--size", "64", "--rate", "200")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("fan-out: 3 clients x 5 messages of 64 B (words, paced at 200 msg/s")
    rows = [row for row in map(str.split, lines) if row[:1] in (["chat"], ["baseline"]) and row[2].isdigit()]
    assert [row[:2] for row in rows] == [
        ["chat", "json"],
        ["baseline", "json"],
        ["chat", "plain"],
        ["baseline", "plain"],
    ]
    assert all(row[6] == "0" for row in rows)  # the "lost" column
    for dialect in ("json", "plain"):
        assert any(line.startswith(f"chat / baseline deliveries/s, {dialect}: ") for line in lines)


def test_fanout_measures_one_dialect_when_asked() -> None:
    done = bench("--clients", "2", "--messages", "3", "--dialects", "plain", "--servers", "chat", "--json")

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["server"], r["dialect"], r["lost"]) for r in records] == [("chat", "plain", 0)]


def test_bench_is_a_subcommand_of_the_cli() -> None:
    args = build_parser().parse_args(["bench", "fanout", "--clients", "7", "--servers", "chat"])

    assert (args.clients, args.messages, args.size, args.servers, args.json) == (7, 100, 64, "chat", False)
    assert args.dialects == "json,plain"
    assert callable(args.run) and add_bench_parser is not None


@pytest.mark.parametrize(
    "bad", [["--size", "5000"], ["--clients", "0"], ["--servers", "nginx"], ["--dialects", "xml"]]
)
def test_bench_refuses_what_it_cannot_measure(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "fanout", *bad])
