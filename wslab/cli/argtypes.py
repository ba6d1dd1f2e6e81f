"""``type=`` functions for argparse options, shared by every ``python -m wslab`` command.

Each turns the text of one option into a value or raises
:class:`argparse.ArgumentTypeError`, which argparse prints as a one-line usage error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

__all__ = ["comma_list", "non_negative_float", "positive_float", "positive_int"]


def positive_int(value: str) -> int:
    """A count: a whole number of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def positive_float(value: str) -> float:
    """A rate or a duration: a number above 0."""
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return number


def non_negative_float(value: str) -> float:
    """A duration that may be zero."""
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def comma_list(choices: Sequence[str]) -> Callable[[str], str]:
    """A comma-separated pick from ``choices`` (``"chat,baseline"``), returned normalised."""

    def names(value: str) -> str:
        picked = [s.strip() for s in value.split(",") if s.strip()]
        if not picked or set(picked) - set(choices):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated)")
        return ",".join(picked)

    return names
