"""The README's main command, run as a newcomer runs it: on a fresh copy of the repository.

The command is read from the README itself (the first command of its "Set-up" section), not
typed again here, so the test follows whatever the README tells people to do. It runs in a copy
of the repository's files (what ``git clone`` gives: no ``.venv``, no stamps, no caches), so
it creates the virtual environment and installs everything, as a first run does. Then it
opens the address the command printed, which must be lesson 01 of the learner edition, asks
the Jupyter server's REST API what it serves and which settings the course shipped (no news
pop-up), and stops the server as Ctrl-C would (SIGTERM to the command's process group).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parent.parent
#: A first run creates .venv and installs JupyterLab and the rest: minutes on a slow network.
INSTALL_AND_START_TIMEOUT = 900.0
STOP_TIMEOUT = 30.0
LESSON_01 = "learner/01-echo-server.ipynb"
NOTIFICATION_SETTINGS = "/lab/api/settings/@jupyterlab/apputils-extension:notification"


def readme_main_command() -> str:
    """The first command in the README's set-up section (``make lab``)."""
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Set-up.*?(?=^## )", readme, re.M | re.S)
    assert section, "README.md has no '## Set-up' section"
    block = re.search(r"^```\w*\n(.+?)\n```", section.group(0), re.M | re.S)
    assert block, "README.md's set-up section shows no command"
    command = block.group(1).strip()
    assert "\n" not in command, f"the main command is one line: {command!r}"
    return command


def fresh_copy(destination: Path) -> Path:
    """The repository's files as a clone has them: tracked, plus new files git would commit."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = REPO / os.fsdecode(raw)
        if source.is_file():  # a file deleted but not yet committed is listed and absent
            target = destination / os.fsdecode(raw)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


class Output:
    """Collects a process's output lines on a thread, so its pipe never fills up."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Iterator[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout:g} s; output:\n{tail}"
                    )
                self._changed.wait(min(left, 1.0))

    def wait_closed(self, timeout: float) -> None:
        """Wait until every process writing to the pipe has exited (it reads end of file)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the command's processes still write after {timeout:g} s"

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)


def get(url: str, token: str | None = None, *, timeout: float = 60.0) -> tuple[str, bytes]:
    """GET ``url`` (with the token as a header, if given): the final URL and the body.

    The server prints its URL a moment before it accepts: a refused connection is tried again.
    """
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.geturl(), response.read()
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
        time.sleep(0.1)  # polling a condition (the server accepts), with a deadline


def api(url: str, token: str) -> object:
    """GET a Jupyter REST endpoint: its JSON."""
    return json.loads(get(url, token)[1])


def terminal_python(base: str, token: str) -> str:
    """Open a JupyterLab terminal as the browser does and ask it which Python ``python`` is."""
    request = urllib.request.Request(
        f"{base}/api/terminals", data=b"{}", method="POST", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        name = json.loads(response.read())["name"]
    ws_url = f"ws{base.removeprefix('http')}/terminals/websocket/{name}?token={token}"

    async def ask() -> str:
        async with connect(ws_url) as terminal:
            await terminal.send(
                json.dumps(["stdin", "python -c 'import sys; print(\"PYTHON\", sys.prefix)'\r"])
            )
            seen = ""
            try:
                async with asyncio.timeout(60):
                    async for message in terminal:
                        kind, *rest = json.loads(message)
                        seen += rest[0] if kind == "stdout" else ""
                        if found := re.search(r"PYTHON (/\S+)", seen):
                            return found.group(1)
            except TimeoutError:
                raise AssertionError(f"the terminal never answered: {seen!r}") from None
        raise AssertionError(f"the terminal closed before answering: {seen!r}")

    return asyncio.run(ask())


def test_the_readme_main_command_serves_the_course_from_a_fresh_copy(tmp_path: Path) -> None:
    command = readme_main_command()
    assert command.startswith("make "), command
    copy = fresh_copy(tmp_path / "wslab")
    assert not (copy / ".venv").exists()
    lessons = sorted(path.name for path in (REPO / "notebooks" / "learner").glob("*.ipynb"))
    assert len(lessons) >= 6

    token = os.urandom(16).hex()
    runtime = tmp_path / "jupyter-runtime"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    }
    env.update(
        JUPYTER_PORT="0",  # a port the system chooses: the server prints which
        JUPYTER_PORT_RETRIES="0",
        JUPYTER_TOKEN=token,
        # A throw-away Jupyter home: nothing from an earlier run (workspaces, settings) helps.
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "jupyter-workspaces"),
        BROWSER="true",  # "open the browser" runs true(1): there is no screen here
    )
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=copy,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: make, jupyter and the kernels
    )
    output = Output(process)
    try:
        match = output.wait_for(r"(http://[^/\s:]+:\d+)(/lab\S*)\?token=(\S+)", INSTALL_AND_START_TIMEOUT)
        base, path, shown = match.groups()
        bound = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", base)
        assert bound, f"JupyterLab should bind 127.0.0.1 only: {base}"
        port = int(bound.group(1))
        assert path == f"/lab/tree/{LESSON_01}", f"the printed address should open lesson 01: {match[0]}"
        assert shown in (token, "..."), shown  # a token given in JUPYTER_TOKEN is printed as "..."
        assert "--allow-root" in output.text() or os.getuid() != 0

        # The printed address, opened as a browser would (the token in the query): lesson 01's page.
        final, page = get(f"{base}{path}?token={token}")
        assert urlsplit(final).path == path, final
        assert b"JupyterLab" in page and b'"treePath": "learner/01-echo-server.ipynb"' in page, page[:2000]
        notebook = api(f"{base}/api/contents/{LESSON_01}", token)
        assert isinstance(notebook, dict) and notebook["type"] == "notebook", notebook

        contents = api(f"{base}/api/contents/learner", token)
        assert isinstance(contents, dict)
        listed = sorted(item["name"] for item in contents["content"] if item["type"] == "notebook")
        assert listed == lessons, f"the learner edition should hold the lessons: {listed}"
        editions = api(f"{base}/api/contents", token)
        assert isinstance(editions, dict)
        assert {"complete", "learner"} <= {item["name"] for item in editions["content"]}, editions

        # The settings shipped with the course (overrides.json: new defaults, the user's own
        # settings untouched): never ask about Jupyter news, never check for updates.
        settings = api(f"{base}{NOTIFICATION_SETTINGS}", token)
        assert isinstance(settings, dict)
        defaults = {name: spec.get("default") for name, spec in settings["schema"]["properties"].items()}
        assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False, defaults
        assert settings["settings"] == {}, "the course changed the learner's own settings"

        # A terminal opened in JupyterLab runs the course's Python, as lessons 01 and 05 say.
        assert Path(terminal_python(base, token)) == copy / ".venv"

        # What a browser started by the command opens: the same page.
        opened = [page.read_text() for page in runtime.glob("jpserver-*open.html")]
        assert any(f"/lab/tree/{LESSON_01}" in page for page in opened), opened
    finally:
        print(output.text()[-6000:])  # shown by pytest when the test fails
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"make lab did not stop within {STOP_TIMEOUT:g} s of SIGTERM") from None
        # make may exit first; JupyterLab (same process group) closes its kernels and terminals.
        output.wait_closed(STOP_TIMEOUT)

    assert "Shutting down" in output.text(), output.text()[-2000:]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "JupyterLab still listens after it stopped"
