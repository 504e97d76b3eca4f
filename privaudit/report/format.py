"""One rendering of a metrics document, shared by the console table and the HTML report (so the
two cannot disagree): column headings, cells with their intervals and markers, and the footnote;
and the plain number / interval / table helpers the studies render their tables with."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from privaudit.evaluation.results import AttackMetrics, Estimate, MetricsDocument, Spread, Utility

NUMERIC = re.compile(r"^([-+−]?[\d.]|\(|∞|-$|needs ≥)")
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


def estimate_attrs(e: Estimate) -> dict[str, str]:
    """An estimate at full precision, as ``data-*`` attributes (and a tooltip) of its HTML cell."""
    if e.unresolved:
        return {"data-needs": str(e.needs_nonmembers)}
    attrs = {"data-mean": repr(e.mean), "data-std": repr(e.std)}
    if e.lo is not None:
        attrs |= {"data-lo": repr(e.lo), "data-hi": repr(e.hi)}
    if e.tied:
        attrs["data-tied"] = "true"
    interval = "" if e.lo is None else f", 95% interval [{e.lo!r}, {e.hi!r}]"
    return attrs | {"title": f"mean {e.mean!r}, std {e.std!r}{interval}"}


def attack_table(doc: MetricsDocument, source: str, heading: str = "") -> "TextTable":
    """The attack table (:func:`columns`, :func:`row`, :func:`caption`: cell for cell as on the
    console) with every estimate at full precision in its cell's ``data-*`` attributes;
    ``source`` names the metrics document (``population`` or ``target``)."""
    keys = [k for k, _ in columns(doc)]
    table = TextTable(heading, ["attack"] + [h for _, h in columns(doc)],
                      caption=f"{caption(doc)}. {doc.protocol}.",
                      table_attrs={"class": "metrics", "data-source": source, "data-epoch": str(doc.epoch)})
    for name, attack in doc.attacks.items():
        attrs = [{"data-attack": name}] + [
            {"data-attack": name, "data-metric": k} | (estimate_attrs(attack.summary[k]) if k in attack.summary else {})
            for k in keys]
        table.add_row(name, *row(doc, attack), attrs=attrs)
    return table


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
    report (:meth:`html`), so the two cannot disagree. ``attrs``: optional HTML attributes per
    cell (e.g. the full-precision numbers behind a cell), ``table_attrs`` those of the table."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""
    attrs: list[list[dict[str, str]]] = field(default_factory=list)
    table_attrs: dict[str, str] = field(default_factory=dict)

    def add_row(self, *cells: str, attrs: list[dict[str, str]] | None = None) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])
        self.attrs.append(list(attrs) if attrs is not None else [{} for _ in cells])

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

    def numeric(self) -> list[bool]:
        """Per column: every cell is a number, an interval, ``-`` or a ``needs ≥`` (right-aligned in HTML)."""
        return [i > 0 and all(NUMERIC.match(r[i]) for r in self.rows) and any(r[i] != "-" for r in self.rows)
                for i in range(len(self.columns))]

    def html(self) -> str:
        """The table through the report's ``table`` template macro (escaped, with its attributes)."""
        from privaudit.report.render import macro

        return str(macro("table")(self))


# -- slices: one table per slicing, markers explained only where they occur -------------------------

SLICE_NOTES = {"†": "† FPR below 1/(non-members in the slice): no TPR, needs ≥ N non-members",
               TIES: TIES_NOTE,
               "*": "* some targets left out (one membership class in the slice)"}


def slice_table(family: str, rows: dict[str, Any], metric: str = "auc", attacks: list[str] | None = None) -> TextTable:
    """Rows = slices of ``family`` (from ``slices.json``), columns = ``attacks`` (default: all), cells
    as the console's (:func:`privaudit.evaluation.slices.format_cell`); the caption explains only
    the markers used."""
    from privaudit.evaluation.slices import format_cell

    found = list(next(iter(rows.values()), {}).get("attacks", {}))
    names = found if attacks is None else [k for k in attacks if k in found]
    unit = f"TPR % @ FPR {float(metric[4:]) * 100:g}%" if metric.startswith("tpr@") else metric.upper()
    table = TextTable(f"{unit} per {family}", ["slice", "n", *names])
    for label, r in rows.items():
        table.add_row(label, str(r["n"]), *[format_cell(r["attacks"][k], metric) for k in names])
    cells = [c for r in table.rows for c in r[2:]]
    used = [note for mark, note in SLICE_NOTES.items() if any(mark in c for c in cells)]
    table.caption = "; ".join(["mean over targets [95% bootstrap CI]", *used])
    return table
