"""``python -m wslab bench scale`` as a user runs it: real brokers, real processes, tiny load.

Only correctness is checked here (every message reaches every receiver, once, in each of
the four configurations); how fast is for the benchmark itself, on a quiet machine
(docs/benchmarks.md). Without a Redis or NATS server the run is skipped, or fails under
``CI=true``, as every broker test does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TIMEOUT, unavailable

from wslab.bench.scale import UNAVAILABLE
from wslab.cli.main import build_parser

pytestmark = pytest.mark.broker  # real Redis/NATS/Kafka processes: not in `make unit`

ROOT = Path(__file__).resolve().parent.parent
RATE, SECONDS, CLIENTS = 50, 1, 2
FIELDS = {
    "server",
    "rate",
    "seconds",
    "clients",
    "size",
    "deliveries_per_s",
    "p50_ms",
    "p99_ms",
    "lost",
    "deliveries",
    "expected",
}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "wslab", "bench", "scale", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20 * TIMEOUT,
    )
    if done.returncode == UNAVAILABLE:
        unavailable(done.stderr.strip())
    return done


def test_scale_json_reports_every_delivery_for_each_configuration() -> None:
    done = bench(
        *("--rate", str(RATE), "--seconds", str(SECONDS), "--clients", str(CLIENTS)),
        *("--warmup", "0.1", "--json"),
    )

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["server"] for r in records] == ["memory", "redis", "nats", "kafka"]
    for record in records:
        assert record.keys() >= FIELDS, record
        assert (record["rate"], record["seconds"], record["clients"], record["size"]) == (
            RATE,
            SECONDS,
            CLIENTS,
            64,
        )
        assert record["expected"] == CLIENTS * RATE * SECONDS, record
        assert record["deliveries"] == record["expected"], record
        assert record["lost"] == 0, record
        assert record["duplicates"] == 0, record
        assert record["deliveries_per_s"] > 0
        assert 0 <= record["p50_ms"] <= record["p99_ms"]
    # The in-process broker runs one server; the others publish on A and deliver from B.
    assert [r["servers"] for r in records] == [1, 2, 2, 2]
    assert "Traceback" not in done.stderr


def test_scale_table_for_one_configuration() -> None:
    done = bench(
        "--brokers", "memory", "--rate", "100", "--seconds", "0.5", "--clients", "3", "--warmup", "0"
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("scale-out: 1 publisher -> 3 receivers, 100 msg/s for 0.5 s")
    rows = [row for row in map(str.split, lines) if row[:1] == ["memory"]]
    assert len(rows) == 1 and rows[0][1] == "1"
    assert rows[0][7] == "0"  # the "lost" column


def test_scale_is_a_bench_subcommand() -> None:
    args = build_parser().parse_args(["bench", "scale"])

    assert (args.rate, args.seconds, args.clients, args.size, args.json) == (1000, 5, 20, 64, False)
    assert args.brokers == "memory,redis,nats,kafka" and callable(args.run)


@pytest.mark.parametrize(
    "bad",
    [["--rate", "0"], ["--seconds", "-1"], ["--clients", "0"], ["--size", "5000"], ["--brokers", "amqp"]],
)
def test_scale_refuses_what_it_cannot_measure(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "scale", *bad])
