"""Plots (matplotlib, Agg backend) in the colour-blind-safe Okabe–Ito palette: log-log ROC curves
(one panel, or small multiples when there are many attacks), score distributions on a quantile
scale (readable whatever the scores' range), histograms of members vs non-members, line plots.
The report's figures are returned as PNG bytes; the run stores them."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from privaudit.evaluation.metrics import roc_curve

# Okabe & Ito, "Color Universal Design" (2008): distinguishable under every common colour-vision
# deficiency; ordered for lines on white (the yellow, #F0E442, is left out: too light for lines).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#000000")
MEMBERS, NON_MEMBERS = "#D55E00", "#0072B2"
STYLES = ("-", "--", "-.", ":")
ONE_PANEL_MAX = len(PALETTE)        # more attacks than colours: small multiples
FPR_GRID = np.logspace(-6, 0, 480)
matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=PALETTE)   # every privaudit figure


def _legend_on_top(fig, ax, title: str) -> None:
    """The figure's title, then the legend of ``ax`` on its own line, above the panels."""
    h = fig.get_figheight()
    fig.suptitle(title, fontsize=11, x=0.01, y=1 - 0.04 / h, ha="left", va="top")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.01, 1 - 0.3 / h), ncol=len(labels), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.58 / h))


def figure(**kw) -> Figure:
    """A figure outside pyplot (no global state, no display backend: matplotlib's way for servers),
    saved with the Agg renderer."""
    return Figure(**kw)


