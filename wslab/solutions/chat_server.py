"""The course's chat as a program: python chat_server.py PORT (lesson 08's blank, written in full)."""

import asyncio
import logging
import signal
import sys

from wslab.runtime.logs import JsonFormatter
from wslab.servers.chat import ChatServer


async def serve_until_stopped(port):
    """Serve the chat on 127.0.0.1:PORT until SIGTERM or SIGINT; then close every client with 1001
    (going away) within a few seconds, even one that never answers, and return the signal."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the address is out: a stop may come at once
        loop.add_signal_handler(sig, stop.set_result, sig)
    # close_timeout: a client that does not answer the closing handshake is dropped after 1 s
    server = await ChatServer().serve(host="127.0.0.1", port=port, close_timeout=1)
    print("listening on", server.url, flush=True)
    sig = await stop
    await server.stop()  # stop listening, then 1001 (going away) to every client
    return sig


async def main(port):
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())  # one JSON object per line
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    sig = await serve_until_stopped(port)
    logging.info("stopped", extra={"fields": {"event": "stopped", "signal": sig.name}})


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
