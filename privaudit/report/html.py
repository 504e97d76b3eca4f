"""The self-contained HTML report: sections with stable ids, rendered through the Jinja2 templates
of ``privaudit/report/templates`` (autoescaping on); plots and thumbnails inline as base64, no
external assets. Tables go through :mod:`privaudit.report.format`, cell for cell as on the console."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from privaudit.evaluation.results import MetricsDocument
from privaudit.report import format as fmt
from privaudit.report.render import macro, render
from privaudit.report.verdict import Verdict


@dataclass
class Section:
    """One section of the report: a stable ``id`` (its anchor), a title, a plain-language intro
    (1-3 sentences) and its HTML body (built by the helpers below, so already escaped)."""

    id: str
    title: str
    intro: str
    body: Markup


@dataclass
class SampleTable:
    """The most exposed samples: one row per sample, with its image (a ``data:`` URI) or its
    feature row, then text cells under ``columns``."""

    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)   # {image, features, cells, attrs}
    caption: str = ""

    def numeric(self) -> list[bool]:
        """Per column: every cell is a number (right-aligned)."""
        return [all(fmt.NUMERIC.match(r["cells"][i]) for r in self.rows) for i in range(len(self.columns))]


@dataclass
class Page:
    title: str
    subtitle: str
    date: str
    sections: list[Section]


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def image(png: bytes, alt: str, caption: str = "", **attrs: str) -> Markup:
    """A figure with the PNG inline; ``attrs``: HTML attributes (``data_x`` becomes ``data-x``)."""
    return macro("figure")(data_uri(png), alt, caption, {k.replace("_", "-"): v for k, v in attrs.items()})


def table(t: fmt.TextTable) -> Markup:
    return Markup(t.html())


def metrics_html(doc: MetricsDocument, source: str) -> Markup:
    """The attack table of ``doc`` (``source``: population or target), as on the console."""
    return table(fmt.attack_table(doc, source))


def slices_html(doc: dict[str, Any], metric: str = "auc", attacks: list[str] | None = None) -> Markup:
    """One table per slicing (class, canary kind, mixture group): rows = slices, columns = ``attacks``
    (default: every attack)."""
    return Markup("").join(table(fmt.slice_table(family, rows, metric, attacks))
                           for family, rows in doc["slicings"].items())


def note(text: str) -> Markup:
    return macro("note")(text)


def paragraph(text: str) -> Markup:
    return macro("paragraph")(text)


def intro(text: str) -> Markup:
    """The plain-language opening of a section."""
    return macro("intro")(text)


def preformatted(text: str) -> Markup:
    return macro("pre")(text)


def details(summary: str, body: Markup, open_: bool = False) -> Markup:
    return macro("details")(summary, body, open_)


def key_values(rows: list[tuple[str, str]], **attrs: str) -> Markup:
    return macro("key_values")(rows, {k.replace("_", "-"): v for k, v in attrs.items()})


def samples(t: SampleTable) -> Markup:
    return macro("samples")(t)


def verdict(v: Verdict) -> Markup:
    return macro("verdict")(v)


def join(*parts: Markup | str | None) -> Markup:
    """Concatenate HTML parts (plain strings are escaped; None is skipped)."""
    return Markup("").join(p for p in parts if p is not None)


def render_page(page: Page, *, expand: bool = False) -> str:
    """The whole page; ``expand`` opens every collapsed block (for printing)."""
    return render("report.html.j2", page=page, expand=expand)