def png(fig) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _grid(n: int, width: float = 3.1, height: float = 2.7, **kw):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = figure(figsize=(width * cols, height * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def mean_roc(scores: np.ndarray, keep_targets: np.ndarray) -> np.ndarray:
    """TPR on :data:`FPR_GRID`, averaged over targets (vertical averaging, step interpolation)."""
    curves = []
    for s, y in zip(scores, keep_targets):
        ok = ~np.isnan(s)                          # a NaN score: a row not evaluated for this target
        fpr, tpr, _ = roc_curve(y[ok], s[ok])
        idx = np.searchsorted(fpr, FPR_GRID, side="right") - 1
        curves.append(tpr[np.clip(idx, 0, None)])
    return np.mean(curves, axis=0)


def _roc_axes(ax, lo: float, n_neg: int) -> None:
    ax.plot([lo, 1], [lo, 1], color="0.35", ls=":", lw=0.9, label="chance")
    if 1.0 / n_neg > lo:
        ax.axvspan(lo, 1.0 / n_neg, color="0.92", zorder=0, label=f"FPR < 1/{n_neg}: unresolved")
    ax.set(xscale="log", yscale="log", xlim=(lo, 1), ylim=(lo, 1))
    ax.grid(True, which="major", color="0.9", lw=0.6)


def roc_loglog(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> bytes:
    """Log-log ROC (as in LiRA) of ``name -> (scores [T, n], keep_targets [T, n])``, mean over
    targets, from one decade below the resolution 1/(non-members) up. Up to seven attacks share one
    panel; more become small multiples, each attack in colour over the others in grey."""
    n_neg = min(int((~k & ~np.isnan(s)).sum(axis=1).min()) for s, k in curves.values())
    lo = 10.0 ** math.floor(math.log10(1.0 / max(n_neg, 1)))
    roc = {name: np.maximum(mean_roc(s, k), lo) for name, (s, k) in curves.items()}
    if len(roc) <= ONE_PANEL_MAX:
        fig = figure(figsize=(5.6, 5.0))
        ax = fig.subplots()
        for i, (name, tpr) in enumerate(roc.items()):
            ax.plot(FPR_GRID, tpr, color=PALETTE[i], ls=STYLES[i % len(STYLES)], lw=1.6, label=name)
        _roc_axes(ax, lo, n_neg)
        ax.set(xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=8, loc="lower right")
    else:
        fig, axes = _grid(len(roc), sharex=True, sharey=True)
        for ax, (name, tpr) in zip(axes, roc.items()):
            for other in roc.values():
                ax.plot(FPR_GRID, other, color="0.8", lw=0.8)
            ax.plot(FPR_GRID, tpr, color=PALETTE[0], lw=1.8)
            _roc_axes(ax, lo, n_neg)
            ax.set_title(name, fontsize=9)
        fig.supxlabel("false positive rate")
        fig.supylabel("true positive rate")
    fig.suptitle(title or "ROC (mean over target models)", fontsize=11)
    fig.tight_layout()
    return png(fig)


def quantiles(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each score's quantile among the non-NaN ``scores`` (0 = lowest, 1 = highest; NaN stays NaN);
    tied scores are spread uniformly (seeded) over the quantiles their block covers, so a block of
    ties shows as what it is, not as a spike."""
    scores = np.asarray(scores, dtype=np.float64)
    ok = ~np.isnan(scores)
    values = scores[ok]
    order = np.lexsort((np.random.default_rng(seed).random(len(values)), values))
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    out = np.full(len(scores), np.nan)
    out[ok] = ranks / max(len(values) - 1, 1)
    return out


def score_quantiles(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> bytes:
    """Per attack, where members and non-members fall among a target's scores: each score replaced
    by its quantile within its target (:func:`quantiles`), pooled over targets, as densities.
    Guessing puts both at density 1; a leaking attack piles members up near 1. Readable whatever
    the range or tails of the raw scores. ``name -> (scores [T, n], keep_targets [T, n])``."""
    bins = np.linspace(0.0, 1.0, 21)
    fig, axes = _grid(len(curves), sharex=True, sharey=True)
    for ax, (name, (scores, keep)) in zip(axes, curves.items()):
        q = np.vstack([quantiles(s) for s in np.atleast_2d(scores)])
        keep, ok = np.atleast_2d(keep), ~np.isnan(q)   # NaN: a row not evaluated for that target
        for mask, color, label in ((keep & ok, MEMBERS, "members"), (~keep & ok, NON_MEMBERS, "non-members")):
            ax.hist(q[mask], bins=bins, density=True, histtype="step", lw=1.8, color=color, label=label)
        ax.axhline(1.0, color="0.35", ls=":", lw=1.0, label="chance (uniform)")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
    fig.supxlabel("score quantile within its target model (1 = most member-like)", fontsize=9)
    fig.supylabel("density", fontsize=9)
    _legend_on_top(fig, axes[0], title or "score distributions")
    return png(fig)


def histograms(values: dict[str, tuple[np.ndarray, np.ndarray]], *, xlabel: str = "score", log_x: bool = False,
               title: str = "") -> bytes:
    """One panel per entry: distribution of members vs non-members (``name -> (values, is_member)``),
    on the central 99% of the values (heavy tails would hide the bulk)."""
    fig, axes = _grid(len(values), width=4.6, height=3.0)
    for ax, (name, (v, member)) in zip(axes, values.items()):
        v = np.asarray(v, dtype=float)
        member = np.asarray(member, dtype=bool)
        hidden = 0
        if log_x:
            hidden = int((v <= 0).sum())
            v = np.log10(np.where(v > 0, v, np.nan))
        finite = np.isfinite(v)
        lo, hi = np.quantile(v[finite], [0.005, 0.995])
        bins = np.linspace(lo, hi, 41) if hi > lo else 40
        for mask, color, label in ((member, MEMBERS, "members"), (~member, NON_MEMBERS, "non-members")):
            ax.hist(v[finite & mask], bins=bins, density=True, histtype="step", lw=1.8, color=color, label=label)
        ax.set(xlabel=f"log10 {xlabel}" if log_x else xlabel, ylabel="density")
        ax.set_title(name + (f" ({hidden} values <= 0 not shown)" if hidden else ""), fontsize=9)
    _legend_on_top(fig, axes[0], title)
    return png(fig)


def line_plot(x: Iterable[float], series: dict[str, tuple[np.ndarray, np.ndarray | None]], path: Path, *,
              xlabel: str, ylabel: str, title: str = "", log_x: bool = False) -> Path:
    """Lines with optional error bars: ``name -> (y, yerr or None)``, written to ``path``."""
    x = np.asarray(list(x), dtype=float)
    fig = figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for i, (name, (y, err)) in enumerate(series.items()):
        ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, label=name, color=PALETTE[i % len(PALETTE)],
                    ls=STYLES[(i // len(PALETTE)) % len(STYLES)])
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(fig))
    return path
