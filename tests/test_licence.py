"""The code is MIT (LICENSE), the content CC BY 4.0 (LICENSE-CONTENT); both name their holder."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOLDER = "Copyright (c) 2026 the wslab authors"


def test_the_code_is_mit_and_names_its_holder() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n"), text[:80]
    assert HOLDER in text
    assert "<year>" not in text and "<copyright holders>" not in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_the_content_licence_is_the_whole_cc_by_4_legal_code_and_names_its_holder() -> None:
    text = (ROOT / "LICENSE-CONTENT").read_text()
    assert text.startswith(HOLDER), text[:80]
    assert "Creative Commons Attribution 4.0 International Public License" in text
    sections = re.findall(r"^Section (\d) -- ", text, re.M)
    assert sections == [str(n) for n in range(1, 9)], f"the legal code is incomplete: sections {sections}"
    assert text.rstrip().endswith("Creative Commons may be contacted at creativecommons.org.")


def test_pyproject_declares_the_package_licence_and_ships_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]


def test_the_readme_says_which_licence_covers_what() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Licence\n(.+?)(?=^## )", readme, re.M | re.S)
    assert section, "README.md has no '## Licence' section"
    text = " ".join(section.group(1).split())  # as read, whatever the line breaks
    for name in ("LICENSE", "LICENSE-CONTENT", "MIT", "CC BY 4.0", "wslab/", "tests/", "notebooks/", "docs/"):
        assert name in text, f"the README's licence section does not mention {name}"
    assert "2026 the wslab authors" in text
