"""Real-browser test harness: a headless JupyterLab server and a Chromium driven by Playwright.

Plain functions and context managers, no pytest hooks and no fixtures, so that any test module
can build its own module-scoped fixtures from them (see ``tests/test_browser.py``)::

    with chromium() as browser, running_jupyterlab(REPO / "notebooks", tmp) as lab:
        with notebook_page(browser, lab, "01-echo-server.ipynb", request=request) as page:
            wait_kernel_idle(page)
            cleanup = code_cells(page, "01-echo-server.ipynb")[-1]
            run_command_on_cell(page, "01-echo-server.ipynb", cleanup["index"], "notebook:run-all-above")

What it follows (``browser-test-recipe.md``): JupyterLab runs in its own session with throw-away
config/data/runtime/settings/workspaces directories, the news pop-up disabled, the virtual
environment's ``bin`` first on ``PATH``; it is stopped with SIGTERM. Kernel readiness is read
from the status bar ("... | Idle"), never from the toolbar's execution indicator, which says
idle while the kernel is still initializing. Notebooks open untrusted (stored widget views show
their text/plain fallback) unless ``trust_notebook`` signs them in the server's own environment.

Environment:
    WSLAB_CHROMIUM  path of a Chromium/Chrome binary (else /usr/bin/chromium, else ``chromium``,
                    ``chromium-browser`` or ``google-chrome`` on PATH, else Playwright's own).
    CI=true         a missing browser (or Playwright) fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / ".test-artifacts"

# Every wait has a deadline (milliseconds for Playwright, seconds for the rest). Generous
# enough for a loaded 2-core CI runner; a healthy run stays far below them.
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 20.0
PAGE_LOAD_MS = 60_000
KERNEL_IDLE_MS = 60_000
RUN_CELLS_MS = 90_000
WIDGET_MS = 15_000

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
PATH_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")
WIDGET_ERROR = "Error displaying widget"

KERNEL_STATUS = '.jp-StatusBar-TextItem[title^="Change kernel"]'


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip locally; under CI (``CI=true``) a missing prerequisite is a failure, never a skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------
# JupyterLab server
# --------------------------------------------------------------------------------------


@dataclass
class JupyterLab:
    """A running JupyterLab: where it listens, its token, its root, its log file and environment.

    ``env`` is the server's own environment (its throw-away Jupyter directories): run ``jupyter``
    commands that must agree with the server, such as ``jupyter trust``, with it.
    """

    process: subprocess.Popen[bytes]
    port: int
    token: str
    root_dir: Path
    log_path: Path
    env: dict[str, str]
    prefix: str = "/"  # --ServerApp.base_url: "/user/learner/" plays a JupyterHub's single-user server

    @property
    def data_dir(self) -> Path:
        """JUPYTER_DATA_DIR of the server: its notebook signature DB and secret live here."""
        return Path(self.env["JUPYTER_DATA_DIR"])

    @property
    def base_url(self) -> str:
        """The server's root under its prefix, without a trailing slash: paths are appended."""
        return f"http://127.0.0.1:{self.port}{self.prefix.rstrip('/')}"

    def url(self, path: str, **query: str) -> str:
        """``/lab/tree/x.ipynb`` -> full URL carrying the token (plus any flag-like query keys)."""
        params = "&".join([f"token={self.token}", *(k if v == "" else f"{k}={v}" for k, v in query.items())])
        return f"{self.base_url}{path}?{params}"

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """Call the REST API; returns the decoded JSON body (None when empty)."""
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_sessions(self) -> None:
        """End every notebook session (and so its kernel): the next page gets a fresh kernel."""
        for session in self.api("GET", "/api/sessions"):
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("DELETE", f"/api/sessions/{session['id']}")
        deadline = time.monotonic() + 20
        while self.api("GET", "/api/kernels") and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart_kernel(self, notebook: str) -> None:
        """Restart the kernel of ``notebook``'s session, as *Kernel → Restart Kernel* does."""
        sessions = [s for s in self.api("GET", "/api/sessions") if s["path"] == notebook]
        assert sessions, f"no kernel session for {notebook}"
        self.api("POST", f"/api/kernels/{sessions[0]['kernel']['id']}/restart", timeout=60)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _jupyter_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    dirs = {
        "JUPYTER_CONFIG_DIR": tmp / "config",
        "JUPYTER_DATA_DIR": tmp / "data",
        "JUPYTER_RUNTIME_DIR": tmp / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": tmp / "settings",
        "JUPYTERLAB_WORKSPACES_DIR": tmp / "workspaces",
        "IPYTHONDIR": tmp / "ipython",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    # The news pop-up covers part of the page even with news_url=None.
    notification = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}\n')
    # The python3 kernel must be this interpreter (the virtual environment's), whatever PATH says.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_TOKEN", None)
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)  # kernels find their server by its jpserver file
    return env


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (kernels run in sessions of their own, not our group)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start(root_dir: Path, tmp: Path, log_path: Path, prefix: str) -> JupyterLab:
    """Start JupyterLab on a port the system chooses (0); :func:`_wait_ready` learns which."""
    token = secrets.token_hex(24)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
        f"--ServerApp.base_url={prefix}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")
    env = _jupyter_env(tmp)
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            command,
            cwd=root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGTERM reaches it and only it
        )
    finally:
        log.close()
    return JupyterLab(process, 0, token, root_dir, log_path, env, prefix)


