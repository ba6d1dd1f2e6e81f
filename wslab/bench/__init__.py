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

Lesson 07 runs the poll-vs-push comparison itself: :func:`measure` runs it (a server and a
load process, children of the kernel), :func:`summary` prints its table. Lesson 08 reads a
server process's memory and CPU time with :func:`process_rss_kib` and :func:`process_cpu_s`.
They load on first use; the CLI's ``bench`` subcommand is in :mod:`~wslab.bench.command`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .harness import process_cpu_s, process_rss_kib
    from .pollpush import measure, summary

__all__ = ["measure", "process_cpu_s", "process_rss_kib", "summary"]

lazy_exports(
    globals(),
    {
        "measure": ".pollpush",
        "process_cpu_s": ".harness",
        "process_rss_kib": ".harness",
        "summary": ".pollpush",
    },
)
