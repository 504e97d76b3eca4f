"""The console table of attack metrics (rendered by :mod:`privaudit.report.format`)."""

from __future__ import annotations

from rich.table import Table

from privaudit.evaluation.results import MetricsDocument
from privaudit.report import format as fmt


def metrics_table(doc: MetricsDocument, title: str | None = None) -> Table:
    """One row per attack: AUC, balanced accuracy, TPR at each FPR (in %); names never truncated."""
    table = Table(title=title or fmt.title(doc), caption=fmt.caption(doc))
    table.add_column("attack", no_wrap=True, min_width=max(len(k) for k in doc.attacks))
    for _, heading in fmt.columns(doc):
        table.add_column(heading, overflow="fold")   # a narrow console wraps numbers, never cuts them
    for name, attack in doc.attacks.items():
        table.add_row(name, *fmt.row(doc, attack))
    return table
