"""Plots (matplotlib, Agg backend): log-log ROC curves, score histograms, curvature histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

FPR_GRID = np.logspace(-5, 0, 400)


def mean_roc(scores: np.ndarray, keep_targets: np.ndarray) -> np.ndarray:
    """TPR on :data:`FPR_GRID`, averaged over targets (vertical averaging, step interpolation)."""
    curves = []
    for s, y in zip(scores, keep_targets):
        fpr, tpr, _ = roc_curve(y, s)
        idx = np.searchsorted(fpr, FPR_GRID, side="right") - 1
        curves.append(tpr[np.clip(idx, 0, None)])
    return np.mean(curves, axis=0)


def roc_loglog(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "") -> Path:
    """``curves``: name -> (scores [T, n], keep_targets [T, n]); log-log axes from 1e-5 as in LiRA."""
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for name, (scores, keep_t) in curves.items():
        tpr = mean_roc(scores, keep_t)
        ax.loglog(FPR_GRID, np.maximum(tpr, 1e-5), label=name)
    ax.plot([1e-5, 1], [1e-5, 1], "k--", lw=0.8, label="chance")
    n_neg = min(int((~k).sum(axis=1).min()) for _, k in curves.values())
    if n_neg and 1.0 / n_neg > 1e-5:
        ax.axvspan(1e-5, 1.0 / n_neg, color="0.9", zorder=0, label=f"FPR < 1/{n_neg}: unresolved")
    ax.set(xlim=(1e-5, 1), ylim=(1e-5, 1), xlabel="false positive rate", ylabel="true positive rate",
           title=title or "ROC (mean over target models)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def histograms(values: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, *, xlabel: str = "score",
               log_x: bool = False, title: str = "") -> Path:
    """One panel per entry: distribution of members vs non-members (``name -> (values, is_member)``)."""
    n = len(values)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3), squeeze=False)
    for ax, (name, (v, member)) in zip(axes[0], values.items()):
        v = np.asarray(v, dtype=float)
        if log_x:
            v = np.log10(np.maximum(v, 1e-30))
        finite = np.isfinite(v)
        lo, hi = np.quantile(v[finite], [0.005, 0.995])   # robust range: heavy tails hide the bulk
        bins = np.linspace(lo, hi, 51) if hi > lo else 50
        ax.hist(v[finite & member], bins=bins, alpha=0.6, density=True, label="members")
        ax.hist(v[finite & ~member], bins=bins, alpha=0.6, density=True, label="non-members")
        ax.set(title=name, xlabel=f"log10 {xlabel}" if log_x else xlabel)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def line_plot(x: Iterable[float], series: dict[str, tuple[np.ndarray, np.ndarray | None]], path: Path, *,
              xlabel: str, ylabel: str, title: str = "", log_x: bool = False) -> Path:
    """Lines with optional error bars: ``name -> (y, yerr or None)``."""
    x = np.asarray(list(x), dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, (y, err) in series.items():
        ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
