"""Build the reading copy of the course: a static site of the lessons from their stored outputs.

``make book`` runs this after ``npm ci`` in ``docs/book``. It stages the sources (the lessons,
the pages they link to, a landing page made from README.md), runs Sphinx with MyST-NB (no
notebook is executed), copies the npm scripts the pages load into ``_static/vendor/``, and
checks that no page loads a script or stylesheet from anywhere but the site itself.

    python docs/book/build.py [--build-dir DIR] [--extra PAGE ...]

The site is ``DIR/html`` (default ``docs/book/_build/html``). ``--extra`` adds pages (a
notebook or a MyST markdown file) under ``extras/``: the tests use it for a fixture page.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NODE_MODULES = HERE / "node_modules"
#: The lessons the site shows, where the repository keeps them (relative links keep working).
COMPLETE = "notebooks/complete"

# What the pages load from npm, as (source under node_modules, target under _static/vendor).
VENDOR = [
    ("requirejs/require.js", "require.js"),
    ("@jupyter-widgets/html-manager/dist/libembed-amd.js", "html-manager/libembed-amd.js"),
    ("mermaid/dist/mermaid.esm.min.mjs", "mermaid/mermaid.esm.min.mjs"),
    ("mermaid/LICENSE", "mermaid/LICENSE"),
]
# Directories copied with the files they hold: Mermaid's chunks (imported relative to
# mermaid.esm.min.mjs) and the fonts the widgets' stylesheet refers to.
VENDOR_DIRS = [
    ("mermaid/dist/chunks/mermaid.esm.min", "mermaid/chunks/mermaid.esm.min", ("*.mjs",)),
    ("@jupyter-widgets/html-manager/dist", "html-manager", ("*.woff2", "*.woff", "*.ttf", "*.eot", "*.svg")),
]

LANDING_NOTE = """
```{note}
This is the reading copy of the course: every lesson as it ended when it was last run, with its
traffic, live views and plots as they were stored. Nothing runs here; to run the servers
yourself, follow the set-up below.
```
"""


class BuildError(Exception):
    """The site cannot be built as asked (missing tools, or a page that would load from outside)."""


def landing_page(readme: str, lessons: list[str], pages: list[str], extras: list[str]) -> str:
    """README.md with a note under its title and the site's navigation (hidden tables of contents)."""
    title, _, rest = readme.partition("\n")
    if not title.startswith("# "):
        raise BuildError("README.md must start with its title (# ...)")
    toctrees = [("Lessons", lessons), ("Reference", pages), ("Test pages", extras)]
    navigation = "".join(
        f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "".join(f"{d}\n" for d in docs) + "```\n"
        for caption, docs in toctrees
        if docs
    )
    return f"{title}\n{LANDING_NOTE}{rest.rstrip()}\n{navigation}"


def stage(source: Path, extras: list[Path]) -> None:
    """Lay out the site's sources as the repository does, so relative links keep working."""
    if source.exists():
        shutil.rmtree(source)
    # The complete edition: executed, with every answer and output (the learner edition has none).
    (source / COMPLETE).mkdir(parents=True)
    (source / "docs").mkdir()
    lessons = sorted((REPO / COMPLETE).glob("*.ipynb"))
    for lesson in lessons:
        shutil.copy2(lesson, source / COMPLETE / lesson.name)
    # The pages the lessons and README.md link to, this folder's README.md (how the site is made) among them.
    pages = [*sorted((REPO / "docs").glob("*.md")), HERE / "README.md"]
    for page in pages:
        (source / page.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, source / page.relative_to(REPO))
    if extras:
        (source / "extras").mkdir()
    for extra in extras:
        shutil.copy2(extra, source / "extras" / extra.name)
    index = landing_page(
        (REPO / "README.md").read_text(encoding="utf-8"),
        [f"{COMPLETE}/{lesson.stem}" for lesson in lessons],
        [page.relative_to(REPO).with_suffix("").as_posix() for page in pages],
        [f"extras/{extra.stem}" for extra in extras],
    )
    (source / "index.md").write_text(index, encoding="utf-8")


def copy_vendor(static: Path) -> None:
    """The npm files the pages load, into the site (``npm ci`` in docs/book installs them)."""
    missing = [name for name, _ in VENDOR if not (NODE_MODULES / name).is_file()]
    if missing:
        raise BuildError(
            f"npm packages missing in {NODE_MODULES} ({missing}): "
            "with Node.js 18 or newer, `make book` installs them (npm ci)"
        )
    vendor = static / "vendor"
    for name, target in VENDOR:
        (vendor / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(NODE_MODULES / name, vendor / target)
    for name, target, patterns in VENDOR_DIRS:
        (vendor / target).mkdir(parents=True, exist_ok=True)
        for pattern in patterns:
            for path in (NODE_MODULES / name).glob(pattern):
                shutil.copy2(path, vendor / target / path.name)


class _Loads(HTMLParser):
    """The scripts, stylesheets and module imports one page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = True
            self.urls.append(found.get("src") or "")
        elif tag == "link" and found.get("rel") in ("stylesheet", "preload", "modulepreload"):
            self.urls.append(found.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls += re.findall(r"""\bimport\b[^"'`;]*?["'`]([^"'`]+)["'`]""", data)


EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"""(?:@import\s+(?:url\()?|url\()\s*["']?([^"')\s]+)""")


def external_loads(site: Path) -> list[str]:
    """``page: url`` for every script, stylesheet or CSS import the site would fetch from elsewhere."""
    found = []
    for page in sorted(site.rglob("*.html")):
        parser = _Loads()
        parser.feed(page.read_text(encoding="utf-8"))
        found += [f"{page.relative_to(site)}: {url}" for url in parser.urls if EXTERNAL.match(url)]
    for sheet in sorted(site.rglob("*.css")):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        found += [f"{sheet.relative_to(site)}: {url}" for url in CSS_URL.findall(text) if EXTERNAL.match(url)]
    return found


def build(build_dir: Path, extras: list[Path] = ()) -> Path:
    """Stage, run Sphinx (warnings are errors: a broken link fails the build), vendor, check."""
    try:
        from sphinx.cmd.build import build_main
    except ImportError as exc:
        raise BuildError("Sphinx is missing: `make book` installs it (pip install -e '.[book]')") from exc
    source, site = build_dir / "src", build_dir / "html"
    stage(source, [Path(extra).resolve() for extra in extras])
    args = ["-b", "html", "-q", "-W", "--keep-going", "-c", str(HERE), "-d", str(build_dir / "doctrees")]
    if build_main([*args, str(source), str(site)]) != 0:
        raise BuildError("Sphinx failed (see above)")
    copy_vendor(site / "_static")
    outside = external_loads(site)
    if outside:
        raise BuildError("pages would load from outside the site:\n  " + "\n  ".join(outside))
    return site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=HERE / "_build", help="the site goes to DIR/html")
    parser.add_argument("--extra", type=Path, action="append", default=[], help="one more page (tests)")
    options = parser.parse_args(argv)
    try:
        site = build(options.build_dir.resolve(), options.extra)
    except BuildError as exc:
        print(f"make book: {exc}", file=sys.stderr)
        return 1
    print(f"The reading copy is in {site}: open {site / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
