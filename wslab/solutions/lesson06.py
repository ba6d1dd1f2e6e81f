"""Solutions to lesson 06's exercises: plain redis.asyncio calls."""

from __future__ import annotations

from typing import Any

#: Deletes the name's key only if this server still holds it (a check-and-delete in one step).
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def catch_up(r: Any, stream: str, last_seq: int) -> list[str]:
    """Exercise 1: the texts a client missed, read from the room's history after ``last_seq``."""
    entries = await r.xrange(stream, min=f"({last_seq}-0")  # "(": exclusive, start after it
    return [fields["text"] for _, fields in entries]


def _key(name: str) -> str:
    return f"user:{name.casefold()}"


async def claim(r: Any, name: str, server_id: str, ttl: float) -> bool:
    """Exercise 2: hold ``name`` for ``server_id``, unless another server holds it."""
    return bool(await r.set(_key(name), server_id, nx=True, px=int(ttl * 1000)))


async def release(r: Any, name: str, server_id: str) -> None:
    """Exercise 2: give ``name`` up, if (and only if) ``server_id`` still holds it."""
    await r.eval(RELEASE_SCRIPT, 1, _key(name), server_id)
