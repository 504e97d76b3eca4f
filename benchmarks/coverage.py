"""Coverage of the 95% intervals of ``summarize``: old (per-target stratified percentile bootstrap of
the mean) vs new (crossed row x column bootstrap, bias-corrected normal; privaudit.evaluation.intervals).

Simulated populations with a known truth: T targets score the same n samples; sample i has a
difficulty d_i ~ N(0, 1) shared by every target; target t has an effect mu_t = MU + TAU * u_t,
u_t ~ N(0, 1); score = d_i + mu_t * member + SIGMA * noise, membership a balanced random half
per target. With v = 1 + SIGMA^2, target t's population metrics are AUC = Phi(mu_t / sqrt(2 v)),
TPR@a = Phi(mu_t / sqrt(v) - z_{1-a}), balanced accuracy (max) = Phi(mu_t / (2 sqrt(v))); the
truth is their expectation over u (Gauss-Hermite quadrature).

    python benchmarks/coverage.py [--reps 300] [--targets 8] [--samples 400]
Prints a JSON table: method x metric -> coverage, mean width, estimate-inside rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from privaudit.evaluation import metrics  # noqa: E402
from privaudit.evaluation.protocol import summarize  # noqa: E402

MU, TAU, SIGMA = 1.0, 0.15, 1.0
FPRS = (0.05, 0.01)


def truth(mu: float = MU, tau: float = TAU, sigma: float = SIGMA, fprs=FPRS) -> dict[str, float]:
    x, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    m = mu + tau * x
    sv = np.sqrt(1.0 + sigma ** 2)
    out = {"auc": float(w @ stats.norm.cdf(m / (np.sqrt(2) * sv))),
           "balanced_accuracy": float(w @ stats.norm.cdf(m / (2 * sv)))}
    for a in fprs:
        out[f"tpr@{a:g}"] = float(w @ stats.norm.cdf(m / sv - stats.norm.ppf(1 - a)))
    return out


def simulate(seed: int, T: int, n: int, mu: float = MU, tau: float = TAU, sigma: float = SIGMA):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=n)
    eff = mu + tau * rng.normal(size=T)
    keep = np.zeros((T, n), dtype=bool)
    for t in range(T):
        keep[t, rng.permutation(n)[: n // 2]] = True
    scores = d[None] + eff[:, None] * keep + sigma * rng.normal(size=(T, n))
    return keep, scores


def old_summarize(scores, keep, *, fprs, mode="strict", n_boot=200, seed=0, level=0.95):
    """The interval of ``summarize`` before the change (percentile of the per-target stratified means)."""
    out = {}
    tail = (1 - level) / 2
    for m in metrics_names(fprs):
        fn = partial(metrics.tpr_at_fpr, alpha=float(m[4:]), mode=mode) if m.startswith("tpr@") else m
        reps = np.mean([metrics.bootstrap_values(fn, keep[i], scores[i], n_boot=n_boot, seed=seed + i)
                        for i in range(len(scores))], axis=0)
        lo, hi = np.nanquantile(reps, [tail, 1 - tail])
        est = np.mean([metrics.tpr_at_fpr(keep[i], scores[i], float(m[4:]), mode=mode) if m.startswith("tpr@")
                       else getattr(metrics, m)(keep[i], scores[i]) for i in range(len(scores))])
        out[m] = {"mean": float(est), "lo": float(lo), "hi": float(hi)}
    return out


def metrics_names(fprs):
    return ["auc", "balanced_accuracy"] + [f"tpr@{a:g}" for a in fprs]


def study(reps: int, T: int, n: int, n_boot: int = 200, methods=("old", "new")) -> dict:
    tru = truth()
    table: dict = {}
    for method in methods:
        hits = {m: [] for m in tru}
        width = {m: [] for m in tru}
        inside = {m: [] for m in tru}
        t0 = time.perf_counter()
        for r in range(reps):
            keep, scores = simulate(1000 + r, T, n)
            if method == "old":
                summ = old_summarize(scores, keep, fprs=FPRS, n_boot=n_boot, seed=r)
            else:
                summ = summarize(scores, keep, fprs=FPRS, n_boot=n_boot, seed=r)[1]
            for m, v in tru.items():
                e = summ[m]
                hits[m].append(e["lo"] <= v <= e["hi"])
                width[m].append(e["hi"] - e["lo"])
                inside[m].append(e["lo"] <= e["mean"] <= e["hi"])
        table[method] = {m: {"coverage": float(np.mean(hits[m])), "mean_width": float(np.mean(width[m])),
                             "estimate_inside": float(np.mean(inside[m]))} for m in tru}
        table[method]["seconds"] = round(time.perf_counter() - t0, 1)
    return {"truth": tru, "reps": reps, "targets": T, "samples": n, "n_boot": n_boot, "methods": table}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--n-boot", type=int, default=200)
    a = ap.parse_args()
    print(json.dumps(study(a.reps, a.targets, a.samples, a.n_boot), indent=1))


if __name__ == "__main__":
    main()
