"""The layers' rules, read from the source: what each part of the package may import and do.

``wslab/`` is built in layers, each importing only from the ones below it::

    cli, bench                                   (commands)
    widgets, checks, solutions, orientation      (what people use in the lessons)
    servers, clients, brokers, services, faults  (asyncio shells)
    runtime                                      (asyncio plumbing: serving, waiting, logs)
    core                                         (the rules, I/O-free)
    imports                                      (the packages' lazy exports)

The core imports no asyncio, sockets, TLS, processes, threads, websockets, web framework or
widgets, and reads no clock it was not given: each of its modules takes inputs and returns
what to do. No import cycle, not even one only the type checker follows; no module hands out
another module's names (a package's ``__init__`` may); no private API of websockets.

Each rule is a function over modules and their paths, and each is shown to catch a
violation planted in a sample module, so that a rule which finds nothing means something.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from codebase import (
    Import,
    When,
    attribute_uses,
    declared_all,
    definitions,
    dotted,
    imports,
    layer_name,
    modules,
    wslab_targets,
)

MODULES = modules()

#: The layers, lowest first; a module may import from its own layer and the ones below.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"imports"}),
    frozenset({"core"}),
    frozenset({"runtime"}),
    frozenset({"servers", "clients", "brokers", "services", "faults"}),
    frozenset({"widgets", "checks", "solutions", "orientation"}),
    frozenset({"cli", "bench"}),
)
#: What the core never imports: I/O, concurrency, and the libraries that do it.
IO_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "ssl",
        "selectors",
        "subprocess",
        "threading",
        "websockets",
        "starlette",
        "uvicorn",
        "ipywidgets",
        "IPython",
        "anywidget",
    }
)
#: Functions that read a clock, wherever they are called or passed (as a default, say).
CLOCKS = frozenset(
    {
        *(f"time.{name}" for name in ("time", "monotonic", "perf_counter", "process_time", "thread_time")),
        *(f"time.{name}_ns" for name in ("time", "monotonic", "perf_counter", "process_time", "thread_time")),
        "time.clock_gettime",
        "time.clock_gettime_ns",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
    }
)
#: Functions that read the clock when called without a time: how many arguments mean "now".
CLOCKS_WITHOUT_A_TIME = {
    "time.localtime": 0,
    "time.gmtime": 0,
    "time.ctime": 0,
    "time.asctime": 0,
    "time.strftime": 1,
}
#: websockets' connection internals without a leading underscore: ``send_data()`` writes what
#: the protocol holds, outside the connection's own locking; ``broadcast()`` is the public way.
WEBSOCKETS_INTERNALS = frozenset(
    {
        "send_data",
        "send_context",
        "recv_messages",
        "pong_waiters",
        "acknowledge_pings",
        "terminate_pending_pings",
        "send_in_progress",
        "protocol_mutex",
        "fragmented_send_waiter",
    }
)
#: A connection's sans-I/O protocol (``connection.protocol``), driven from outside the connection
#: that owns it. A protocol object of one's own (``bench/tabs.py``) is driven this way, rightly.
PROTOCOL_DRIVERS = frozenset(
    {
        "send_text",
        "send_binary",
        "send_continuation",
        "send_close",
        "send_ping",
        "send_pong",
        "fail",
        "receive_data",
        "receive_eof",
        "data_to_send",
        "events_received",
    }
)


def rank(module: str) -> int:
    """A module's layer, lowest 0; the package's own ``__init__`` and ``__main__`` are on top."""
    name = layer_name(module)
    for index, layer in enumerate(LAYERS):
        if name in layer:
            return index
    return len(LAYERS)


def in_core(known: Mapping[str, Path]) -> dict[str, Path]:
    return {
        name: path for name, path in known.items() if name == "wslab.core" or name.startswith("wslab.core.")
    }


# --- the rules ----------------------------------------------------------------------------


def io_imports(module: str, path: Path) -> Iterator[str]:
    """Imports of I/O modules, whenever they run (type-only and lazy ones too)."""
    for item in imports(module, path):
        roots = {item.target.split(".")[0]}
        if not item.target:
            continue
        if roots & IO_MODULES:
            yield f"{path.name}:{item.line} imports {item.target}"


def clock_reads(module: str, path: Path) -> Iterator[str]:
    """Every use of a function that reads a clock: called, or passed on (as a default, say)."""
    local: dict[str, str] = {}
    for item in imports(module, path):
        if item.names:
            local.update((alias, f"{item.target}.{name}") for alias, name in item.aliases)
        else:
            local.update(item.aliases)
    tree = ast.parse(path.read_text())
    called: dict[int, ast.Call] = {
        id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name | ast.Attribute):
            continue
        head, _, rest = dotted(node).partition(".")
        if head not in local:
            continue
        full = ".".join(filter(None, (local[head], rest)))
        call = called.get(id(node))
        if full in CLOCKS:
            yield f"{path.name}:{node.lineno} reads the clock: {full}"
        elif full in CLOCKS_WITHOUT_A_TIME and (
            call is None or len(call.args) <= CLOCKS_WITHOUT_A_TIME[full]
        ):
            yield f"{path.name}:{node.lineno} reads the clock: {full} without a time"


def upward_imports(known: Mapping[str, Path]) -> Iterator[str]:
    """Imports of a layer above the importer's, whenever they run."""
    for module, path in known.items():
        for item in imports(module, path):
            for target in wslab_targets(item, known):
                if rank(target) > rank(module):
                    where = f"{module} ({layer_name(module)})"
                    yield f"{where} imports {target} ({layer_name(target)}), line {item.line}"


