"""The lessons' API: the names each API module exports, pinned, one path per name, and every
lesson importing only those names from only those paths.

Like websockets' ``tests/test_exports.py``: a name added to or dropped from the API is a
decision, made here on purpose, not a side effect of moving code. The lessons' code cells
(and the scripts they write with ``%%writefile``) are read as Python; nothing is run.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

COMPLETE = Path(__file__).resolve().parent.parent / "notebooks" / "complete"
NOTEBOOKS = sorted(COMPLETE.glob("[0-9][0-9]-*.ipynb"))
LESSONS = [f"lesson{n:02}" for n in range(1, 9)]

#: Every module of the API, and exactly what its ``__all__`` holds.
API: dict[str, list[str]] = {
    "wslab": [
        "CloseCode",
        "EventLog",
        "LogEvent",
        "LogKind",
        "ServerHandle",
        "running",
        "serve",
        "stop",
        "stop_all",
        "wait_until",
        "where",
    ],
    "wslab.core": [
        "AUDIENCE",
        "GUID",
        "ChatRoom",
        "ChatSession",
        "FleetSimulation",
        "HeartbeatPolicy",
        "PresencePolicy",
        "SseParser",
        "client_address",
        "new_join_code",
        "render_plain",
    ],
    "wslab.runtime": [
        "JsonFormatter",
        "browser_url",
        "close_details",
        "explain_tls_error",
        "free_port",
        "keep_alive",
        "notebook_origins",
    ],
    "wslab.servers": [
        "Balancer",
        "ChatServer",
        "FleetFeed",
        "OriginGuard",
        "create_app",
        "echo",
        "serve_audience",
        "serve_dashboard",
        "serve_web",
        "start_chat_servers",
    ],
    "wslab.clients": ["ChatClient", "FleetClient", "capture_handshake", "exchange"],
    "wslab.brokers": ["PUBLISH_SCRIPT", "Broker", "KafkaBroker", "MemoryBroker", "NatsBroker", "RedisBroker"],
    "wslab.services": [
        "ChatProcess",
        "NginxServer",
        "find_nginx",
        "nginx_config",
        "start_dashboard_servers",
        "start_services",
    ],
    "wslab.faults": ["FaultProxy", "Flow"],
    "wslab.widgets": [
        "AudienceView",
        "BrowserChat",
        "ChatBox",
        "ChatPanel",
        "FleetView",
        "MessageLog",
        "ServerPanel",
        "join_urls",
        "projector",
        "qr_svg",
    ],
    "wslab.bench": ["measure", "process_cpu_s", "process_rss_kib", "summary"],
    "wslab.checks": LESSONS,
    "wslab.checks.lesson01": [
        "accept_key_exercise",
        "check_numbered_echo",
        "check_polite_quit",
        "check_reverse",
        "echo_exercise",
    ],
    "wslab.checks.lesson02": [
        "after_exercise",
        "behind_exercise",
        "check_find_gaps",
        "check_history_lost",
        "check_lag_closes",
        "check_resuming_room",
        "check_username_rules",
        "forward_exercise",
        "handle_exercise",
        "publish_exercise",
        "say_exercise",
    ],
    "wslab.checks.lesson03": [
        "check_collect",
        "check_equal_jitter",
        "check_gives_up",
        "check_reconnecting_client",
        "jittered_delays_exercise",
        "tutorial_client_exercise",
    ],
    "wslab.checks.lesson04": [
        "check_origin_guard",
        "check_websocket_counter",
        "origin_allowed_exercise",
        "scope_log_exercise",
    ],
    "wslab.checks.lesson05": [
        "LATE_TIMERS",
        "check_every_message_counts",
        "check_heartbeat",
        "check_watchdog",
        "heartbeat_exercise",
    ],
    "wslab.checks.lesson06": [
        "check_catch_up",
        "check_claim_name",
        "kafka_relay_exercise",
        "numbering_exercise",
        "redis_relay_exercise",
    ],
    "wslab.checks.lesson07": [
        "changes_exercise",
        "check_break_even",
        "check_conditional_get",
        "check_etag_match",
        "events_exercise",
        "status_exercise",
    ],
    "wslab.checks.lesson08": ["check_heartbeat_for_proxy", "graceful_stop_exercise"],
    "wslab.solutions": LESSONS,
}

#: The packages whose ``__all__`` names modules (a lesson imports ``lesson02`` from them).
OF_MODULES = {"wslab.checks", "wslab.solutions"}

#: The one path of each name: the API module that exports it.
PATH = {name: module for module, names in API.items() if module not in OF_MODULES for name in names}


def resolve(module: str, name: str) -> object:
    """``from module import name``, as Python does it (a submodule if no attribute)."""
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError:
        return importlib.import_module(f"{module}.{name}")


@pytest.mark.parametrize("module", sorted(API))
def test_all_is_pinned(module: str) -> None:
    exported = importlib.import_module(module).__all__
    assert len(exported) == len(set(exported)), f"{module}.__all__ repeats a name"
    assert sorted(exported) == sorted(API[module]), f"{module}.__all__ changed: update API here, on purpose"


@pytest.mark.parametrize("module", sorted(API))
def test_every_name_resolves_and_is_documented(module: str) -> None:
    assert (importlib.import_module(module).__doc__ or "").strip(), f"{module} has no docstring"
    for name in API[module]:
        value = resolve(module, name)
        assert isinstance(value, types.ModuleType) == (module in OF_MODULES), f"{module}.{name} is {value!r}"


def test_a_name_has_one_path() -> None:
    names = [name for module, names in API.items() if module not in OF_MODULES for name in names]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"exported by two API modules: {repeated}"


def test_every_lesson_module_is_in_the_api() -> None:
    for package in OF_MODULES:
        found = {path.stem for path in Path(importlib.import_module(package).__path__[0]).glob("lesson*.py")}
        assert found == set(LESSONS), package


@pytest.mark.parametrize("package", sorted(m for m in API if m.count(".") <= 1 and m not in OF_MODULES))
def test_importing_an_api_package_loads_none_of_its_modules(package: str) -> None:
    """Names load on first use: ``import wslab.brokers`` imports no Redis client, and so on."""
    probe = (
        f"import sys, {package}\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('wslab.'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split()) - {package, "wslab.imports"}
    if package != "wslab":
        loaded -= {"wslab"}
    if package == "wslab.servers":
        loaded -= {"wslab.servers.echo"}  # ``echo``, spelled like its module, cannot be lazy
    assert not loaded, f"import {package} loads {sorted(loaded)}"


# --- the lessons keep to the API --------------------------------------------------------


def code_cells(notebook: Path) -> list[str]:
    """The Python of each code cell; a ``%%writefile x.py`` cell's file counts (it is lesson code)."""
    sources = []
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if source.startswith("%%writefile"):
            if not source.splitlines()[0].endswith(".py"):
                continue
            source = source.split("\n", 1)[1]
        sources.append(re.sub(r"(?m)^\s*[%!].*$", "", source))  # line magics and shell commands
    return sources


