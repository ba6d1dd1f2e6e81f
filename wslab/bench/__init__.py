"""``python -m wslab bench``: measure the lessons' servers under load.

* :mod:`~wslab.bench.fanout`: one publisher, many receivers, the chat server against a
  bare ``broadcast()``, in both dialects;
* :mod:`~wslab.bench.scale`: cross-server latency, one chat server, then two over Redis,
  then over NATS;
* :mod:`~wslab.bench.join`: thousands join one room, then a burst reaches them all (presence
  at scale), the chat server against a bare ``broadcast()``;
* :mod:`~wslab.bench.pollpush`: lesson 07's dashboard polled, long-polled, over SSE and
  over a WebSocket, by the same simulated tabs.

Each builds on :mod:`~wslab.bench.harness` (child processes, CPU clocks, tables) and
:mod:`~wslab.bench.load` (the load client). Each benchmark runs its servers and load
clients as child processes (``python -m wslab.bench fanout|scale _serve|_load ...``,
internal commands, not an interface). Results and their reading: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .fanout import add_fanout_parser
from .join import add_join_parser
from .pollpush import add_pollpush_parser
from .scale import add_scale_parser

__all__ = ["add_bench_parser"]


def add_bench_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``python -m wslab`` subcommands."""
    bench = commands.add_parser("bench", help="measure the lessons' servers under load")
    kinds = bench.add_subparsers(dest="benchmark", required=True)
    add_fanout_parser(kinds)
    add_scale_parser(kinds)
    add_join_parser(kinds)
    add_pollpush_parser(kinds)
    return bench
