"""Lesson 01's learner edition in a real browser, as a learner meets it.

*Run All* on the lesson as shipped: no cell fails, each blank's check says "not written yet",
and the lesson still runs to its end on wslab's answers (its echo server answers a process
from outside). Then the learner writes the echo handler in the blank, runs that cell and its
check again, and the check says PASSED. JupyterLab + Chromium, driven by Playwright, as in
``tests/test_browser.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from jupyterlab_harness import (
    REPO,
    JupyterLab,
    error_outputs,
    notebook_page,
    run_command_on_cell,
    running_jupyterlab,
    wait_cells_finished,
    wait_kernel_idle,
    widget_errors,
)

LESSON = "learner/01-echo-server.ipynb"
ECHO = """async def echo(connection):
    async for message in connection:
        if isinstance(message, str):
            await connection.send(f"Echo: {message}")
        else:
            await connection.send(message)
"""

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with running_jupyterlab(REPO / "notebooks", tmp_path_factory.mktemp("jupyterlab")) as lab:
        yield lab


def cell_index(page: Any, cell_id: str) -> int:
    return page.evaluate(
        """([path, id]) => window.__panelFor(path).content.widgets.findIndex((c) => c.model.id === id)""",
        [LESSON, cell_id],
    )


def output_text(page: Any, cell_id: str) -> str:
    """What the cell printed, as the notebook model holds it."""
    return page.evaluate(
        """([path, id]) => window.__panelFor(path).content.widgets.find((c) => c.model.id === id)
             .model.outputs.toJSON()
             .map((o) => [].concat(o.text ?? (o.data || {})["text/plain"] ?? "").join("")).join("")""",
        [LESSON, cell_id],
    )


def run_cell(page: Any, cell_id: str) -> None:
    assert run_command_on_cell(page, LESSON, cell_index(page, cell_id), "notebook:run-cell") is True
    wait_cells_finished(page, LESSON)


def test_run_all_then_write_the_blank(browser: Any, lab: JupyterLab, request: pytest.FixtureRequest) -> None:
    with notebook_page(browser, lab, LESSON, request=request) as page:
        wait_kernel_idle(page)
        succeeded = run_command_on_cell(page, LESSON, 0, "notebook:run-all-cells")
        wait_cells_finished(page, LESSON)
        assert error_outputs(page, LESSON) == []
        assert succeeded is True, "Run All reported a failure"
        assert widget_errors(page) == []

        for check, title, blank in [("c06-check", "echo", "echo"), ("c13-check", "accept key", "accept_key")]:
            shown = output_text(page, check)
            assert shown.startswith(f"{title}: not written yet ({blank} has no body yet)"), shown
            assert f"(the cells below use wslab's {blank} until yours passes)" in shown, shown
            assert "Traceback" not in shown

        # The lesson ran to its end on wslab's echo, and is still serving.
        url = page.locator(".wslab-log code").first.text_content() or ""
        sent = subprocess.run(
            [sys.executable, "-m", "wslab", "send", url.strip(), "after Run All"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.stdout.splitlines() == ["Echo: after Run All"], sent

        # The learner writes the blank, runs it, and runs its check again.
        page.evaluate(
            """([path, source]) => window.__panelFor(path).content.widgets
                 .find((c) => c.model.id === "c06").model.sharedModel.setSource(source)""",
            [LESSON, ECHO],
        )
        run_cell(page, "c06")
        run_cell(page, "c06-check")
        shown = output_text(page, "c06-check")
        assert shown.startswith("echo: PASSED (6 of 6 checks hold)"), shown
        assert "wslab's echo" not in shown
        assert error_outputs(page, LESSON) == []
