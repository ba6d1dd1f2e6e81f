"""Lesson 01 in a real browser: JupyterLab + Chromium, driven by Playwright.

What only a browser can show: that the committed lesson opens without "Error displaying
widget" (untrusted, with the widgets' text fallback; trusted, with the widget state saved in
the notebook rendered as the widgets themselves), and that the echo server's live log widget
keeps updating while no cell runs, when a separate OS process talks to the server, with
messages shown as text, not HTML, after *Run All* (which leaves the lesson running), until a
kernel restart stops it.

Needs Chromium (``WSLAB_CHROMIUM``, ``/usr/bin/chromium``, ``chromium``, ``chromium-browser``
or ``google-chrome`` on PATH, or Playwright's own); skipped without it, except under
``CI=true`` where a missing browser fails. Run only these tests with
``pytest -m browser``, or leave them out with ``pytest -m "not browser"``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from jupyterlab_harness import (
    REPO,
    RUN_CELLS_MS,
    WIDGET_MS,
    JupyterLab,
    code_cells,
    copy_notebooks,
    error_outputs,
    kernel_status,
    notebook_page,
    run_command_on_cell,
    running_jupyterlab,
    trust_notebook,
    untrust_notebook,
    wait_cells_finished,
    wait_kernel_idle,
    widget_errors,
)

NOTEBOOKS = REPO / "notebooks"
LESSON = "complete/01-echo-server.ipynb"
LOG = ".wslab-log"  # MessageLog's CSS class; the lesson's first one logs the echo server
LOG_FALLBACK = "MessageLog('echo server': a live widget"  # its text/plain, shown where widgets can't be

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    assert (NOTEBOOKS / LESSON).is_file(), f"missing lesson notebook {NOTEBOOKS / LESSON}"
    with running_jupyterlab(NOTEBOOKS, tmp_path_factory.mktemp("jupyterlab")) as lab:
        yield lab


@pytest.fixture
def trust() -> str:
    """How the lesson is opened: "untrusted" as committed, or "trusted" (signed by the learner).

    A test changes it with ``@pytest.mark.parametrize("trust", [...])``.
    """
    return "untrusted"


@pytest.fixture
def page(browser: Any, lab: JupyterLab, trust: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The lesson, freshly copied from the repository, open in a new browser context."""
    copy_notebooks(NOTEBOOKS, lab.root_dir)
    if trust == "trusted":
        trust_notebook(lab, LESSON)
    try:
        with notebook_page(browser, lab, LESSON, request=request) as page:
            yield page
    finally:
        if trust == "trusted":
            untrust_notebook(lab, LESSON)


