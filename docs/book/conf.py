"""Sphinx configuration of the reading copy of the course (``make book``; ``build.py`` runs it).

The lessons are rendered from their stored outputs, never executed: the log, chat, audience and
fleet views show the widget state each lesson saved when it ended. Every script and stylesheet
comes from the site itself (``_static/``), so it reads offline and behind a school's proxy:
MyST-NB's widget scripts and Mermaid would otherwise come from CDNs.
"""

from __future__ import annotations

project = "wslab"
author = "the wslab authors"
# The lessons' text is CC BY 4.0 (LICENSE-CONTENT), their code and wslab MIT (LICENSE).
copyright = "2026 the wslab authors. Text: CC BY 4.0; code: MIT"
html_title = "wslab: real-time WebSockets in Python"

extensions = ["myst_nb", "sphinxcontrib.mermaid"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Stored outputs only: the book shows what `make notebooks` saved in the complete edition
# (notebooks/complete: every answer written, every output stored), and builds in seconds.
nb_execution_mode = "off"
# A fenced ```mermaid block in a markdown cell is drawn, as JupyterLab draws it.
myst_fence_as_directive = ["mermaid"]
myst_heading_anchors = 3

# The pages' scripts, all under _static/. MyST-NB adds these to pages that hold widget state;
# its default loads RequireJS and @jupyter-widgets/html-manager from CDNs.
# vendor/: copied from docs/book/node_modules by build.py (package-lock.json pins the versions).
nb_ipywidgets_js = {
    "vendor/require.js": {},
    "vendor/html-manager/libembed-amd.js": {},
    "wslab-widgets.js": {},
}
mermaid_use_local = "vendor/mermaid/mermaid.esm.min.mjs"
mermaid_version = ""  # never the CDN
mermaid_d3_zoom = False  # d3 would come from a CDN

html_theme = "sphinx_book_theme"
html_static_path = ["static"]
html_css_files = ["wslab-book.css"]
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
}
# The stored views were drawn on JupyterLab's light theme; readers can still switch.
html_context = {"default_mode": "light"}
html_last_updated_fmt = None
