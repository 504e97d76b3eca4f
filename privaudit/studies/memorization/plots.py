"""The memorization study's figures: measured attack success against the number of reference
models, next to the predicted share of samples that many models can distinguish."""

from __future__ import annotations

from typing import Any

import numpy as np

from privaudit.runtime.run import Layout, Run
from privaudit.studies._plots import save_line_plot
from privaudit.studies.memorization import NAME
from privaudit.studies.memorization.budget import metric_name

PLOTS = ("budget_auc.png", "budget_tpr.png", "budget_bound.png")


def _series(curve: list[dict], group: str, metric: str, sizes) -> tuple[np.ndarray, np.ndarray]:
    by = {r["n_models"]: r for r in curve if r["group"] == group}
    mean, lo, hi = (np.array([by[s].get(f"{metric}_{k}", np.nan) if s in by and not by[s].get("skipped")
                              else np.nan for s in sizes], dtype=float) for k in ("mean", "ci_low", "ci_high"))
    return mean, np.vstack([mean - lo, hi - mean])


def plot_budget(run: Run, curve: list[dict], bound: dict[str, Any], sizes, *, fpr: float, title: str) -> list[str]:
    """Measured AUC / TPR vs R per group (95 % bootstrap CIs) with the predicted share of the group
    with c / H^2 <= R (c = 1) next to it; ``budget_bound.png`` has both the 1/H^2 and 1/mem^2
    predictions (Choi et al. 2023, Lemma 2 and Corollary 1; ``docs/studies.md``). Returns the
    artifacts written (``Layout.study("memorization", ...)``)."""
    written = []
    pred = lambda name, kind: (np.asarray(bound["groups"][name][kind]["frac_reachable"]), None)
    for metric, ylabel, fname in (("auc", "AUC", PLOTS[0]), (metric_name(fpr), f"TPR at FPR {fpr:g}", PLOTS[1])):
        series = {f"{name}: measured": _series(curve, name, metric, sizes) for name in bound["groups"]}
        series |= {f"{name}: predicted share with 1/H² ≤ R": pred(name, "h2") for name in bound["groups"]}
        rel = Layout.study(NAME, fname)
        save_line_plot(run, rel, sizes, series, xlabel="reference (shadow) models R",
                       ylabel=f"{ylabel}  /  predicted share", title=title, log_x=True)
        written.append(rel)
    series = {f"{name}: {lab}": pred(name, kind) for name in bound["groups"]
              for kind, lab in (("h2", "1/H² ≤ R"), ("mem", "2/mem² ≤ R"))}
    rel = Layout.study(NAME, PLOTS[2])
    save_line_plot(run, rel, sizes, series, xlabel="reference (shadow) models R",
                   ylabel="share of the group predicted distinguishable",
                   title="predicted sample complexity (constant c = 1)", log_x=True)
    return written + [rel]
