"""Lesson 04 where learners really are: JupyterLab under a hub-like base URL, through its proxy.

JupyterLab runs with ``--ServerApp.base_url=/user/learner/`` (a JupyterHub single-user server's
shape) and jupyter-server-proxy; the lesson runs in it, in Chromium. No hub variable is set: the
kernel finds its Jupyter server by its ``jpserver-<pid>.json`` (``JPY_PARENT_PID``), so this
also checks that discovery live. The same test runs at base URL ``/`` (a learner's own
machine), where nothing may change: the page at ``http://127.0.0.1:PORT/``, and the
in-notebook client connecting straight to it, let in by ``notebook_origins()``.

Checked in a real browser, for both:

* the URL the lesson shows (the access log's link) is ``/user/learner/proxy/PORT/`` (or the
  app itself at ``/``); Chromium opens the chat page there, joins, exchanges messages with the
  lesson's Python clients, is cut by the server (4001) and resumes, missing nothing;
* the in-notebook browser client (``BrowserChat``) does the same inside JupyterLab;
* ``wslab.where()`` in that kernel reports the place and that a request through the proxy
  came back.

The test reaches into the lesson's kernel (to send as ada, to cut a connection) with
``requestExecute`` through JupyterLab's own session, as a learner typing a cell would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jupyterlab_harness import (
    REPO,
    JupyterLab,
    error_outputs,
    notebook_page,
    run_command_on_cell,
    run_in_kernel,
    running_jupyterlab,
    save_artifacts,
    wait_cells_finished,
    wait_kernel_idle,
    widget_errors,
)

NOTEBOOKS = REPO / "notebooks"
LESSON = "complete/04-http-and-websockets.ipynb"
WAIT = 20.0  # seconds, for any one condition; a healthy run needs a fraction
STATES = """(() => {
  window.__states = [];
  new MutationObserver(() => {
    const state = document.querySelector("#status")?.dataset.state;
    if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-state"]});
})();"""
WIDGET = ".wslab-browser-chat"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


def until(check: Callable[[], Any], what: str, describe: Callable[[], Any] = lambda: "") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {WAIT:g} s for {what}: {describe() or result!r}")
        time.sleep(0.05)


def kernel(page: Any, code: str) -> str:
    """Run ``code`` in the lesson's kernel (top-level await works); return its stdout, raise on error."""
    return run_in_kernel(page, LESSON, code)


def heard(page: Any, line: str) -> None:
    """Wait until the lesson's Python client linus has received ``line``."""
    kernel(page, f"await wslab.wait_until(lambda: {line!r} in linus.lines(), timeout={WAIT})")


@pytest.fixture(scope="module", params=["/user/learner/", "/"], ids=["hub-prefix", "local"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with running_jupyterlab(NOTEBOOKS, tmp_path_factory.mktemp("jupyterlab"), prefix=request.param) as lab:
        yield lab


@pytest.fixture
def lesson(browser: Any, lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Lesson 04 open in JupyterLab after Run All: its servers are still up."""
    with notebook_page(browser, lab, LESSON, request=request) as page:
        console: list[str] = []
        page.on(
            "console",
            lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        request.node.console = console
        wait_kernel_idle(page)
        try:
            succeeded = run_command_on_cell(page, LESSON, 0, "notebook:run-all-cells")
            wait_cells_finished(page, LESSON)
        except BaseException:
            save_artifacts(page, lab, f"{request.node.name}-run-all")
            raise
        assert error_outputs(page, LESSON) == []
        assert succeeded is True, "notebook:run-all-cells reported a failure"
        yield page
        assert widget_errors(page) == []


def lines(page: Any, selector: str) -> list[tuple[int, str]]:
    """``(data-seq, text)`` of every message line under ``selector``."""
    return [
        (int(seq), text)
        for seq, text in page.evaluate(
            """(selector) => [...document.querySelectorAll(selector + " li.msg")].map(
                 (li) => [li.dataset.seq, (li.querySelector(".text") || li).textContent])""",
            selector,
        )
    ]


def assert_each_once_in_order(shown: list[tuple[int, str]], texts: list[str], who: str) -> None:
    seqs = [seq for seq, _ in shown]
    assert seqs == sorted(set(seqs)), f"{who}: data-seq not strictly increasing: {seqs}"
    words = [text for _, text in shown]
    for text in texts:
        assert words.count(text) == 1, f"{who} shows {text!r} {words.count(text)} times: {words}"


def test_lesson_04_through_the_jupyter_server(lesson: Any, lab: JupyterLab, request: Any) -> None:
    page = lesson
    port = int(kernel(page, "print(server.port)"))
    proxied = lab.prefix != "/"
    expected = f"{lab.prefix}proxy/{port}/" if proxied else f"http://127.0.0.1:{port}/"
    # jupyter-server-proxy (4.x) closes the browser's socket without the server's code and
    # reason (``self.close()`` when the backend closes): the browser sees 1005, no status.
    closed = "1005" if proxied else "4001 cut by the test"

    # The lesson shows the browser's address: the access log's link, and the mini page's line.
    link = page.locator(f'.wslab-log a[href="{expected}"]')
    until(lambda: link.count() == 1, f"the access log to link {expected}")
    mini = int(kernel(page, "print(mini.port)"))
    shown = f"open in your browser: {lab.prefix}proxy/{mini}/page" if proxied else f":{mini}/page"
    assert shown in page.evaluate("() => document.body.textContent")
    report = kernel(page, "print(await wslab.where())")
    assert report.startswith(f"where: {'prefixed' if proxied else 'local'} ("), report
    assert f"(base URL {lab.prefix})" in report, report
    assert "jupyter-server-proxy: works" in report, report

    # Chromium opens the chat page there, in the learner's own browser (the login cookie).
    chat = page.context.new_page()
    errors: list[str] = []
    chat.on("pageerror", lambda error: errors.append(str(error)))
    chat.add_init_script(STATES)
    try:
        response = chat.goto(f"http://127.0.0.1:{lab.port}{expected}" if proxied else expected)
        assert response is not None and response.ok, response
        assert "default-src 'self'" in (response.header_value("content-security-policy") or "")
        chat.fill("#name", "ana")
        chat.click("#join")
        hook = lambda method: chat.evaluate(f"() => window.wslabChat.{method}()")  # noqa: E731
        until(lambda: hook("state") == "live", "ana's page to be live", lambda: hook("notices"))

        kernel(page, 'await ada.send("hello ana, from python")')
        chat.fill("#message", "hi ada, from the page")
        chat.click("#send")
        kernel(
            page, 'await wslab.wait_until(lambda: "[ana] hi ada, from the page" in linus.lines(), timeout=20)'
        )
        until(lambda: "[ada] hello ana, from python" in hook("lines"), "ana to see ada")

        # The server cuts ana (4001: reconnect and resume); the room talks on meanwhile.
        kernel(
            page,
            'await chat.disconnect("ana", reason="cut by the test")\n'
            'for i in range(3):\n    await ada.send(f"while ana is away {i}")',
        )
        missed = [f"[ada] while ana is away {i}" for i in range(3)]
        until(lambda: all(m in hook("lines") for m in missed) and hook("state") == "live", "ana to resume")
        assert chat.evaluate("() => window.__states") == ["connecting", "live", "reconnecting", "live"]
        assert hook("missing") == []
        notices = hook("notices")
        assert any(n.startswith(f"connection closed ({closed}") for n in notices), notices
        assert_each_once_in_order(lines(chat, "#messages"), [*missed, "[ada] hello ana, from python"], "ana")
        assert errors == []
    except BaseException:
        save_artifacts(chat, lab, f"{request.node.name}-chat-page")
        raise
    finally:
        chat.close()

    # The in-notebook browser client: its socket is the browser's, through the same address.
    widget = page.locator(WIDGET)
    until(lambda: widget.count() == 1, "the in-notebook client's view", lambda: request.node.console)
    widget.scroll_into_view_if_needed(timeout=WAIT * 1000)
    state = lambda: widget.locator(".wslab-bc-status").get_attribute("data-state")  # noqa: E731
    until(lambda: state() == "live", "the in-notebook client to be live", lambda: request.node.console)
    ws = f"ws://127.0.0.1:{lab.port}{expected}ws" if proxied else f"ws://127.0.0.1:{port}/ws"
    assert widget.locator(".wslab-bc-where").text_content().endswith(f"→ {ws}")

    # What the browser reports reaches the kernel between cells (comm messages queue behind execution).
    def reported() -> list[str]:
        return kernel(page, "print(grace.state, 'grace' in chat.room.users, grace.last_seq)").split()[:2]

    until(
        lambda: reported() == ["live", "True"],
        "the kernel to hear that grace is live",
        lambda: kernel(page, "print(grace.state, grace.last_seq, grace.get_state())"),
    )

    kernel(page, 'await ada.send("<b>hello grace</b>")')
    widget.locator("input").fill("hi from the notebook's browser")
    widget.locator("input").press("Enter")
    heard(page, "[grace] hi from the notebook's browser")
    until(lambda: "[ada] <b>hello grace</b>" in [t for _, t in lines(page, WIDGET)], "grace to see ada")
    assert widget.locator("ol b").count() == 0, "a message was rendered as HTML"

    kernel(
        page,
        'await chat.disconnect("grace", reason="cut by the test")\n'
        'for i in range(3):\n    await ada.send(f"while grace is away {i}")',
    )
    missed = [f"[ada] while grace is away {i}" for i in range(3)]
    until(
        lambda: all(m in [t for _, t in lines(page, WIDGET)] for m in missed) and state() == "live",
        "the in-notebook client to resume",
        lambda: widget.inner_text(),
    )
    assert_each_once_in_order(lines(page, WIDGET), [*missed, "[ada] <b>hello grace</b>"], "grace")
    assert f"(connection closed: {closed}" in widget.inner_text()

    def seqs() -> list[int]:
        return json.loads(kernel(page, "print(json.dumps([grace.last_seq, chat.room.transcript[-1].seq]))"))

    until(lambda: len(set(seqs())) == 1, "the browser to report the room's last seq", seqs)

    # Kicked: the browser client stops, told why by the error before the close (behind the proxy,
    # the close arrives as 1005, without the 4003 that says it too).
    kernel(page, 'await chat.kick("grace", reason="end of the demo")')
    until(lambda: state() == "closed", "the in-notebook client to stop after its kick", widget.inner_text)
    assert "(error kicked: the instructor removed you from the room: end of the demo)" in widget.inner_text()
    kicked = "1005" if proxied else "4003 kicked: end of the demo"
    assert f"(connection closed: {kicked}" in widget.inner_text()
