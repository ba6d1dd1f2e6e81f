"""axe-core in the browser tests: run it on a page (or part of one), count what it finds by impact.

axe-core is an npm package (``tests/a11y/package.json``, locked in ``package-lock.json``); ``make
test`` installs it with ``npm ci`` as it does the book's. It is evaluated into the page through
Playwright, which is not subject to the page's Content-Security-Policy (an inline ``<script>``
would be), so the chat page keeps its real policy while it is checked.

A page passes when axe reports no *serious* or *critical* violation. Moderate and minor ones are
reported (``AxeReport.describe``) but do not fail a test. Works with Playwright's sync API (the
JupyterLab tests) and its async API (the app's pages), through :func:`check_sync` and
:func:`check_async`; without the npm package the tests skip (fail under ``CI=true``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyterlab_harness import skip_or_fail

AXE = Path(__file__).resolve().parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
#: The impacts that fail a test.
BLOCKING = ("serious", "critical")
IMPACTS = ("critical", "serious", "moderate", "minor")

#: Runs axe on ``include`` (a list of CSS selectors) or the whole document: what failed, and how
#: many elements' text contrast it measured (none means it saw no text: off screen, not rendered).
RUN_JS = """async ([include, exclude]) => {
  const context = include ? {include: include.map((s) => [s]), exclude: exclude.map((s) => [s])} : document;
  const result = await axe.run(context);
  const contrast = [...result.passes, ...result.violations].filter((r) => r.id === "color-contrast");
  return {
    measured: contrast.reduce((sum, r) => sum + r.nodes.length, 0),
    violations: result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => ({target: n.target.join(" "), summary: n.failureSummary})),
    })),
  };
}"""


def axe_source() -> str:
    if not AXE.is_file():
        skip_or_fail("axe-core is not installed: `make test` runs npm ci in tests/a11y")
    return AXE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class AxeReport:
    """What axe found on one page (or part of one): its violations, as axe describes them."""

    where: str
    violations: list[dict[str, Any]]
    #: Elements whose text contrast axe measured: 0 means it saw no text (off screen, say).
    measured: int = 0

    def counts(self) -> dict[str, int]:
        """Violating nodes by impact, every impact listed: ``{"critical": 0, "serious": 2, ...}``."""
        found = Counter[str]()
        for violation in self.violations:
            found[violation["impact"] or "minor"] += len(violation["nodes"])
        return {impact: found[impact] for impact in IMPACTS}

    def blocking(self) -> list[dict[str, Any]]:
        return [v for v in self.violations if v["impact"] in BLOCKING]

    def describe(self) -> str:
        lines = [f"axe on {self.where}: {self.counts()}, contrast measured on {self.measured} elements"]
        for v in self.violations:
            lines.append(f"  {v['impact']}: {v['id']} ({v['help']}), {len(v['nodes'])} node(s)")
            lines += [f"    {node['target']}: {node['summary']}" for node in v["nodes"][:5]]
        return "\n".join(lines)

    def assert_clean(self) -> None:
        """No serious or critical violation, and some text was measured (a check that saw nothing
        passes nothing); the message lists everything axe found."""
        assert self.measured > 0, f"axe measured no text contrast on {self.where}: is it on screen?"
        assert not self.blocking(), self.describe()


def _args(include: list[str] | None, exclude: list[str] | None) -> list[Any]:
    return [include, exclude or []]


def check_sync(
    page: Any, where: str, *, include: list[str] | None = None, exclude: list[str] | None = None
) -> AxeReport:
    """axe on a Playwright (sync API) page; ``include``: CSS selectors to check instead of the page."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    return AxeReport(where, **page.evaluate(RUN_JS, _args(include, exclude)))


async def check_async(
    page: Any, where: str, *, include: list[str] | None = None, exclude: list[str] | None = None
) -> AxeReport:
    """axe on a Playwright (async API) page; ``include``: CSS selectors to check instead of the page."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    return AxeReport(where, **await page.evaluate(RUN_JS, _args(include, exclude)))
