"""The same relay over Kafka, as a program: python kafka_relay.py NAME HOST:PORT (lesson 06's blank)."""

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from websockets.asyncio.server import broadcast, serve

ROOM = TopicPartition("chat", 0)  # the room: partition 0 of the topic "chat", one log, one order
local: set = set()  # this process's own WebSocket clients


async def relay(websocket, producer, name):
    """One client of this process: each message it sends is appended to the room's log, tagged (via NAME)."""
    local.add(websocket)
    try:
        async for text in websocket:
            value = f"{text} (via {name})".encode()
            await producer.send_and_wait(ROOM.topic, value, partition=ROOM.partition)
    finally:
        local.discard(websocket)


async def read_from_end(consumer):
    """This server's own reader of the room (no consumer group), placed at the end of the log."""
    consumer.assign([ROOM])
    end = (await consumer.end_offsets([ROOM]))[ROOM]
    consumer.seek(ROOM, end)


async def forward(consumer):
    """Every record of the room from there on, in order, to every client of this process, numbered."""
    async for record in consumer:
        broadcast(local, f"{record.offset} {record.value.decode()}")


async def main(name, bootstrap):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    # fetch_max_wait_ms: tansu answers a waiting fetch only when this runs out (lesson 06 says why).
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=20)
    await producer.start()
    await consumer.start()
    await read_from_end(consumer)  # 1. a reader of its own, from the end of the log
    async with serve(lambda websocket: relay(websocket, producer, name), "127.0.0.1", 0) as server:
        print("listening on port", server.sockets[0].getsockname()[1], flush=True)  # 2. relay
        await forward(consumer)  # 3. forward


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
