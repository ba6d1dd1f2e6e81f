"""``python -m wslab bench poll-vs-push`` as a user runs it: real processes, real sockets, tiny load.

Only what must hold whatever the machine's load is checked: every field, every mode, no
change missed by the modes that push, polling answered 304 when nothing changed, and
push modes sending no requests during the window. How fast is for docs/benchmarks.md.
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
    "mode", "requests_per_s", "bytes_per_s_in", "bytes_per_s_out", "server_cpu_s", "staleness_p50_ms",
    "staleness_p99_ms", "missed", "connections", "tabs", "changes",
}  # fmt: skip


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wslab", "bench", "poll-vs-push", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=24 * TIMEOUT,
    )  # fmt: skip


def test_json_reports_every_field_for_every_mode() -> None:
    # Two changes in half a second, polled every 0.1 s: polls that find nothing new (304s) too.
    done = bench("--tabs", "4", "--interval", "0.1", "--duration", "0.5", "--rate", "4", "--json")

    assert done.returncode == 0, done.stderr
    records = {r["mode"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert list(records) == ["poll", "etag", "long-poll", "sse", "websocket"]
    for record in records.values():
        assert record.keys() >= FIELDS, record
        assert (record["tabs"], record["changes"], record["connections"]) == (4, 2, 4), record
        assert 0 <= record["staleness_p50_ms"] <= record["staleness_p99_ms"]
    for mode in ("long-poll", "sse", "websocket"):
        assert records[mode]["missed"] == 0, records[mode]  # pushed: every change reaches every tab
    for mode in ("sse", "websocket"):
        assert records[mode]["requests_per_s"] == 0  # one request each, before the window
    assert records["poll"]["requests_per_s"] > 0 and records["etag"]["not_modified"] > 0
    assert records["etag"]["bytes_per_s_out"] < records["poll"]["bytes_per_s_out"]  # 304s carry no body
    assert "Traceback" not in done.stderr


def test_the_table_names_each_mode_once() -> None:
    done = bench(
        "--tabs", "2", "--interval", "0.3", "--duration", "0.5", "--rate", "2", "--modes", "etag,sse"
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("poll vs push: 2 tabs, polling every 0.3 s")
    assert [line.split()[0] for line in lines[4:6]] == ["etag", "sse"]


def test_poll_vs_push_is_a_benchmark_with_the_issues_defaults() -> None:
    args = build_parser().parse_args(["bench", "poll-vs-push"])
    assert (args.tabs, args.interval, args.json) == (500, 2.0, False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "poll-vs-push", "--modes", "carrier-pigeon"])