def import_graph(known: Mapping[str, Path]) -> dict[str, set[str]]:
    """Who imports whom, counting every import: at import time, type-only and lazy."""
    return {
        module: {
            target
            for item in imports(module, path)
            for target in wslab_targets(item, known)
            if target != module and not module.startswith(target + ".")  # a package's __init__ runs first
        }
        for module, path in known.items()
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                found.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def reexports(known: Mapping[str, Path]) -> Iterator[str]:
    """Names a module hands out without defining them: in its ``__all__``, or imported from it.

    A package's ``__init__`` gathers the package's names for the lessons: it may. Inside the
    package, every name is imported from the module that defines it, never through a package's
    ``__init__``, so that each name has one home.
    """
    defined = {module: definitions(path) for module, path in known.items()}
    packages = {module for module, path in known.items() if path.name == "__init__.py"}
    for module, path in known.items():
        if module not in packages:
            for name in declared_all(path):
                if name not in defined[module]:
                    yield f"{module} lists {name} in __all__ but imports it"
        bound: dict[str, str] = {}
        for item in imports(module, path):
            if item.target not in known:
                continue
            if not item.names:
                bound.update(item.aliases)
                continue
            for local, name in item.aliases:
                if f"{item.target}.{name}" in known:
                    bound[local] = f"{item.target}.{name}"
                elif item.target in packages:
                    yield f"{module} imports {name} through the package {item.target} (line {item.line})"
                elif item.target not in packages and name not in defined[item.target]:
                    yield f"{module} imports {name} from {item.target}, not its home (line {item.line})"
        for owner, attribute, line in attribute_uses(path):
            target = bound.get(owner)
            if target is None or target in packages or attribute.startswith("__"):
                continue
            if attribute not in defined[target] and f"{target}.{attribute}" not in known:
                yield f"{module} uses {target}.{attribute}, not defined there (line {line})"


def websockets_internals(module: str, path: Path) -> Iterator[str]:
    """Private websockets API (underscored names, connection internals, its protocol driven from
    outside), and websockets' CloseCode, which would be a second enum of wslab's own codes."""
    aliases: dict[str, str] = {}
    for item in imports(module, path):
        if item.target.split(".")[0] != "websockets":
            continue
        if any(part.startswith("_") and not part.startswith("__") for part in item.target.split(".")):
            yield f"{path.name}:{item.line} imports {item.target}"
        if item.target.startswith("websockets.legacy"):
            yield f"{path.name}:{item.line} imports {item.target} (deprecated)"
        for local, name in item.aliases:
            if item.names and name.startswith("_"):
                yield f"{path.name}:{item.line} imports {item.target}.{name}"
            if item.names and name == "CloseCode":
                yield f"{path.name}:{item.line} imports websockets' CloseCode (wslab's is core.close_codes)"
            aliases[local] = f"{item.target}.{name}" if item.names else name
    for owner, attribute, line in attribute_uses(path):
        if owner.split(".")[0] in aliases and attribute.startswith("_") and not attribute.startswith("__"):
            yield f"{path.name}:{line} uses {owner}.{attribute}"
        elif attribute in WEBSOCKETS_INTERNALS:
            yield f"{path.name}:{line} calls {owner}.{attribute} (websockets' internals)"
        elif attribute in PROTOCOL_DRIVERS and owner.endswith(".protocol"):
            yield f"{path.name}:{line} drives {owner}.{attribute}() behind its connection's back"


# --- the package follows them -------------------------------------------------------------


def test_the_core_is_found_by_walking_its_folder() -> None:
    core = in_core(MODULES)
    assert {"wslab.core.room", "wslab.core.session", "wslab.core.protocol"} <= set(core)
    assert len(core) >= 20


@pytest.mark.parametrize("module", sorted(in_core(MODULES)))
def test_a_core_module_imports_no_io_and_reads_no_clock(module: str) -> None:
    path = MODULES[module]
    found = [*io_imports(module, path), *clock_reads(module, path)]
    assert not found, "\n".join(found)


def test_importing_the_whole_core_loads_no_io_module() -> None:
    """In a fresh interpreter: what each core module brings into ``sys.modules``."""
    probe = (
        "import importlib, json, sys\n"
        f"io = {sorted(IO_MODULES)!r}\n"
        "loaded = {}\n"
        f"for name in {sorted(in_core(MODULES))!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded[name] = sorted(m for m in sys.modules if m.split('.')[0] in io)\n"
        "print(json.dumps(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout)
    assert loaded and all(found == [] for found in loaded.values()), loaded


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = list(upward_imports(MODULES))
    assert not found, "\n".join(found)


def test_no_import_cycles_not_even_type_only_or_lazy_ones() -> None:
    found = cycles(import_graph(MODULES))
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_each_name_is_imported_from_the_module_that_defines_it() -> None:
    found = list(reexports(MODULES))
    assert not found, "\n".join(found)


def test_no_private_websockets_api() -> None:
    found = [problem for module, path in MODULES.items() for problem in websockets_internals(module, path)]
    assert not found, "\n".join(found)


# --- each rule catches a planted violation ------------------------------------------------


def plant(tmp_path: Path, sources: Mapping[str, str]) -> dict[str, Path]:
    """Write sample modules (dotted name -> source) under ``tmp_path``; returns name -> path."""
    planted = {}
    for name, source in sources.items():
        path = tmp_path.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        planted[name] = path
    return planted


def test_the_io_rule_catches_an_import_even_a_lazy_or_type_only_one(tmp_path: Path) -> None:
    [(name, path)] = plant(
        tmp_path,
        {
            "wslab.core.sample": (
                "from typing import TYPE_CHECKING\nimport json\nif TYPE_CHECKING:\n    import asyncio\n"
                "def later():\n    from websockets.frames import Frame\n    import socket\n"
            )
        },
    ).items()
    assert [line.split(" imports ")[1] for line in io_imports(name, path)] == [
        "asyncio",
        "websockets.frames",
        "socket",
    ]


def test_the_clock_rule_catches_a_call_a_default_and_a_renamed_import(tmp_path: Path) -> None:
    [(name, path)] = plant(
        tmp_path,
        {
            "wslab.core.sample": (
                "import time\nfrom datetime import datetime\nfrom time import monotonic as tick\n"
                "def f(clock=time.monotonic):\n    return time.time(), datetime.now(), tick()\n"
                "def g(at):\n    return time.strftime('%H', time.localtime(at)), time.strftime('%H')\n"
            )
        },
    ).items()
    found = list(clock_reads(name, path))
    assert [line.split(": ", 1)[1] for line in found] == [
        "time.monotonic",
        "time.time",
        "datetime.datetime.now",
        "time.monotonic",
        "time.strftime without a time",
    ], found


def test_the_layer_rule_catches_an_import_from_above_even_a_lazy_one(tmp_path: Path) -> None:
    planted = plant(
        tmp_path,
        {
            "wslab.core.sample": "def later():\n    from ..servers import chat\n",
            "wslab.servers.chat": "from ..core import sample\n",
            "wslab.runtime.other": "from wslab.widgets.views import ChatPanel\n",
            "wslab.widgets.views": "ChatPanel = 1\n",
        },
    )
    assert sorted(upward_imports(planted)) == [
        "wslab.core.sample (core) imports wslab.servers.chat (servers), line 2",
        "wslab.runtime.other (runtime) imports wslab.widgets.views (widgets), line 1",
    ]


def test_the_cycle_rule_catches_a_type_only_cycle(tmp_path: Path) -> None:
    planted = plant(
        tmp_path,
        {
            "wslab.core.a": "from .b import B\nclass A: ...\n",
            "wslab.core.b": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\nclass B: ...\n"
            ),
        },
    )
    assert cycles(import_graph(planted)) == [["wslab.core.a", "wslab.core.b", "wslab.core.a"]]


def test_the_reexport_rule_catches_all_and_importers(tmp_path: Path) -> None:
    planted = plant(
        tmp_path,
        {
            "wslab.core.events": "class Event: ...\n",
            "wslab.core.protocol": (
                "from .events import Event\n__all__ = ['Event', 'parse']\ndef parse(): ...\n"
            ),
            "wslab.servers.chat": (
                "from ..core.protocol import Event, parse\nfrom ..core import protocol\nprotocol.Event\n"
            ),
            "wslab.core.__init__": "from .events import Event\n__all__ = ['Event']\n",
            "wslab.servers.other": "from wslab.core import Event\n",
        },
    )
    planted["wslab.core"] = planted.pop("wslab.core.__init__")
    assert sorted(reexports(planted)) == [
        "wslab.core.protocol lists Event in __all__ but imports it",
        "wslab.servers.chat imports Event from wslab.core.protocol, not its home (line 1)",
        "wslab.servers.chat uses wslab.core.protocol.Event, not defined there (line 3)",
        "wslab.servers.other imports Event through the package wslab.core (line 1)",
    ]


def test_the_websockets_rule_catches_private_names_and_internals(tmp_path: Path) -> None:
    [(name, path)] = plant(
        tmp_path,
        {
            "wslab.servers.sample": (
                "from websockets.asyncio.connection import _private\nimport websockets.frames\n"
                "from websockets.frames import CloseCode\n"
                "websockets.frames._hidden\n"
                "def push(connection, data):\n"
                "    connection.protocol.send_text(data)\n    connection.send_data()\n"
            )
        },
    ).items()
    assert [line.split(" ", 1)[1] for line in websockets_internals(name, path)] == [
        "imports websockets.asyncio.connection._private",
        "imports websockets' CloseCode (wslab's is core.close_codes)",
        "uses websockets.frames._hidden",
        "drives connection.protocol.send_text() behind its connection's back",
        "calls connection.send_data (websockets' internals)",
    ]


def test_the_imports_reading_knows_when_each_import_runs(tmp_path: Path) -> None:
    [(name, path)] = plant(
        tmp_path,
        {"wslab.core.sample": "import json\nif TYPE_CHECKING:\n    import a\ndef f():\n    import b\n"},
    ).items()
    assert [(item.target, item.when) for item in imports(name, path)] == [
        ("json", When.IMPORT),
        ("a", When.TYPING),
        ("b", When.CALL),
    ]
    assert isinstance(imports(name, path)[0], Import)