def wait_outputs_settled(page: Any, notebook: str) -> None:
    """Every stored output of ``notebook`` is attached and no widget view is still loading.

    ipywidgets shows "Loading widget..." until the widget manager has restored its models
    (after the kernel is up, ~2 s here), then the widget or "Error displaying widget: model
    not found". An untrusted notebook shows the text/plain fallback instead of widget views.
    """
    wait_kernel_idle(page)  # the widget manager restores saved widgets once the kernel is up
    page.wait_for_function(
        """(path) => window.__codeCells(path).every(
             ({cell}) => cell.outputArea.widgets.length === cell.model.outputs.length)""",
        arg=notebook,
        timeout=WIDGET_MS,
    )
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll(".jp-NotebookPanel .jp-OutputArea-output"))
             .every((node) => node.classList.contains("lm-mod-hidden")
                              || node.textContent.trim() !== "Loading widget...")""",
        timeout=WIDGET_MS,
    )


def trusted_cells(page: Any, notebook: str) -> list[bool]:
    return page.evaluate("(path) => window.__codeCells(path).map(({cell}) => cell.model.trusted)", notebook)


def assert_no_cell_running(page: Any) -> None:
    status = kernel_status(page)
    assert status.rstrip().endswith("| Idle"), f"kernel not idle: {status!r}"
    running = [cell for cell in code_cells(page, LESSON) if "*" in cell["prompt"]]
    assert not running, f"cells running: {running}"


@pytest.mark.parametrize("trust", ["untrusted", "trusted"])
def test_committed_lesson_renders(page: Any, trust: str) -> None:
    """What a learner sees on opening the lesson, before running anything.

    Untrusted (as committed), JupyterLab shows the widgets' text/plain fallback. Trusted, it
    renders the widget state that executing the lesson stored in its metadata (nbclient's
    ``store_widget_state``); without that state it would show "Error displaying widget".
    """
    wait_outputs_settled(page, LESSON)
    assert widget_errors(page) == []  # before waiting for the log: a missing widget fails at once
    if trust == "untrusted":
        assert not all(trusted_cells(page, LESSON)), "the committed lesson should open untrusted"
        assert page.locator(LOG).count() == 0
        assert LOG_FALLBACK in page.evaluate("() => document.body.textContent")
    else:
        assert all(trusted_cells(page, LESSON)), "jupyter trust did not make the lesson trusted"
        log = page.locator(LOG).first
        log.scroll_into_view_if_needed(timeout=WIDGET_MS)
        log.wait_for(state="visible", timeout=WIDGET_MS)
        header = log.locator(":scope > :first-child").text_content(timeout=WIDGET_MS) or ""
        assert "echo server" in header, header
    assert widget_errors(page) == []


def test_harness_detects_missing_widget_state(
    browser: Any, lab: JupyterLab, request: pytest.FixtureRequest
) -> None:
    """The trusted check above can fail: without its saved widget state the lesson shows the error."""
    stateless = "no-widget-state.ipynb"
    notebook = json.loads((NOTEBOOKS / LESSON).read_text())
    del notebook["metadata"]["widgets"]
    (lab.root_dir / stateless).write_text(json.dumps(notebook))
    trust_notebook(lab, stateless)
    try:
        with notebook_page(browser, lab, stateless, request=request) as page:
            wait_outputs_settled(page, stateless)
            assert all(trusted_cells(page, stateless))
            errors = widget_errors(page)
            assert errors, "no 'Error displaying widget' although the widget state is missing"
            assert any("model not found" in error for error in errors), errors
    finally:
        untrust_notebook(lab, stateless)
        (lab.root_dir / stateless).unlink()


def test_live_log_updates_while_no_cell_runs(page: Any, lab: JupyterLab) -> None:
    wait_kernel_idle(page)

    # Run All: the lesson ends with its echo server still up.
    succeeded = run_command_on_cell(page, LESSON, 0, "notebook:run-all-cells")
    wait_cells_finished(page, LESSON)
    assert error_outputs(page, LESSON) == []
    assert succeeded is True, "notebook:run-all-cells reported a failure"
    assert widget_errors(page) == []
    assert all(cell["prompt"] != "[ ]:" for cell in code_cells(page, LESSON)), "a cell did not run"

    log = page.locator(LOG).first
    log.scroll_into_view_if_needed(timeout=WIDGET_MS)
    # textContent, not innerText: a cell just scrolled into view may not be laid out yet
    # (JupyterLab skips off-screen cells with content-visibility).
    url = (log.locator("code").first.text_content(timeout=WIDGET_MS) or "").strip()
    assert url.startswith("ws://127.0.0.1:"), url
    port = urlsplit(url).port
    assert port

    # A separate OS process talks to the server while no cell is running.
    assert_no_cell_running(page)
    sent = subprocess.run(
        [sys.executable, "-m", "wslab", "send", url, "from outside 1", "<b>not bold</b> & co"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    assert "Echo: from outside 1" in sent.stdout.splitlines(), sent.stdout

    # The log shows it without any cell running; the markup arrives as text.
    page.wait_for_function(
        """(selector) => {
             const text = document.querySelector(selector).innerText;
             return text.includes("from outside 1") && text.includes("<b>not bold</b> & co");
           }""",
        arg=LOG,
        timeout=WIDGET_MS,
    )
    bold = page.evaluate(
        """(selector) => Array.from(document.querySelectorAll(selector + " b"))
             .filter((b) => b.textContent.trim() === "not bold").length""",
        LOG,
    )
    assert bold == 0, "a message was rendered as HTML"
    assert_no_cell_running(page)
    assert widget_errors(page) == []

    # What the lesson's last section says: restarting the kernel stops it, and frees the port.
    lab.restart_kernel(LESSON)
    wait_kernel_idle(page, RUN_CELLS_MS)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
