"""Solutions to lesson 07's exercises."""

from __future__ import annotations

import json

from ..core.fleet import Change


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Exercise 1: should a GET with this ``If-None-Match`` get 304? (RFC 9110: weak comparison)"""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag.removeprefix("W/") in wanted


def replay(last_event_id: str | None, history: list[Change]) -> str:
    """Exercise 2: the kept changes after ``Last-Event-ID``, as text/event-stream events."""
    after = int(last_event_id) if last_event_id is not None and last_event_id.isdigit() else 0
    return "".join(
        f"id: {c.seq}\nevent: change\ndata: {json.dumps(c.to_dict())}\n\n" for c in history if c.seq > after
    )


def break_even_rate(interval: float, poll_bytes: float, push_bytes: float) -> float:
    """Exercise 3: polling costs poll_bytes / interval per second, pushing rate * push_bytes."""
    return poll_bytes / (interval * push_bytes)
