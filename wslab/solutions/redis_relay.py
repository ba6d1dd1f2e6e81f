"""The Rust tutorial's relay over Redis: python redis_relay.py NAME REDIS_URL (lesson 06's blank)."""

import asyncio
import sys

import redis.asyncio as redis
from websockets.asyncio.server import broadcast, serve

CHANNEL = "chat:messages"  # every server subscribes to it, and publishes on it
local: set = set()  # this process's own WebSocket clients


async def relay(websocket, r, name):
    """One client of this process: each message it sends is published on CHANNEL, tagged "(via NAME)"."""
    local.add(websocket)
    try:
        async for text in websocket:
            await r.publish(CHANNEL, f"{text} (via {name})")
    finally:
        local.discard(websocket)


async def subscribe(r):
    """A subscription to CHANNEL, confirmed: from its return on, what is published there reaches us."""
    pubsub = r.pubsub()
    await pubsub.subscribe(CHANNEL)
    return pubsub


async def forward(pubsub):
    """Every message Redis delivers on CHANNEL, to every client of this process."""
    async for message in pubsub.listen():
        if message["type"] == "message":  # not the confirmation of the subscription
            broadcast(local, message["data"])


async def main(name, redis_url):
    r = redis.from_url(redis_url, decode_responses=True)
    pubsub = await subscribe(r)  # 1. subscribe to the shared channel
    async with serve(lambda websocket: relay(websocket, r, name), "127.0.0.1", 0) as server:
        print("listening on port", server.sockets[0].getsockname()[1], flush=True)  # 2. relay
        await forward(pubsub)  # 3. forward


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
