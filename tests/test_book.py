"""The reading copy of the course (``make book``) in a real browser, cut off from the network.

Most people meet a course before they install it. The site shows each lesson from its stored
outputs: what only a browser can show is that the live views a lesson saved (the echo log, the
audience view, the fleet's tiles) are drawn as they ended, that Mermaid diagrams are drawn, and
that all of it comes from the site itself. Every request outside loopback is aborted and fails
the test, as does any console error or WebSocket: a school's proxy or a train has no CDN.

The site is built once for the module, from the committed lessons, plus a fixture page with a
Mermaid block (the lessons get theirs soon: until a lesson has one, its diagram check skips and
says so). Needs the book's Python packages (the ``book`` extra) and npm packages (``make book``
or ``make test`` run ``npm ci`` in ``docs/book``) and Chromium; skipped without them, except
under ``CI=true`` where that fails.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest
from helpers import WIDGET_STATE, plain
from jupyterlab_harness import REPO, WIDGET_MS, save_artifacts, skip_or_fail

BOOK = REPO / "docs" / "book"
NOTEBOOKS = REPO / "notebooks" / "complete"
VIEW = "application/vnd.jupyter.widget-view+json"
STATE_TAG = re.compile(r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.S)
MERMAID_BLOCK = re.compile(r"^\s*(?:```|~~~)\s*mermaid\b", re.MULTILINE)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
BUILD_TIMEOUT = 300

# Each lesson and the wslab view (by its CSS class) that the brief promises a reader sees.
LESSON_VIEWS = {
    "01-echo-server": "wslab-log",
    "04-http-and-websockets": "wslab-audience",
    "07-fleet-dashboard": "wslab-fleet",
}
FIXTURE = "diagram-fixture"
FIXTURE_DIAGRAM = """sequenceDiagram
    participant B as browser
    participant S as server
    B->>S: GET / (Upgrade: websocket)
    S-->>B: 101 Switching Protocols"""

pytestmark = [pytest.mark.browser, pytest.mark.timeout(BUILD_TIMEOUT + 60)]


def load_builder() -> ModuleType:
    """docs/book/build.py, imported by path (it is a script, not part of the wslab package)."""
    spec = importlib.util.spec_from_file_location("wslab_book_build", BOOK / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------
# What a lesson stored
# --------------------------------------------------------------------------------------


def read_lesson(stem: str) -> Any:
    return nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)


def widget_state(notebook: Any) -> dict[str, Any]:
    """The widget models the notebook saved (``make notebooks`` does), by model id."""
    return notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def displayed_models(notebook: Any) -> list[str]:
    """The model id of every widget output, in page order."""
    return [
        output["data"][VIEW]["model_id"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if VIEW in output.get("data", {})
    ]


def stored_html(state: dict[str, Any], model_id: str) -> list[str]:
    """The HTML values a view shows, depth first through its children."""
    model = state[model_id]["state"]
    if "value" in model:
        return [model["value"]]
    children = [child.removeprefix("IPY_MODEL_") for child in model.get("children", [])]
    return [value for child in children if child in state for value in stored_html(state, child)]


def stored_views(notebook: Any, css_class: str, *, text: bool = True) -> list[list[str]]:
    """The texts (or HTML values) of each displayed view with ``css_class``, in page order."""
    state = widget_state(notebook)
    return [
        [plain(value) if text else value for value in stored_html(state, model_id)]
        for model_id in displayed_models(notebook)
        if css_class in state.get(model_id, {}).get("state", {}).get("_dom_classes", [])
    ]


def offline_models(notebook: Any) -> list[str]:
    """Displayed widgets with a front-end module of their own: the site shows a note instead."""
    state = widget_state(notebook)
    return [
        model_id
        for model_id in displayed_models(notebook)
        if not state.get(model_id, {}).get("model_module", "").startswith("@jupyter-widgets/")
    ]


def mermaid_blocks(notebook: Any) -> int:
    return sum(
        len(MERMAID_BLOCK.findall(cell.source)) for cell in notebook.cells if cell.cell_type == "markdown"
    )


def squeeze(text: str) -> str:
    """Text without whitespace: a stored HTML value and its rendering wrap lines differently."""
    return re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------------------
# The site, served on loopback, and pages with the network cut off
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole book, built as ``make book`` builds it, plus the Mermaid fixture page."""
    missing = [name for name in ("sphinx", "myst_nb", "sphinxcontrib.mermaid") if not _importable(name)]
    if missing:
        skip_or_fail(f"the book's Python packages are missing ({missing}): pip install -e '.[book]'")
    if not (BOOK / "node_modules" / ".package-lock.json").exists():
        skip_or_fail("the book's npm packages are missing: `make book` runs npm ci in docs/book")
    build_dir = tmp_path_factory.mktemp("book")
    fixture = build_dir / f"{FIXTURE}.ipynb"
    fixture_page = "# A diagram\n\nA Mermaid block in a markdown cell, as the lessons will have.\n\n"
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell(f"{fixture_page}```mermaid\n{FIXTURE_DIAGRAM}\n```\n")]
        ),
        fixture,
    )
    command = [sys.executable, str(BOOK / "build.py"), "--build-dir", str(build_dir), "--extra", str(fixture)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    assert result.returncode == 0, f"the book did not build:\n{result.stdout}{result.stderr}"
    return build_dir / "html"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The site over HTTP on 127.0.0.1 (port 0, bound once and held), as a static host serves it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class OfflinePage:
    """A page whose every request outside loopback is aborted, and recorded with every console
    error, uncaught exception, WebSocket and dialog: none may happen on a reading copy."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page, self.base_url = page, base_url
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.sockets: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("response", lambda r: self.errors.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        page.on("dialog", self._on_dialog)
        page.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_clean(self) -> None:
        assert not self.outside, f"the page reached outside loopback: {self.outside}"
        assert not self.errors, f"console errors: {self.errors}"
        assert not self.sockets, f"a reading copy opened WebSockets: {self.sockets}"
        assert not self.dialogs, f"dialogs (script in stored text ran): {self.dialogs}"


@pytest.fixture
def offline(browser: Any, base_url: str, request: pytest.FixtureRequest) -> Iterator[OfflinePage]:
    failed_before = request.session.testsfailed
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(WIDGET_MS)
    page = OfflinePage(context.new_page(), base_url)
    try:
        yield page
        if request.session.testsfailed > failed_before:
            save_artifacts(page.page, None, request.node.name)
    finally:
        context.close()


def assert_no_broken_diagram(page: Any) -> None:
    """Mermaid draws a block it cannot parse as an SVG too: one saying "Syntax error"."""
    broken = page.locator(".mermaid svg[aria-roledescription='error']").all_text_contents()
    assert not broken, f"Mermaid could not draw a block: {[text[-200:] for text in broken]}"


def open_page(offline: OfflinePage, path: str) -> Any:
    page = offline.page
    page.goto(offline.base_url + path, wait_until="load")
    return page


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", LESSON_VIEWS)
def test_a_lesson_shows_its_stored_views_as_they_ended(offline: OfflinePage, stem: str) -> None:
    notebook = read_lesson(stem)
    css_class = LESSON_VIEWS[stem]
    expected = stored_views(notebook, css_class)
    assert expected, f"{stem} displays no {css_class} view (was it executed with `make notebooks`?)"
    page = open_page(offline, f"notebooks/complete/{stem}.html")

    # Every widget output becomes a view: the wslab ones drawn, the others a note saying why not.
    outputs, notes = len(displayed_models(notebook)), len(offline_models(notebook))
    page.wait_for_function(
        "(n) => document.querySelectorAll('.widget-subarea > .lm-Widget').length === n", arg=outputs
    )
    assert page.locator(".wslab-offline-widget").count() == notes
    # And the plots: every stored PNG (matplotlib's) shown, loaded from the site.
    plots = sum(
        "image/png" in o.get("data", {}) for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
    loaded = page.locator("article img[src*='_images/']").evaluate_all(
        "(images) => images.filter((image) => image.complete && image.naturalWidth > 0).length"
    )
    assert loaded == plots, f"{plots} plots stored, {loaded} shown"
    shown = page.locator(f".{css_class}").all_inner_texts()
    assert len(shown) == len(expected), f"{len(expected)} {css_class} views stored, {len(shown)} shown"
    for texts, text in zip(expected, shown, strict=True):
        missing = [t for t in texts if squeeze(t) not in squeeze(text)]
        assert not missing, f"stored text not shown in the {css_class} view: {missing!r}\nshown: {text!r}"
    offline.assert_clean()


def test_the_echo_log_shows_its_events(offline: OfflinePage) -> None:
    """Lesson 01's log, as a reader sees it: everyone gone, every event still listed."""
    stored = " ".join(stored_views(read_lesson("01-echo-server"), "wslab-log")[0])
    events = int(re.search(r"\b0 connected · (\d+) events\b", stored).group(1))
    assert events > 0, stored
    page = open_page(offline, "notebooks/complete/01-echo-server.html")
    log = page.locator(".wslab-log").first
    log.wait_for()
    assert f"0 connected · {events} events" in log.inner_text()
    lines = log.locator(".wslab-log-lines").inner_text().strip().splitlines()
    assert any("Echo: hello" in line for line in lines), lines
    offline.assert_clean()


def test_the_fleet_shows_its_tiles_and_a_hostile_name_as_text(offline: OfflinePage) -> None:
    stored = " ".join(stored_views(read_lesson("07-fleet-dashboard"), "wslab-fleet", text=False)[0])
    tiles = len(re.findall(r"<div style='background:", stored))
    assert tiles > 0, stored
    page = open_page(offline, "notebooks/complete/07-fleet-dashboard.html")
    fleet = page.locator(".wslab-fleet").first
    fleet.wait_for()
    assert fleet.locator("div[style*='background']").count() == tiles, fleet.inner_text()
    assert squeeze(plain(stored)) in squeeze(fleet.inner_text())
    assert fleet.locator("img, script").count() == 0  # a service named like markup is text
    offline.assert_clean()


@pytest.mark.parametrize("stem", sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")))
def test_a_lesson_draws_its_diagrams(offline: OfflinePage, stem: str) -> None:
    blocks = mermaid_blocks(read_lesson(stem))
    if not blocks:
        pytest.skip(f"{stem} has no ```mermaid block yet (the fixture page proves the path)")
    page = open_page(offline, f"notebooks/complete/{stem}.html")
    page.wait_for_function(
        "(n) => document.querySelectorAll('.mermaid svg').length === n", arg=blocks, timeout=30_000
    )
    assert_no_broken_diagram(page)
    offline.assert_clean()


def test_a_mermaid_block_in_a_markdown_cell_is_drawn(offline: OfflinePage) -> None:
    page = open_page(offline, f"extras/{FIXTURE}.html")
    diagram = page.locator(".mermaid svg").first
    diagram.wait_for(timeout=30_000)
    assert_no_broken_diagram(page)
    text = diagram.text_content()
    assert "101 Switching Protocols" in text and "browser" in text, text
    offline.assert_clean()


def test_the_landing_page_is_the_readme_and_links_every_lesson(offline: OfflinePage) -> None:
    page = open_page(offline, "index.html")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.splitlines()[0].removeprefix("# ") in page.locator("h1").first.inner_text()
    article = page.locator("article").first
    for lesson in sorted(NOTEBOOKS.glob("*.ipynb")):
        link = article.locator(f"a[href='notebooks/complete/{lesson.stem}.html']")
        assert link.count() >= 1, f"the landing page does not link {lesson.name}"
        sidebar = page.locator(f".bd-sidebar-primary a[href='notebooks/complete/{lesson.stem}.html']")
        assert sidebar.count() == 1, f"the navigation does not list {lesson.name}"
    offline.assert_clean()


def test_search_finds_a_lesson(offline: OfflinePage) -> None:
    page = open_page(offline, "search.html?q=heartbeat")
    results = page.locator("#search-results a[href*='05-heartbeats']")
    results.first.wait_for(timeout=30_000)
    offline.assert_clean()


def test_every_script_and_stylesheet_comes_from_the_site(site: Path) -> None:
    """All pages, not only the three opened above; and the check itself catches a CDN."""
    builder = load_builder()
    assert builder.external_loads(site) == []
    sample = site.parent / "cdn-sample"
    sample.mkdir(exist_ok=True)
    (sample / "page.html").write_text(
        '<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn.example/x.css">'
        '<script type="module">import m from "https://cdn.example/m.mjs";</script>'
        '<script src="_static/local.js"></script>'
    )
    (sample / "x.css").write_text("@import url('https://fonts.example/css'); a { background: url(ok.png) }")
    assert [line.split(": ", 1)[1] for line in builder.external_loads(sample)] == [
        "https://cdn.example/x.js",
        "//cdn.example/x.css",
        "https://cdn.example/m.mjs",
        "https://fonts.example/css",
    ]


def test_no_widget_state_is_lost_on_the_way(site: Path) -> None:
    """Each lesson's page carries its notebook's whole saved widget state (MyST-NB copies it)."""
    for lesson in sorted(NOTEBOOKS.glob("*.ipynb")):
        state = widget_state(read_lesson(lesson.stem))
        page = (site / "notebooks" / "complete" / f"{lesson.stem}.html").read_text(encoding="utf-8")
        found = STATE_TAG.search(page)
        if not state:
            assert found is None
            continue
        assert found, f"{lesson.name}: no widget state in its page"
        assert json.loads(found.group(1))["state"].keys() == state.keys()