def _reported_port(lab: JupyterLab) -> int:
    """The port in the server's ``jpserver-<pid>.json`` (its runtime directory); 0 until written."""
    info = Path(lab.env["JUPYTER_RUNTIME_DIR"]) / f"jpserver-{lab.process.pid}.json"
    try:
        return int(json.loads(info.read_text())["port"])
    except (OSError, ValueError, KeyError):  # not written yet, or half written
        return 0


def _wait_ready(lab: JupyterLab, timeout: float) -> bool:
    """True when /api/status answers with our token; False if the server exited.

    jupyter_server turns port 0 into a free port by binding and closing it, then listens
    on it a moment later: another program may take it in between, and the server exits.
    Any other answer on that port (not ours: our token is refused) does not count.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            return False
        lab.port = lab.port or _reported_port(lab)
        try:
            if lab.port:
                lab.api("GET", "/api/status", timeout=2)
                return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    tail = lab.log_text()[-3000:]
    raise TimeoutError(f"JupyterLab did not answer /api/status within {timeout:g} s:\n{tail}")


def stop_jupyterlab(lab: JupyterLab) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), wait, leave nothing behind."""
    if lab.process.poll() is None:
        descendants = _children(lab.process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(lab.process.pid, signal.SIGTERM)
        try:
            lab.process.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(lab.process.pid, signal.SIGKILL)
            lab.process.wait(timeout=SERVER_STOP_TIMEOUT)
        # Kernels live in sessions of their own; the server ends them on SIGTERM. Any that
        # outlive it (only on a crash) are ours to end, by pid.
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in descendants:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    else:
        lab.process.wait()


@contextlib.contextmanager
def running_jupyterlab(notebooks: Path, tmp: Path, *, prefix: str = "/") -> Iterator[JupyterLab]:
    """JupyterLab serving a *copy* of ``notebooks`` (lessons under test are never modified),
    at ``prefix`` (its ``--ServerApp.base_url``)."""
    root_dir = tmp / "notebooks"
    copy_notebooks(notebooks, root_dir)
    log_path = tmp / "jupyterlab.log"
    for _attempt in range(3):  # see _wait_ready: the server's port can be taken as it starts
        lab = _start(root_dir, tmp, log_path, prefix)
        try:
            if _wait_ready(lab, SERVER_START_TIMEOUT):
                break
        except BaseException:
            stop_jupyterlab(lab)
            raise
        stop_jupyterlab(lab)
    else:
        raise RuntimeError(f"JupyterLab did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
    try:
        yield lab
    finally:
        stop_jupyterlab(lab)


def copy_notebooks(notebooks: Path, root_dir: Path) -> None:
    """(Re)copy the lesson notebooks: each test starts from the committed files."""
    root_dir.mkdir(parents=True, exist_ok=True)
    for source in notebooks.iterdir():
        if source.name.startswith("."):
            continue  # .ipynb_checkpoints and the like
        target = root_dir / source.name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


def trust_notebook(lab: JupyterLab, notebook: str) -> None:
    """Sign ``root_dir/notebook`` as its user would, with ``jupyter trust`` in the server's environment.

    The signature goes into the server's own signature DB (under its JUPYTER_DATA_DIR), so
    JupyterLab opens the notebook trusted: it renders stored outputs such as widget views
    instead of their text/plain fallback.
    """
    path = lab.root_dir / notebook
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "trust", str(path)],
        env=lab.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"jupyter trust {path} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def untrust_notebook(lab: JupyterLab, notebook: str) -> None:
    """Remove the signature of ``root_dir/notebook`` from the server's signature DB.

    Signatures are digests of the content, not of the path: a copy of a signed notebook is
    trusted too. Untrusting after a test keeps the next one's fresh copy untrusted.
    """
    import nbformat
    from nbformat.sign import NotebookNotary

    nb = nbformat.read(lab.root_dir / notebook, as_version=nbformat.NO_CONVERT)
    with NotebookNotary(data_dir=str(lab.data_dir)) as notary:
        notary.unsign(nb)


# --------------------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------------------


def find_chromium(playwright: Any) -> str | None:
    """$WSLAB_CHROMIUM, else Debian's /usr/bin/chromium, else ``chromium``, ``chromium-browser``
    or ``google-chrome`` on PATH (as the Makefile accepts), else Playwright's own download."""
    explicit = os.environ.get("WSLAB_CHROMIUM")
    if explicit:
        if not os.access(explicit, os.X_OK):
            pytest.fail(f"WSLAB_CHROMIUM={explicit!r} is not an executable file", pytrace=False)
        return explicit
    if os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    for name in PATH_CHROMIUMS:
        found = shutil.which(name)
        if found:
            return found
    with contextlib.suppress(Exception):
        bundled = playwright.chromium.executable_path
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright sync API); skips/fails if there is none."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        executable = find_chromium(playwright)
        if executable is None:
            skip_or_fail(
                "no Chromium found: set WSLAB_CHROMIUM, or install Debian's chromium "
                f"({DEFAULT_CHROMIUM}), or put {' / '.join(PATH_CHROMIUMS)} on PATH, "
                "or run `playwright install chromium`"
            )
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------