def violations(source: str, lesson: str) -> list[str]:
    """What in ``source`` (code of ``lesson``, say ``lesson02``) leaves the API."""
    tree = compile(source, lesson, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("wslab.")]
            found += [f"import wslab as {a.asname}" for a in node.names if a.name == "wslab" and a.asname]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "wslab":
            found += [wrong for a in node.names if (wrong := wrong_import(node.module or "", a.name, lesson))]
        elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == "wslab":
            found += [] if node.attr in API["wslab"] else [f"wslab.{node.attr}: not in wslab.__all__"]
    return found


def wrong_import(module: str, name: str, lesson: str) -> str | None:
    """Why ``from module import name`` in ``lesson`` leaves the API, or None."""
    where = f"from {module} import {name}"
    if module.startswith("wslab.checks.") and module != f"wslab.checks.{lesson}":
        return f"{where}: a lesson imports its own checks (wslab.checks.{lesson})"
    if module in OF_MODULES and name != lesson:
        return f"{where}: a lesson imports its own ({module} import {lesson})"
    if module not in API:
        path = PATH.get(name)
        return f"{where}: not an API module" + (f"; use from {path} import {name}" if path else "")
    if name not in API[module]:
        return f"{where}: {name} is not in {module}.__all__"
    return None


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_a_lesson_imports_only_the_api(notebook: Path) -> None:
    lesson = f"lesson{notebook.name[:2]}"
    found = [problem for source in code_cells(notebook) for problem in violations(source, lesson)]
    assert not found, f"{notebook.name}:\n" + "\n".join(found)


def test_the_lesson_rule_can_fail() -> None:
    """Each way of leaving the API is caught: a module path, a name outside ``__all__``, another
    lesson's checks or solutions, a submodule reached through ``wslab``."""
    source = (
        "import wslab\nimport wslab.core\n"
        "from wslab.servers.chat import ChatServer\n"
        "from wslab.servers import OverflowPolicy\n"
        "from wslab.checks.lesson02 import check_reverse\n"
        "from wslab.solutions import lesson03\n"
        "await wslab.serve(handler)\n"
        "wslab.core.protocol.render_plain(event)\n"
    )
    found = violations(source, "lesson01")
    assert len(found) == 6, found
    assert "use from wslab.servers import ChatServer" in found[1]
    assert violations("import wslab\nfrom wslab.core import GUID\nwslab.stop_all\n", "lesson01") == []
