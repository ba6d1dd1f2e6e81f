"""requirements.lock (what ``make lab`` and ``make test`` install) must agree with pyproject.toml.

pyproject.toml names the dependencies, those of every extra (test, book), and their lower
bounds; ``make lock`` turns them all into exact versions with hashes. These tests fail when
someone edits one and forgets the other, so a class never installs a set that lacks a
dependency or still carries a dropped one. They read files only: no network, no resolver.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKFILE = ROOT / "requirements.lock"
#: How uv's comments say that pyproject.toml itself asks for a package.
DIRECT = "wslab (pyproject.toml)"


@dataclass
class Pin:
    """One ``name==version ; marker`` entry of the lock file, with its hashes and "via" comments."""

    name: str
    version: Version
    marker: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def _pins() -> list[Pin]:
    pins: list[Pin] = []
    for line in LOCKFILE.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*(?:;\s*([^\\]*?))?\s*\\?$", line):
            name, version, marker = match.groups()
            pins.append(Pin(canonicalize_name(name), Version(version), marker or ""))
        elif pins and (hashed := re.match(r"^\s+--hash=(\w+:\w+)", line)):
            pins[-1].hashes.append(hashed.group(1))
        elif pins and (comment := re.match(r"^\s+#\s+(?:via\s+)?(?!via$)(\S.*)$", line)):
            pins[-1].via.append(comment.group(1).strip())
    assert pins, f"no pins read from {LOCKFILE.name}"
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_dependency_of_pyproject_is_pinned_within_its_bounds() -> None:
    pins = _pins()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        versions = [pin.version for pin in pins if pin.name == name]
        assert versions, f"{requirement} is in pyproject.toml but not in {LOCKFILE.name}: run make lock"
        outside = [str(v) for v in versions if not requirement.specifier.contains(v, prereleases=True)]
        assert not outside, f"{LOCKFILE.name} pins {name} at {outside}, outside {requirement}: run make lock"


def test_the_lock_asks_for_nothing_that_pyproject_dropped() -> None:
    declared = {canonicalize_name(r.name) for r in _declared()}
    direct = {pin.name for pin in _pins() if DIRECT in pin.via}
    assert direct == declared, (
        f"{LOCKFILE.name} is stale (run make lock): "
        f"dropped from pyproject.toml {sorted(direct - declared)}, new {sorted(declared - direct)}"
    )


def test_every_pin_is_exact_and_hashed_for_every_platform() -> None:
    pins = _pins()
    unhashed = [pin.name for pin in pins if not pin.hashes]
    assert not unhashed, f"pins without hashes (pip --require-hashes refuses them): {unhashed}"
    # A lock resolved for one machine has no markers; a universal one keeps, e.g., the
    # packages only macOS or Windows needs, each under its platform's marker.
    platform_only = [pin.name for pin in pins if re.search(r"\b(sys_platform|os_name)\b", pin.marker)]
    assert platform_only, f"{LOCKFILE.name} was resolved for one platform only: run make lock"
    assert "#    make lock" in LOCKFILE.read_text().splitlines()[1], "made by something other than make lock"
