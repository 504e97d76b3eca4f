"""A self-contained HTML report (plots embedded as base64 PNG, no external assets)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from privaudit.evaluation.results import MetricsDocument  # noqa: E402
from privaudit.report import format as fmt  # noqa: E402


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%">'


def metrics_html(doc: MetricsDocument) -> str:
    """The attack table, cell for cell as on the console (:mod:`privaudit.report.format`)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in fmt.columns(doc))
    rows = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in fmt.row(doc, a))
                   + "</tr>" for name, a in doc.attacks.items())
    return (f"<table><tr><th>attack</th>{head}</tr>{rows}</table>"
            f"<p class=note>{html.escape(fmt.caption(doc))}. {html.escape(doc.protocol)}.</p>")


def slices_html(doc: dict[str, Any], metric: str = "auc") -> str:
    """One table per slicing (class, canary kind, mixture group): rows = slices, columns = attacks."""
    from privaudit.evaluation.slices import format_cell

    out = []
    for family, rows in doc["slicings"].items():
        names = list(next(iter(rows.values()), {}).get("attacks", {}))
        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = "".join(f"<tr><td>{html.escape(label)}</td><td>{row['n']}</td>" +
                       "".join(f"<td>{html.escape(format_cell(row['attacks'][k], metric))}</td>" for k in names) +
                       "</tr>" for label, row in rows.items())
        out.append(f"<h3>{html.escape(family)}</h3><table><tr><th>slice</th><th>n</th>{head}</tr>{body}</table>")
    return "".join(out) + ("<p class=note>mean over targets [95% bootstrap CI]; * some targets left out "
                           "(one membership class in the slice)</p>")


def sample_grid(x: np.ndarray, idx: np.ndarray, captions: list[str], mean, std) -> str:
    """Thumbnails of image samples ``x[idx]`` (undoing the normalisation) as one embedded PNG."""
    if x.ndim != 4 or len(idx) == 0:
        return ""
    n = len(idx)
    cols = min(n, 10)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    m = np.asarray(mean if mean is not None else [0.0] * x.shape[1]).reshape(-1, 1, 1)
    s = np.asarray(std if std is not None else [1.0] * x.shape[1]).reshape(-1, 1, 1)
    for ax, i, cap in zip(axes.ravel(), idx, captions):
        img = np.clip(x[i] * s + m, 0, 1).transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        ax.set_title(cap, fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def render_report(*, title: str, sections: list[tuple[str, str]]) -> str:
    """One self-contained HTML page; ``sections``: (heading, HTML body) pairs."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{b}" for h, b in sections)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:14px}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.note{{color:#555;font-size:13px}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