# Installed before JupyterLab's own scripts. It remembers whether "Error displaying widget" was
# ever added to the page, even if it is replaced again before a test looks; and it finds the
# panel of an open notebook through the app that --LabApp.expose_app_in_browser=True exposes.
_INIT_SCRIPT = """
(() => {
  window.__widgetErrors = [];
  const needle = __NEEDLE__;
  new MutationObserver((records) => {
    for (const record of records) {
      const nodes = record.type === "characterData" ? [record.target] : record.addedNodes;
      for (const node of nodes) {
        const text = node.textContent || "";
        if (text.includes(needle)) window.__widgetErrors.push(text.trim().slice(0, 300));
      }
    }
  }).observe(document, {childList: true, subtree: true, characterData: true});

  window.__panelFor = (path) => {
    const app = window.jupyterapp;
    const panel = Array.from(app.shell.widgets("main")).find((w) => w.context && w.context.path === path);
    if (!panel) throw new Error("no open notebook panel for " + path);
    return panel;
  };
  window.__codeCells = (path) =>
    window.__panelFor(path).content.widgets
      .map((cell, index) => ({cell, index}))
      .filter(({cell}) => cell.model.type === "code");
})();
""".replace("__NEEDLE__", json.dumps(WIDGET_ERROR))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "test"


def save_artifacts(page: Any, lab: JupyterLab | None, name: str) -> Path:
    """Screenshot, page text and the server log into .test-artifacts/ (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = ARTIFACTS / _slug(name)
    with contextlib.suppress(Exception):
        page.screenshot(path=f"{stem}.png", full_page=True, timeout=10_000)
    with contextlib.suppress(Exception):
        Path(f"{stem}.txt").write_text(page.evaluate("() => document.body.innerText"))
    if lab is not None:
        with contextlib.suppress(Exception):
            Path(f"{stem}.jupyterlab.log").write_text(lab.log_text())
    return stem


@contextlib.contextmanager
def notebook_page(browser: Any, lab: JupyterLab, notebook: str, *, request: Any) -> Iterator[Any]:
    """A fresh browser context with ``notebook`` open (cells attached), closed afterwards.

    On a failure of the test that uses it (setup or call), saves artifacts first. Afterwards
    it ends every kernel session, so the next test starts from a fresh kernel.
    """
    failed_before = request.session.testsfailed
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.add_init_script(_INIT_SCRIPT)
    try:
        try:
            page.goto(lab.url(f"/lab/tree/{notebook}", reset=""), timeout=PAGE_LOAD_MS)
            page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=PAGE_LOAD_MS)
        except BaseException:
            save_artifacts(page, lab, f"{request.node.name}-setup")
            raise
        try:
            yield page
        except BaseException:  # a fixture's own setup failed inside the block (Run All, say)
            save_artifacts(page, lab, f"{request.node.name}-setup")
            raise
        if request.session.testsfailed > failed_before:
            save_artifacts(page, lab, request.node.name)
    finally:
        context.close()
        lab.shutdown_sessions()


def widget_errors(page: Any) -> list[str]:
    """Every "Error displaying widget" the page ever showed, plus any showing now."""
    seen = page.evaluate("() => window.__widgetErrors || []")
    now = page.evaluate(f"() => document.body.textContent.includes({json.dumps(WIDGET_ERROR)})")
    return [*seen, *(["(on the page now)"] if now else [])]


def wait_kernel_idle(page: Any, timeout: float = KERNEL_IDLE_MS) -> None:
    """Wait for the status bar's kernel item to read "<kernel name> | Idle"."""
    page.wait_for_function(
        """(selector) => {
             const item = document.querySelector(selector);
             return item !== null && /\\|\\s*Idle\\s*$/.test(item.textContent);
           }""",
        arg=KERNEL_STATUS,
        timeout=timeout,
    )


