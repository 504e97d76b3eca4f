"""Report-section helpers shared by the studies."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from privaudit.runtime.run import Layout, Run


def study_section(run: Run, name: str, document: str, plots: Iterable[str], heading: str,
                  tables: Callable[[dict[str, Any]], str],
                  note: Callable[[dict[str, Any], str], str], intro: str = "") -> tuple[str, str] | None:
    """``(heading, html)`` of study ``name``: a plain-language ``intro``, ``tables(doc)``, the
    ``plots`` that exist, then ``note(doc, rel)``, where ``doc`` is the study's JSON ``document``
    at the run path ``rel``; None when the run holds no ``document``."""
    from markupsafe import Markup

    from privaudit.report import html as rh    # only when a report is built

    rel = Layout.study(name, document)
    if not run.has(rel):
        return None
    doc = run.load_json(rel)
    images = [rh.image(run.read_bytes(Layout.study(name, p)), p.removesuffix(".png").replace("_", " "),
                       data_figure=f"{name}-{p.removesuffix('.png')}")
              for p in plots if run.has(Layout.study(name, p))]
    body = rh.join(rh.intro(intro) if intro else None, Markup(tables(doc)), *images, rh.note(note(doc, rel)))
    return heading, str(body)
