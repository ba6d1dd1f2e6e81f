"""``python -m wslab bench``: the subcommand and its four benchmarks."""

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
