"""Solutions to lesson 02's exercises."""

from __future__ import annotations

import unicodedata


def find_gaps(seqs: list[int]) -> list[tuple[int, int]]:
    gaps: list[tuple[int, int]] = []
    last: int | None = None
    for seq in seqs:
        if last is not None and seq > last + 1:
            gaps.append((last + 1, seq - 1))
        if last is None or seq > last:
            last = seq
    return gaps


def validate(name: str, taken: set[str]) -> str:
    name = name.strip()
    if not name:
        raise ValueError("a username cannot be empty")
    if len(name) > 32:
        raise ValueError("a username has at most 32 characters")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ValueError("a username cannot contain control characters")
    if name.casefold() in {other.casefold() for other in taken}:
        raise ValueError(f"the username {name!r} is already taken")
    return name
