"""One rendering of a metrics document, shared by the console table and the HTML report (so the
two cannot disagree): column headings, cells with their intervals and markers, and the footnote;
and the plain number / interval / table helpers the studies render their tables with."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from privaudit.evaluation.results import AttackMetrics, Estimate, MetricsDocument, Spread, Utility

TIES = "(ties)"
TIES_NOTE = ("ties: the threshold falls inside a block of tied scores; the attack cannot separate these samples "
             "at this FPR")


def needs_text(n: int) -> str:
    return f"needs ≥ {n} non-members"


def estimate_text(e: Estimate, percent: bool, spread: bool = True) -> str:
    """``mean ± std [lo, hi]``; ``needs ≥ N non-members`` for an FPR the non-members cannot
    resolve; `` (ties)`` after a TPR whose threshold falls inside a block of tied scores."""
    if e.unresolved:
        return needs_text(e.needs_nonmembers)
    f, fmt = (100.0, "{:.2f}") if percent else (1.0, "{:.3f}")
    text = fmt.format(e.mean * f)
    if spread:
        text += " ± " + fmt.format(e.std * f)
    if e.lo is not None:
        text += f" [{fmt.format(e.lo * f)}, {fmt.format(e.hi * f)}]"
    if e.tied:
        text += f" {TIES}"
    return text


def columns(doc: MetricsDocument) -> list[tuple[str, str]]:
    """``(metric key, heading)`` for every column after the attack's name."""
    first = next(iter(doc.attacks.values()))
    return [("auc", "AUC"), ("balanced_accuracy", "bal. acc")] + \
        [(k, f"TPR % @ FPR {float(k[4:]) * 100:g}%") for k in first.tpr_keys()]


def row(doc: MetricsDocument, attack: AttackMetrics) -> list[str]:
    cells = []
    for key, _ in columns(doc):
        if key not in attack.summary:
            cells.append("-")
            continue
        cells.append(estimate_text(attack.summary[key], key.startswith("tpr@"), doc.many_targets))
    return cells


def caption(doc: MetricsDocument) -> str:
    n_neg = min(a.n_nonmembers for a in doc.attacks.values())
    spread = "mean ± std over targets" if doc.many_targets else "value"
    text = f"{spread} [95% interval: spread over targets + shared-sample bootstrap]; TPR is {doc.tpr_convention}; {n_neg} non-members" + \
        (" per target" if doc.many_targets else "")
    estimates = [e for a in doc.attacks.values() for e in a.summary.values()]
    if any(e.unresolved for e in estimates):
        text += "; needs ≥ N non-members: FPR below 1/(non-members per target), no TPR reported"
    if any(e.tied for e in estimates):
        text += f"; {TIES_NOTE}"
    return text


def title(doc: MetricsDocument) -> str:
    return f"{doc.run}: {len(doc.targets)} targets, {doc.n_models} models, epoch {doc.epoch}"


# -- utility: what the audited models are worth ------------------------------------------------------

def spread_text(s: Spread, many: bool) -> str:
    """``mean% [min, max]`` over models (just the value for one model), in percent."""
    text = f"{100 * s.mean:.1f}%"
    return text + f" [{100 * s.min:.1f}, {100 * s.max:.1f}]" if many else text


def target_accuracy_text(u: Utility, n_members: int, n_non_members: int) -> str:
    """One line: the user's target model's accuracy on its members and non-members."""
    return (f"accuracy {100 * u.train.mean:.1f}% on its {n_members} members (train), {100 * u.test.mean:.1f}% on "
            f"its {n_non_members} non-members (test); gap {100 * u.gap.mean:.1f} points")


def utility_rows(population: MetricsDocument, target: MetricsDocument | None = None) -> dict[str, Utility]:
    """The utility rows of a run: its population's and, when audited, the user's target's."""
    rows = {}
    if population.utility is not None:
        rows[f"population ({population.utility.n_models} models)"] = population.utility
    if target is not None and target.utility is not None:
        rows["your target model"] = target.utility
    return rows


def utility_table(rows: dict[str, Utility], epoch: int) -> TextTable:
    """One row per set of audited models (the population, the user's target): train (members) and
    test (non-members) accuracy and their gap; over a population mean [min, max] over models."""
    table = TextTable(f"Utility at epoch {epoch}: accuracy of the audited models",
                      ["models", "train accuracy (members)", "test accuracy (non-members)", "gap (train - test)"],
                      caption="identity query; over several models: mean [min, max] over models; the gap is "
                              "computed per model")
    for name, u in rows.items():
        many = u.n_models > 1
        gap = f"{100 * u.gap.mean:.1f} points" + (f" [{100 * u.gap.min:.1f}, {100 * u.gap.max:.1f}]" if many else "")
        table.add_row(name, spread_text(u.train, many), spread_text(u.test, many), gap)
    return table


# -- plain numbers and tables (the studies' console tables and report sections) ---------------------

def number(x: Any, fmt: str = ".3f") -> str:
    """A number as text: ``-`` for None or NaN, ``∞`` / ``-∞`` for infinities."""
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(int(x) if fmt.endswith("d") else x, fmt)


def interval_text(value: Any, lo: Any, hi: Any, fmt: str = ".3f") -> str:
    """``value [lo, hi]`` (each through :func:`number`); just the value when there is no interval."""
    if (lo is None or hi is None) or (math.isnan(float(lo)) and math.isnan(float(hi))):
        return number(value, fmt)
    return f"{number(value, fmt)} [{number(lo, fmt)}, {number(hi, fmt)}]"


@dataclass
class TextTable:
    """A table of text cells, rendered the same on the console (:meth:`rich`) and in the HTML
    report (:meth:`html`), so the two cannot disagree."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def rich(self):
        """A :class:`rich.table.Table` (cells are plain text, never console markup)."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(self.title), caption=Text(self.caption) if self.caption else None)
        short_labels = max((len(r[0]) for r in self.rows), default=0) <= 48
        for i, col in enumerate(self.columns):
            table.add_column(Text(col), no_wrap=i == 0 and short_labels, overflow="fold")   # wrap, never cut
        for row in self.rows:
            table.add_row(*(Text(c) for c in row))
        return table

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c).replace(chr(10), '<br>')}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        caption = f"<p class=note>{html.escape(self.caption)}</p>" if self.caption else ""
        return f"<h3>{html.escape(self.title)}</h3><table><tr>{head}</tr>{body}</table>{caption}"
