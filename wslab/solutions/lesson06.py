"""Solutions to lesson 06: the numbered publish (a blank) and the exercises, in plain redis.asyncio.

The two relays the lesson writes as programs are :mod:`wslab.solutions.redis_relay` and
:mod:`wslab.solutions.kafka_relay`.
"""

from __future__ import annotations

from typing import Any


async def publish_numbered(r: Any, room: str, text: str) -> int:
    """Number ``text`` with the room's counter, keep it in the room's stream under that number,
    and publish it with its number in front; returns the number."""
    seq = await r.incr(f"{room}:seq")  # 1. the next number, assigned by Redis
    await r.xadd(f"{room}:history", {"text": text}, id=f"{seq}-0")  # 2. kept, under its number
    await r.publish(f"{room}:live", f"{seq} {text}")  # 3. published, number first
    return int(seq)


async def catch_up(r: Any, stream: str, last_seq: int) -> list[str]:
    """Exercise 1: the texts a client missed, read from the room's history after ``last_seq``."""
    entries = await r.xrange(stream, min=f"({last_seq}-0")  # "(": exclusive, start after it
    return [fields["text"] for _, fields in entries]


async def claim(r: Any, name: str, server_id: str, ttl: float) -> bool:
    """Exercise 2: hold ``name`` for ``server_id`` for ``ttl`` seconds, unless another server holds it."""
    key = f"user:{name.casefold()}"  # one key per name, whatever its case
    return bool(await r.set(key, server_id, nx=True, px=int(ttl * 1000)))


async def release(r: Any, name: str, server_id: str) -> None:
    """Exercise 2: give ``name`` up, if (and only if) ``server_id`` still holds it."""
    # Read the holder and delete in one step (Redis runs a script atomically): between a GET and
    # a DEL, the claim could expire and another server take the name.
    only_if_mine = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
    await r.eval(f"{only_if_mine} return 0", 1, f"user:{name.casefold()}", server_id)
