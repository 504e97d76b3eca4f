"""Coverage study as a test: the 95% intervals of ``summarize`` cover a known truth in 92-98% of
simulated audits, and always contain their own estimate.

8 targets score the same 400 samples; sample difficulty d_i ~ N(0, 1) is shared by all targets;
target effect mu_t = 1 + 0.15 u_t; score = d_i + mu_t * member + noise (sd 1); membership a
balanced random half per target. Marginally member ~ N(mu_t, 2), non-member ~ N(0, 2), so
AUC_t = Phi(mu_t / 2) and TPR_t@a = Phi(mu_t / sqrt(2) - z_{1-a}); the truth is their mean over
u ~ N(0, 1) (Gauss-Hermite quadrature)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from privaudit.evaluation.protocol import summarize

T, N, REPS, MU, TAU = 8, 400, 200, 1.0, 0.15


def _truth() -> dict[str, float]:
    x, w = np.polynomial.hermite_e.hermegauss(64)
    m = MU + TAU * x
    w = w / w.sum()
    return {"auc": float(w @ stats.norm.cdf(m / 2.0)),
            "tpr@0.05": float(w @ stats.norm.cdf(m / np.sqrt(2.0) - stats.norm.ppf(0.95)))}


def _audit(seed: int):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=N)
    eff = MU + TAU * rng.normal(size=T)
    keep = np.zeros((T, N), dtype=bool)
    for t in range(T):
        keep[t, rng.permutation(N)[: N // 2]] = True
    return keep, d[None] + eff[:, None] * keep + rng.normal(size=(T, N))


def test_truth_formula():
    assert _truth()["auc"] == pytest.approx(0.691, abs=1e-3)
    assert _truth()["tpr@0.05"] == pytest.approx(0.1755, abs=1e-3)


def test_intervals_cover_the_truth():
    truth = _truth()
    hits = {m: 0 for m in truth}
    for r in range(REPS):
        keep, scores = _audit(1000 + r)
        _, summary = summarize(scores, keep, fprs=(0.05,), n_boot=200, seed=r)
        for m, e in summary.items():
            assert e["lo"] <= e["mean"] <= e["hi"], (r, m, e)
        for m, v in truth.items():
            hits[m] += summary[m]["lo"] <= v <= summary[m]["hi"]
    cov = {m: h / REPS for m, h in hits.items()}
    assert all(0.92 <= c <= 0.98 for c in cov.values()), cov


def test_single_target_interval_contains_estimate():
    keep, scores = _audit(7)
    _, summary = summarize(scores[:1], keep[:1], fprs=(0.05, 0.01), n_boot=100)
    for e in summary.values():
        assert e["lo"] <= e["mean"] <= e["hi"] and e["hi"] > e["lo"]
