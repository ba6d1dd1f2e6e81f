"""The committed lessons show the state they ended in, not the state their views started in.

A notebook opened without running it (GitHub, nbviewer, an instructor previewing, JupyterLab
with the notebook trusted) renders its live views from the widget state saved in the notebook's
metadata by ``make notebooks``. Most tests here read that saved state from the committed
``notebooks/complete/*.ipynb`` files, as committed (they run no kernel): after a change to the views,
they pass again once the lessons are re-executed with ``make notebooks``. The last one
executes a small notebook the way ``make notebooks`` does, to test wslab's part on its own.

Every lesson produces traffic for each view it shows. So a saved message log must hold events,
a chat panel messages, a server panel what it published, an audience view its room's
messages: an empty view is a snapshot taken before the lesson used it. A lesson no longer
stops what it started when Run All reaches its end (the learner keeps trying things, then
restarts the kernel), so a client still live, or a connection still open, is what its end
looks like. The saved state is what strangers see, so it must hold no machine paths or tokens
either.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import WIDGET_STATE, plain

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks" / "complete"
LESSONS = sorted(NOTEBOOKS.glob("*.ipynb"))
PRIVATE = re.compile(r"/(?:root|home|work|tmp|Users)/|token=")

# What each view (wslab/widgets.py) renders when it has nothing to show.
EMPTY_LOG = "(no events yet)"
EMPTY_PANEL = "(nothing yet)"
EMPTY_AUDIENCE = "(no messages yet)"
EMPTY_FLEET = "(no snapshot yet)"


@dataclass
class SavedView:
    """One wslab view in a notebook's saved widget state: its kind and the text it shows."""

    kind: str
    texts: list[str]

    @property
    def text(self) -> str:
        return " | ".join(self.texts)


def saved_state(notebook: Path) -> dict[str, Any]:
    metadata = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]
    return metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def saved_views(state: dict[str, Any]) -> list[SavedView]:
    """The wslab views in ``state``, found by the CSS class each one adds to itself."""

    def html_texts(model_id: str) -> list[str]:
        model = state[model_id]["state"]
        if "value" in model:
            return [plain(model["value"])]
        children = [child.removeprefix("IPY_MODEL_") for child in model.get("children", [])]
        return [text for child in children if child in state for text in html_texts(child)]

    kinds = {
        "wslab-log": "message log",
        "wslab-chat-panel": "chat panel",
        "wslab-server-panel": "server panel",
        "wslab-audience": "audience view",
        "wslab-fleet": "fleet view",
    }
    views = []
    for model_id, model in state.items():
        for css_class in model["state"].get("_dom_classes", []):
            if css_class in kinds:
                views.append(SavedView(kinds[css_class], html_texts(model_id)))
    return views


#: What each view shows when the lesson never used it: a pattern, and what to call that.
EMPTY = {
    "message log": (rf"{re.escape(EMPTY_LOG)}|\b0 events\b", "an empty log"),
    "chat panel": (rf"{re.escape(EMPTY_PANEL)}|\b0 events\b", "an empty chat panel"),
    "server panel": (r"published 0\b", "a server that published nothing"),
    "fleet view": (rf"{re.escape(EMPTY_FLEET)}|\b0 changes seen\b", "an empty fleet view"),
    "audience view": (rf"{re.escape(EMPTY_AUDIENCE)}|nobody yet", "an empty audience view"),
}


def problems(view: SavedView) -> list[str]:
    """What is wrong with one saved view at the end of a lesson: it shows no traffic."""
    pattern, label = EMPTY[view.kind]
    return [label] if re.search(pattern, view.text) else []


@pytest.mark.parametrize("notebook", LESSONS, ids=[lesson.stem for lesson in LESSONS])
def test_saved_views_show_the_end_of_the_lesson(notebook: Path) -> None:
    state = saved_state(notebook)
    views = saved_views(state)
    assert views, f"{notebook.name} saves no wslab view (was it executed with `make notebooks`?)"
    wrong = [
        f"{view.kind}: {', '.join(found)}: {view.text[:200]!r}" for view in views if (found := problems(view))
    ]
    assert not wrong, f"{notebook.name} saved views that are not the lesson's end state:\n" + "\n".join(wrong)


@pytest.mark.parametrize("notebook", LESSONS, ids=[lesson.stem for lesson in LESSONS])
def test_saved_state_holds_no_machine_paths_or_tokens(notebook: Path) -> None:
    text = json.dumps(saved_state(notebook))
    leaks = sorted({match.group(0) for match in PRIVATE.finditer(text)})
    assert not leaks, f"{notebook.name}'s saved widget state contains {leaks}"


def test_the_checks_can_fail() -> None:
    """Each rule above recognises the views it is about (the CSS classes are wslab's own)."""
    empty_log = SavedView("message log", ["echo server · ws://x/ · 1 connected · 0 events", EMPTY_LOG])
    empty_panel = SavedView("chat panel", ["ada · live · seq 0 · 0 events · missing 0", EMPTY_PANEL])
    crowd = SavedView("audience view", ["Join the chat", "0 connected: nobody yet", EMPTY_AUDIENCE])
    assert problems(empty_log) == ["an empty log"]
    assert problems(empty_panel) == ["an empty chat panel"]
    assert problems(crowd) == ["an empty audience view"]
    # The end of a lesson that keeps running: traffic shown, clients still live and connected.
    live_panel = SavedView("chat panel", ["ada · live · seq 6 · 3 events · missing 0", "[bob] hi"])
    ended = SavedView("message log", ["echo server · 1 connected · 42 events", "+ 127.0.0.1:5 connected"])
    assert problems(live_panel) == [] and problems(ended) == []


def test_a_view_saves_what_it_showed_when_the_notebook_ended(tmp_path: Path) -> None:
    """Traffic handled by a server's tasks, started in an earlier cell, still reaches the saved state.

    nbclient saves only widget updates parented to the cell it is running; the server's
    handlers carry the first cell's context. Without wslab's after-cell sync the saved log
    stays "(no events yet)". The sync must not print anything into the cells' outputs.
    """
    cells = [
        "import wslab\nfrom wslab.servers import echo\nfrom wslab.widgets import MessageLog\n"
        "log = wslab.EventLog()\nserver = await wslab.serve(echo, name='echo', log=log)\n"
        "view = MessageLog(log, title='echo server')\nview.show_url(server.url)\nview",
        "from websockets.asyncio.client import connect\n"
        "async with connect(server.url) as ws:\n    await ws.send('hello')\n    reply = await ws.recv()",
        "stopped = await wslab.stop_all()",
    ]
    # Imported here: nbformat's schema validation costs every xdist worker seconds at collection.
    import nbclient
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    assert [cell.outputs for cell in notebook.cells[1:]] == [[], []]
    views = saved_views(notebook.metadata["widgets"][WIDGET_STATE]["state"])
    assert [view.kind for view in views] == ["message log"]
    assert problems(views[0]) == [], views[0].text
    assert "4 events" in views[0].text and "'Echo: hello'" in views[0].text, views[0].text