def kernel_status(page: Any) -> str:
    script = "(s) => document.querySelector(s)?.textContent ?? '(no kernel status item)'"
    return page.evaluate(script, KERNEL_STATUS)


def code_cells(page: Any, notebook: str) -> list[dict[str, Any]]:
    """``[{index, tags, prompt}]`` for every code cell of the open ``notebook``, in order."""
    return page.evaluate(
        """(path) => window.__codeCells(path).map(({cell, index}) => ({
             index,
             tags: cell.model.getMetadata("tags") || [],
             prompt: cell.node.querySelector(".jp-InputPrompt")?.textContent.trim() ?? "",
           }))""",
        notebook,
    )


def run_command_on_cell(
    page: Any, notebook: str, cell_index: int, command: str, timeout: float = RUN_CELLS_MS
) -> Any:
    """Select cell ``cell_index``, execute the JupyterLab ``command``, wait for its promise.

    ``notebook:run-all-above`` and ``notebook:run-cell`` resolve once the kernel has executed
    the cells, to ``false`` if one of them raised. The promise is not awaited inside
    ``evaluate`` (the recipe's advice): its outcome is parked on ``window`` and polled.
    """
    page.evaluate(
        """([path, index, command]) => {
             const app = window.jupyterapp;
             const panel = window.__panelFor(path);
             app.shell.activateById(panel.id);
             panel.content.mode = "command";
             panel.content.activeCellIndex = index;
             panel.content.deselectAll();
             window.__commandDone = undefined;
             app.commands.execute(command).then(
               (result) => { window.__commandDone = {result: result ?? null}; },
               (error) => { window.__commandDone = {error: String(error)}; },
             );
           }""",
        [notebook, cell_index, command],
    )
    page.wait_for_function("() => window.__commandDone !== undefined", timeout=timeout)
    outcome = page.evaluate("() => window.__commandDone")
    if "error" in outcome:
        raise AssertionError(f"{command} failed in the page: {outcome['error']}")
    return outcome["result"]


def wait_cells_finished(page: Any, notebook: str, timeout: float = RUN_CELLS_MS) -> None:
    """No code cell shows ``[*]`` any more and the kernel is idle again."""
    page.wait_for_function(
        """(path) => window.__codeCells(path).every(
             ({cell}) => !(cell.node.querySelector(".jp-InputPrompt")?.textContent ?? "").includes("*"))""",
        arg=notebook,
        timeout=timeout,
    )
    wait_kernel_idle(page, timeout)


def error_outputs(page: Any, notebook: str) -> list[str]:
    """``[n]: ename: evalue`` for every error output in the open ``notebook``."""
    return page.evaluate(
        """(path) => window.__codeCells(path).flatMap(({cell, index}) =>
             cell.model.outputs.toJSON()
               .filter((output) => output.output_type === "error")
               .map((output) => `cell ${index}: ${output.ename}: ${output.evalue}`))""",
        notebook,
    )


def run_in_kernel(page: Any, notebook: str, code: str) -> str:
    """Run ``code`` in the kernel of the open ``notebook``, through JupyterLab's own session, as a
    cell typed by the learner would (top-level await works); its stdout. Raises on an error."""
    result = page.evaluate(
        """async ([path, code]) => {
             const kernel = window.__panelFor(path).sessionContext.session.kernel;
             const future = kernel.requestExecute({code, store_history: false});
             let out = "", error = null;
             future.onIOPub = (msg) => {
               if (msg.header.msg_type === "stream") out += msg.content.text;
               if (msg.header.msg_type === "error") error = `${msg.content.ename}: ${msg.content.evalue}`;
             };
             await future.done;
             return {out, error};
           }""",
        [notebook, code],
    )
    assert result["error"] is None, f"{code!r} raised {result['error']}\n{result['out']}"
    return result["out"]
