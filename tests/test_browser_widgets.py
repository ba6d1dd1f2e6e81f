"""Lesson 04's live views in JupyterLab, for everyone in the room: checked by axe-core (light and
dark themes), read out to screen readers, sized for a projector, and moderated with the mouse.

JupyterLab + Chromium (Playwright), as ``tests/test_browser.py``. The lesson runs from a copy with
three cells added at its end (a chat panel, a chat box, a server panel), so that every kind of view
the lessons show in a chat is on the page: the access log, the audience view, the in-notebook
browser client, and those three. axe is scoped to the views' own elements: JupyterLab's chrome
is not this course's. A view is scrolled into view before it is checked, since JupyterLab skips
laying out cells off screen.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import nbformat
import pytest
from accessibility import check_sync
from jupyterlab_harness import (
    REPO,
    JupyterLab,
    error_outputs,
    notebook_page,
    run_command_on_cell,
    run_in_kernel,
    running_jupyterlab,
    wait_cells_finished,
    wait_kernel_idle,
    widget_errors,
)

NOTEBOOKS = REPO / "notebooks"
NOTEBOOK = "complete/04-with-every-view.ipynb"
EXTRA_CELLS = [
    "from wslab.widgets import ChatBox, ChatPanel, ServerPanel, projector\n\npanel = ChatPanel(ada)\npanel",
    "box = ChatBox(linus)\nbox",
    "ServerPanel(chat)",
]
#: The root element of each kind of view (ChatBox is a chat panel too).
VIEWS = [".wslab-log", ".wslab-audience", ".wslab-chat-panel", ".wslab-server-panel", ".wslab-browser-chat"]
WAIT = 20.0
#: JupyterLab 4 wraps its shell in a zero-height ``.jp-ThemedContainer`` with ``overflow: hidden``;
#: the shell escapes it (absolutely positioned), but axe-core takes everything under it for
#: clipped, off screen, and measures no text at all. Letting it overflow changes nothing on the
#: screen and lets axe see what a person sees.
AXE_SEES_JUPYTERLAB = ".jp-ThemedContainer { overflow: visible !important; }"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def until(check: Callable[[], Any], what: str, describe: Callable[[], Any] = lambda: "") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {WAIT:g} s for {what}: {describe() or result!r}")
        time.sleep(0.05)
    return result


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    tmp = tmp_path_factory.mktemp("jupyterlab")
    # Every cell stays in the page (JupyterLab may otherwise drop cells far from the one in view):
    # each view can be found, scrolled to and checked.
    tracker = tmp / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}\n')
    with running_jupyterlab(NOTEBOOKS, tmp) as lab:
        lesson = nbformat.read(lab.root_dir / "complete/04-http-and-websockets.ipynb", as_version=4)
        lesson.cells += [nbformat.v4.new_code_cell(source) for source in EXTRA_CELLS]
        # The views are checked as this code draws them, not as the lesson last saved them: a
        # saved browser client's stylesheet (anywidget's _css, one per class) would be loaded too.
        lesson.metadata.pop("widgets", None)
        for cell in lesson.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        nbformat.write(lesson, lab.root_dir / NOTEBOOK)
        yield lab


@pytest.fixture(scope="module")
def page(browser: Any, lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The lesson and its added views after Run All: its servers and clients still running."""
    with notebook_page(browser, lab, NOTEBOOK, request=request) as page:
        wait_kernel_idle(page)
        succeeded = run_command_on_cell(page, NOTEBOOK, 0, "notebook:run-all-cells")
        wait_cells_finished(page, NOTEBOOK)
        assert error_outputs(page, NOTEBOOK) == []
        assert succeeded is True, "notebook:run-all-cells reported a failure"
        for selector in VIEWS:
            until(lambda s=selector: page.locator(s).count(), f"a {selector} view on the page")
        yield page
        assert widget_errors(page) == []


def kernel(page: Any, code: str) -> str:
    return run_in_kernel(page, NOTEBOOK, code)


def theme(page: Any, name: str) -> None:
    page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", name)
    light = "true" if "Light" in name else "false"
    until(lambda: page.evaluate("() => document.body.dataset.jpThemeLight") == light, f"the {name} theme")


def on_screen(page: Any, root: Any) -> None:
    """Scroll ``root`` to the top of the notebook's view until all of it is on the screen: axe
    checks the contrast of on-screen text only, and JupyterLab may move its cells while it lays
    them out."""

    def shown() -> bool:
        root.evaluate("(node) => node.scrollIntoView({block: 'start'})")
        box = root.bounding_box()
        return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"]

    until(shown, "the view entirely on screen", root.bounding_box)


