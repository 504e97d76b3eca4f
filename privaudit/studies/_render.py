"""Report-section helpers shared by the studies."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from privaudit.runtime.run import Layout, Run


def study_section(run: Run, name: str, document: str, plots: Iterable[str], heading: str,
                  tables: Callable[[dict[str, Any]], str],
                  note: Callable[[dict[str, Any], str], str]) -> tuple[str, str] | None:
    """``(heading, html)`` of study ``name``: ``tables(doc)``, the ``plots`` that exist, then
    ``note(doc, rel)``, where ``doc`` is the study's JSON ``document`` at the run path ``rel``;
    None when the run holds no ``document``."""
    from privaudit.report.html import _img    # matplotlib: only when a report is built

    rel = Layout.study(name, document)
    if not run.has(rel):
        return None
    doc = run.load_json(rel)
    images = "".join(_img(run.path(Layout.study(name, p))) for p in plots if run.has(Layout.study(name, p)))
    return heading, tables(doc) + images + f"<p class=note>{note(doc, rel)}</p>"
