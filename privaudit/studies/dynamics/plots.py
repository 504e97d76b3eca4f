"""The dynamics study's figures, written through the run: sample trajectories on the FPR-TPR
plane, the path of the population's centre of mass, and the early-prediction curves."""

from __future__ import annotations

from typing import Any

import numpy as np

from privaudit.runtime.run import Layout, Run
from privaudit.studies._plots import pyplot, save_line_plot
from privaudit.studies.dynamics import NAME

PLOTS = ("trajectories.png", "com_path.png", "early_prediction.png")


def plot_trajectories(run: Run, traj: np.ndarray, final_v: np.ndarray, epochs, *, n_show: int = 60,
                      title: str = "", seed: int = 0) -> str:
    """Trajectories of ``n_show`` samples coloured by final vulnerability: half evenly spaced in its rank,
    half from the final top 10 %. Points are jittered by up to a quarter of the coordinate resolution
    (1 / #targets per axis), because per-sample rates are discrete and would otherwise overlap."""
    plt = pyplot()
    ok = np.flatnonzero(np.isfinite(traj).all(axis=(0, 2)))
    order = ok[np.argsort(final_v[ok], kind="stable")]
    spread = order[np.linspace(0, len(order) - 1, min(n_show // 2, len(order))).astype(int)]
    top = order[-max(1, len(order) // 10):]
    rng = np.random.default_rng(seed)
    pick = np.unique(np.concatenate([spread, rng.choice(top, min(n_show - len(spread), len(top)), replace=False)]))
    vals = np.unique(traj[:, ok])
    step = np.diff(vals).min() if vals.size > 1 else 0.02
    jit = rng.uniform(-step / 4, step / 4, size=(len(pick), 2))
    fig, ax = plt.subplots(figsize=(5.6, 5))
    vmin, vmax = float(np.nanmin(final_v[ok])), float(np.nanmax(final_v[ok]))
    cmap, norm = plt.get_cmap("viridis"), plt.Normalize(vmin, max(vmax, vmin + 1e-9))
    for j, i in enumerate(sorted(pick, key=lambda i: final_v[i])):
        c = cmap(norm(final_v[i]))
        x, y = traj[:, i, 0] + jit[j, 0], traj[:, i, 1] + jit[j, 1]
        ax.plot(x, y, "-", color=c, lw=0.8, alpha=0.6)
        ax.plot(x[-1], y[-1], "o", color=c, ms=3.5)
    ax.plot([0, 1], [0, 1], "k--", lw=0.6)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=norm)
    fig.colorbar(sm, ax=ax, label="final vulnerability TPR_i - FPR_i")
    x_hi = min(1.03, max(0.25, 1.15 * float(np.nanmax(traj[:, pick, 0])) + step))   # FPR_i stays small at low FPR
    ax.set(xlim=(-0.03 * x_hi, x_hi), ylim=(-0.03, 1.03), xlabel="FPR_i (fraction of OUT targets flagged)",
           ylabel="TPR_i (fraction of IN targets flagged)")
    ax.set_title(title or "sample trajectories", fontsize=10)
    ax.text(0.98, 0.02, f"{len(pick)} samples (dot = final, epochs {int(epochs[0])}..{int(epochs[-1])}; jittered)",
            transform=ax.transAxes, ha="right", fontsize=7)
    fig.tight_layout()
    rel = Layout.study(NAME, PLOTS[0])
    run.save_figure(rel, fig)
    return rel


def plot_com(run: Run, com: np.ndarray, epochs, title: str = "") -> str:
    """Path of the population centre of mass on the plane (percentage points), labelled by epoch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.plot(100 * com[:, 0], 100 * com[:, 1], "o-")
    for (x, y), e in zip(100 * com, epochs):
        ax.annotate(str(int(e)), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel="mean FPR_i (%)", ylabel="mean TPR_i (%)", title=title or "centre of mass (labels: epoch)")
    fig.tight_layout()
    rel = Layout.study(NAME, PLOTS[1])
    run.save_figure(rel, fig)
    return rel


def plot_early_prediction(run: Run, doc: dict[str, Any], title: str = "") -> str:
    """Early-prediction curve with 95% bootstrap intervals (:func:`privaudit.report.plots.line_plot`)."""

    def series(curve: dict[str, Any], key: str):
        y = np.array([np.nan if v is None else v for v in curve[key]], dtype=float)
        lo = np.array([np.nan if v is None else v for v in curve[key + "_lo"]], dtype=float)
        hi = np.array([np.nan if v is None else v for v in curve[key + "_hi"]], dtype=float)
        return y, np.clip(np.nan_to_num(np.stack([y - lo, hi - y]), nan=0.0), 0.0, None)

    ep = doc["early_prediction"]
    lines = {f"precision@top{ep['top_frac']:.0%} (same models)": series(ep, "precision"),
             "Spearman vs final": series(ep, "spearman")}
    cross = doc.get("early_prediction_cross_model") or {}
    if cross.get("available"):
        lines["precision, half A vs final half B"] = series(cross, "precision")
    hv = doc.get("early_identification_hv") or {}
    if hv.get("available"):
        lines[f"recall of the {hv['n_final']} final highly-vulnerable"] = series(hv, "recall")
    lines[f"chance ({ep['chance']:.2f})"] = (np.full(len(ep["checkpoint"]), ep["chance"]), None)
    rel = Layout.study(NAME, PLOTS[2])
    save_line_plot(run, rel, ep["checkpoint"], lines, xlabel="epoch", ylabel="value",
                   title=title or "early prediction of the final top-vulnerable set")
    return rel

