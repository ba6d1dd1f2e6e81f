"""The I/O-free core stays I/O-free: importing it loads no asyncio, websockets or widgets."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = [
    "wslab.core.protocol",
    "wslab.core.room_event",
    "wslab.core.presence",
    "wslab.core.connection_log",
    "wslab.core.handshake",
    "wslab.core.heartbeat",
    "wslab.core.auth",
    "wslab.core.limits",
    "wslab.core.room",
    "wslab.core.actions",
    "wslab.core.session",
    "wslab.core.errors",
    "wslab.core.history",
    "wslab.core.backoff",
    "wslab.core.close_codes",
    "wslab.core.blanks",
]
FORBIDDEN = ("asyncio", "websockets", "ipywidgets")


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_imports_no_io(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} loads {result.stdout.strip()}"


def test_import_wslab_is_cheap_and_its_names_load_on_first_use() -> None:
    probe = (
        "import sys, wslab\n"
        "before = 'wslab.runtime.handles' in sys.modules\n"
        "wslab.EventLog, wslab.serve\n"
        "print(before, 'wslab.runtime.handles' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
