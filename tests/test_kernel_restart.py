"""Restarting or shutting down a lesson's kernel stops everything the lesson started.

No lesson stops its servers at the end any more (Run All leaves them running for the learner);
the documented way to stop is *Kernel → Restart Kernel*. So a real kernel (jupyter_client, as
JupyterLab and nbval start it) runs what lessons 06 to 08 run: a Redis server and a chat server
as child processes (``wslab.services``: sessions of their own), a WebSocket server in the
kernel, and a process a cell starts itself (``asyncio.create_subprocess_exec``, as lesson 06's
fan-out servers) listening on a port. Then the kernel is restarted (JupyterLab's way), shut down
politely (``make notebooks``' way) or killed at once (nbval's way), and no process (by pid) and
no listening port (by port) may be left.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

#: What a lesson starts, as its cells start it.
START = """
import asyncio, json, os, sys
import wslab
from wslab.servers import echo, start_chat_servers
from wslab.services import start_services

services = await start_services(nats=False, required=True)
chat = (await start_chat_servers(["s1"], services.redis_url))[0]
echo_server = await wslab.serve(echo, name="echo")
listener = await asyncio.create_subprocess_exec(
    sys.executable, "-c",
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen();"
    " print(s.getsockname()[1], flush=True); time.sleep(600)",
    stdout=asyncio.subprocess.PIPE,
)
listener_port = int(await listener.stdout.readline())
print(json.dumps({
    "pids": [os.getpid(), services.redis.pid, chat.pid, listener.pid],
    "ports": [services.redis.port, chat.port, echo_server.port, listener_port],
}))
"""
GONE_TIMEOUT = 30.0


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever inherited it, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelManager]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path))
    try:
        yield manager
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)


def run_cell(manager: KernelManager, code: str) -> str:
    """Execute ``code`` in the kernel; its printed output. An error in it fails the test."""
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        printed: list[str] = []

        def keep(message: dict) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                printed.append("\n".join(message["content"]["traceback"]))

        reply = client.execute_interactive(code, timeout=90, output_hook=keep)
        assert reply["content"]["status"] == "ok", "".join(printed)
        return "".join(printed)
    finally:
        client.stop_channels()


@pytest.mark.parametrize("how", ["restart", "shutdown", "kill"])
def test_the_kernel_takes_every_process_and_port_with_it(kernel: KernelManager, how: str) -> None:
    started = json.loads(run_cell(kernel, START).strip().splitlines()[-1])
    pids, ports = started["pids"], started["ports"]
    assert all(alive(pid) for pid in pids) and all(listening(port) for port in ports), started

    if how == "restart":  # Kernel → Restart Kernel in JupyterLab
        kernel.restart_kernel()
    else:  # make notebooks (nbclient) shuts down politely; nbval kills at once
        kernel.shutdown_kernel(now=how == "kill")

    deadline = time.monotonic() + GONE_TIMEOUT
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)], [port for port in ports if listening(port)]
        if left == ([], []):
            break
        time.sleep(0.1)  # polling a condition (the processes exit), with a deadline
    assert left == ([], []), f"after {how}, still running (pids) and listening (ports): {left}"
    if how == "restart":
        assert run_cell(kernel, "import wslab; print(wslab.running())").strip() == "[]"
