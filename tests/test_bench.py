"""``python -m wslab bench fanout`` as a user runs it: real processes, real sockets, tiny load.

Only correctness is checked here (every message reaches every receiver, once, from every
server, the chat measured as ``python -m wslab serve chat`` runs it, the server and the
load on different CPUs); how fast is for the benchmark itself, on a quiet machine
(docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TIMEOUT
from jupyterlab_harness import skip_or_fail

from wslab.bench.command import add_bench_parser
from wslab.bench.harness import cpus
from wslab.bench.servers import node_missing
from wslab.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
CLIENTS, MESSAGES = 5, 20
FIELDS = {"server", "dialect", "clients", "messages", "size", "deliveries_per_s", "p50_ms", "p99_ms", "lost"}


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wslab", "bench", "fanout", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=24 * TIMEOUT,
        env=env,
    )


def records_of(done: subprocess.CompletedProcess[str]) -> list[dict]:  # type: ignore[type-arg]
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_fanout_json_reports_every_delivery_for_both_servers_in_both_dialects() -> None:
    done = bench(
        "--clients", str(CLIENTS), "--messages", str(MESSAGES), "--size", "16",
        "--servers", "chat,baseline", "--json",
    )  # fmt: skip

    records = records_of(done)
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


def test_fanout_table_names_both_servers_and_their_ratio_per_dialect() -> None:
    done = bench("--clients", "3", "--messages", "5", "--size", "64", "--servers", "chat,baseline")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("fan-out: 3 clients x 5 messages of 64 B (words, burst, compression deflate")
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
    assert not any(" p99 ms, " in line for line in lines)  # latency ratios are the paced mode's


def test_the_paced_mode_compares_latency_too() -> None:
    done = bench(
        "--clients", "3", "--messages", "6", "--rate", "200", "--servers", "chat,baseline",
        "--dialects", "plain", "--compression", "none",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = "fan-out: 3 clients x 6 messages of 64 B (words, paced at 200 msg/s, compression none;"
    assert lines[0].startswith(head)
    for measure in ("deliveries/s", "p50 ms", "p99 ms"):
        assert any(line.startswith(f"chat / baseline {measure}, plain: ") for line in lines), lines


def test_the_chat_is_measured_as_its_command_runs_it_and_the_load_on_another_cpu() -> None:
    done = bench("--clients", "2", "--messages", "3", "--dialects", "plain", "--servers", "chat", "--json")

    [record] = records_of(done)
    assert (record["server"], record["dialect"], record["lost"]) == ("chat", "plain", 0)
    assert record["server_command"] == "python -m wslab serve chat --port 0"
    server_cpu, load_cpu = cpus()
    assert (record["server_cpu"], record["load_cpu"]) == (server_cpu, load_cpu)
    if server_cpu is not None:  # two CPUs: never the same one
        assert server_cpu != load_cpu
        head = bench("--clients", "2", "--messages", "3", "--dialects", "plain", "--servers", "chat")
        assert f"server on CPU {server_cpu}, load on CPU {load_cpu})" in head.stdout.splitlines()[0]


def test_no_pin_leaves_the_placement_to_the_system() -> None:
    done = bench("--clients", "2", "--messages", "3", "--dialects", "json", "--servers", "baseline",
                 "--no-pin", "--json")  # fmt: skip

    [record] = records_of(done)
    assert (record["server_cpu"], record["load_cpu"], record["lost"]) == (None, None, 0)


def test_the_node_reference_delivers_everything_where_node_is_installed() -> None:
    missing = node_missing()
    if missing is not None:
        skip_or_fail(f"the Node reference cannot run: {missing}")
    done = bench("--clients", "4", "--messages", "10", "--servers", "node,chat", "--compression", "none")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = [row for row in map(str.split, lines) if row[:1] == ["node"] and row[2].isdigit()]
    assert [(row[1], row[6]) for row in rows] == [("json", "0"), ("plain", "0")]  # dialect, lost
    for dialect in ("json", "plain"):
        assert any(line.startswith(f"chat / node deliveries/s, {dialect}: ") for line in lines)


def test_without_node_the_run_says_so_and_measures_the_others(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no node on it; python is sys.executable
    done = bench("--clients", "2", "--messages", "3", "--dialects", "json", "--servers", "chat,node", env=env)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "node: not measured: Node.js is not installed" in lines
    assert [row[0] for row in map(str.split, lines) if row[2:3] == ["1"]] == ["chat"]


def test_bench_is_a_subcommand_of_the_cli() -> None:
    args = build_parser().parse_args(["bench", "fanout", "--clients", "7", "--servers", "chat"])

    assert (args.clients, args.messages, args.size, args.servers, args.json) == (7, 100, 64, "chat", False)
    assert args.dialects == "json,plain"
    assert args.pin is True
    assert build_parser().parse_args(["bench", "fanout"]).servers == "chat,baseline,node"
    assert callable(args.run) and add_bench_parser is not None


@pytest.mark.parametrize(
    "bad", [["--size", "5000"], ["--clients", "0"], ["--servers", "nginx"], ["--dialects", "xml"]]
)
def test_bench_refuses_what_it_cannot_measure(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "fanout", *bad])