@pytest.mark.parametrize("theme_name", ["JupyterLab Light", "JupyterLab Dark"])
def test_every_view_passes_axe(page: Any, theme_name: str) -> None:
    # A cut connection: the browser client shows a notice line (grey on white, once).
    notices = page.locator(".wslab-browser-chat li.notice")
    seen = notices.count()
    kernel(page, 'await chat.disconnect("grace", reason="a notice for axe to read")')
    state = page.locator(".wslab-browser-chat .wslab-bc-status").first
    until(lambda: notices.count() > seen and state.get_attribute("data-state") == "live", "a notice, live")
    theme(page, theme_name)
    page.add_style_tag(content=AXE_SEES_JUPYTERLAB)
    try:
        reports = []
        roots = page.locator(", ".join(VIEWS))
        for index in range(roots.count()):
            root = roots.nth(index)
            on_screen(page, root)
            root.evaluate("(node, index) => { node.dataset.axeTarget = index; }", index)
            kind = root.evaluate("(node) => [...node.classList].find((c) => c.startsWith('wslab-'))")
            reports.append(
                check_sync(page, f"{kind} ({theme_name})", include=[f'[data-axe-target="{index}"]'])
            )
        checked = {report.where.split(" ")[0] for report in reports}
        assert checked == {selector[1:] for selector in VIEWS}, checked
        print("\n".join(report.describe() for report in reports))
        for report in reports:
            report.assert_clean()
    finally:
        theme(page, "JupyterLab Light")


def region_lines(page: Any, selector: str) -> list[str]:
    """What the live region inside ``selector`` has been given to read out."""
    return page.locator(selector).first.evaluate(
        """(view) => [...view.querySelectorAll('[role="log"][aria-live="polite"] > div')]
             .map((line) => line.textContent)"""
    )


def test_new_lines_and_only_those_are_read_out(page: Any) -> None:
    panel, browser_chat = ".wslab-chat-panel:not(.wslab-chat-box)", ".wslab-browser-chat"
    shown_before = page.locator(panel).first.inner_text()
    assert "[ada] hello from a Python client" in shown_before  # on screen, but not news
    before = region_lines(page, panel)

    kernel(page, 'await linus.send("read this out, once")')
    line = "[linus] read this out, once"
    until(lambda: region_lines(page, panel)[-1:] == [line], "ada's panel to read the line out")
    assert region_lines(page, panel) == [*before, line]
    assert not any("hello from a Python client" in text for text in region_lines(page, panel))
    until(lambda: line in region_lines(page, browser_chat), "the browser client to read it out too")
    assert not any("<b>hello grace</b>" in text for text in region_lines(page, browser_chat))


#: Where to measure text: a log's lines, a text field, a button, a label, the browser client.
SIZED = {
    "log": ".wslab-log .wslab-log-lines pre",
    "input": ".wslab-chat-box input",
    "button": ".wslab-chat-box button",
    "label": ".wslab-moderation label",
    "browser": ".wslab-browser-chat ol",
}


def font_sizes(page: Any) -> dict[str, float]:
    """The computed text size, in pixels, of each of :data:`SIZED` (a label's own text, if wrapped)."""
    sizes = page.evaluate(
        """(selectors) => Object.fromEntries(Object.entries(selectors).map(([name, selector]) => {
             const node = document.querySelector(selector);
             return [name, getComputedStyle(node.querySelector("span") || node).fontSize];
           }))""",
        SIZED,
    )
    return {name: float(re.sub("px$", "", size)) for name, size in sizes.items()}


def test_projector_mode_scales_every_views_text_and_back(page: Any) -> None:
    normal = font_sizes(page)
    assert normal["log"] == 13.0, normal  # JupyterLab's widget size, not a fixed 12 px
    try:
        assert kernel(page, "print(projector())").strip() == "1.6"
        until(
            lambda: all(abs(size - 1.6 * normal[name]) < 0.5 for name, size in font_sizes(page).items()),
            "every view's text 1.6 times larger",
            lambda: (normal, font_sizes(page)),
        )
    finally:
        kernel(page, "projector(False)")
    until(lambda: font_sizes(page) == normal, "the text back to its size", lambda: font_sizes(page))


def test_the_instructor_kicks_and_clears_with_the_audience_views_buttons(page: Any) -> None:
    audience = page.locator(".wslab-audience").first
    audience.scroll_into_view_if_needed()
    audience.get_by_label("Person").fill("student-2")
    audience.get_by_label("Reason").fill("class is over for you")
    audience.get_by_role("button", name="Kick").click()
    why = "the instructor removed you from the room: class is over for you"
    until(lambda: kernel(page, 'print(people["student-2"].rejected)').strip() == why, "student-2 kicked")
    until(lambda: "kicked student-2" in audience.inner_text(), "the view to say what it did")

    audience.get_by_role("button", name="Clear chat").click()
    audience.get_by_role("button", name="Clear: sure?").click()
    until(
        lambda: (
            kernel(page, "print([str(e.kind) for e in class_chat.room.transcript])").strip() == "['clear']"
        ),
        "the class chat cleared",
    )
    lines = audience.locator(".wslab-audience-lines")
    until(lambda: lines.inner_text().strip() == ">>> the instructor cleared the chat", "the view cleared")

    # The in-notebook browser client, kicked from a cell: it says why and stays out.
    kernel(page, 'await chat.kick("grace", reason="the test is done with you")')
    widget = page.locator(".wslab-browser-chat").first
    until(
        lambda: widget.locator(".wslab-bc-status").get_attribute("data-state") == "closed",
        "the browser client to stop",
        widget.inner_text,
    )
    assert (
        "(error kicked: the instructor removed you from the room: the test is done with you)"
        in widget.inner_text()
    )
    until(lambda: kernel(page, "print(grace.state)").strip() == "closed", "the kernel to hear it")
