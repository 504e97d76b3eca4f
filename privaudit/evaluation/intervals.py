"""Confidence intervals of the leave-one-model-out metrics that respect how the data depend.

The reported number of a metric is the mean over T target models of a per-target metric
(AUC, balanced accuracy, TPR at FPR alpha), each computed on the *same* n samples (every target
scores the whole pool; membership differs by target). Three sources of dependence:

* targets are clusters: the T per-target values are a sample of models;
* samples are shared: a hard sample is hard for every target, so sample-level errors are
  correlated across targets (treating (model, sample) pairs as independent is too narrow);
* the threshold of TPR@FPR and of balanced accuracy is estimated on the same non-members it
  is evaluated on (max-type / order statistics: biased, non-normal resampling distributions).

Method (variance components + bootstrap). The mean over targets varies by (i) the target-level
(cluster) spread plus each target's unshared sample noise, estimated by the between-target
variance of the per-target values / T, and (ii) the sample noise shared by all targets, estimated
by the mean off-diagonal covariance of the per-target values under a bootstrap that resamples
the n sample *columns jointly for all targets* (every threshold re-estimated on each resample).
Adding (i) and (ii) counts each part once; a crossed "pigeonhole" bootstrap (Owen 2007), which
also resamples rows, counts the unshared sample noise twice and covered AUC in 100% of runs at
2.4x the width. For one target only (ii)'s diagonal applies (the column-bootstrap variance).
Interval: ``(theta - bias) +- t_df * se``, df by Satterthwaite from the between-target part
(``scipy.stats.t``; normal for one target). Bias: for a TPR at FPR alpha, the order-statistic
bias of the threshold (:func:`threshold_bias`; the bootstrap reproduces the strict rule and cannot
see it); for balanced accuracy (a max over thresholds) twice the bootstrap bias (the bootstrap
sees about half the optimism; calibrated in ``benchmarks/coverage.py``); else the bootstrap bias.
Why not percentile/BCa: for max-type and threshold statistics the resampling distribution is
shifted from the estimate by the estimator's own bias, so the percentile interval can exclude its
estimate (``0.523 [0.525, 0.533]``) and goes the wrong way; BCa's correction is undefined when no
replicate falls below the estimate. ``scipy.stats.bootstrap`` resamples one axis (or pairs), not
the per-target ROC recomputation used here, so the resampling is our own (vectorised: each
target sorted once, a resample is a vector of column counts, one ROC per target shared by all
metrics). If the interval excludes the estimate it is widened to include it (``widened``).
Coverage (``benchmarks/coverage.py``, ``tests/test_coverage.py``): 8 targets x 400 shared samples,
200 runs: AUC 0.955, balanced accuracy 0.935, TPR@5% 0.96, TPR@1% 0.97 (old: 0.85, 0.13, 0.85, 0.57).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = ["column_replicates", "components_interval", "threshold_bias", "metric_intervals"]

_CHUNK_ELEMS = 2_000_000        # resamples x samples held at once


def _target_roc_parts(y: np.ndarray, s: np.ndarray):
    """For one target: descending-score order, member flag in that order, group ends (ties)."""
    order = np.argsort(-s, kind="mergesort")
    ss = s[order]
    ends = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])
    return order, y[order], ends


def column_replicates(fns: Sequence[Callable[[np.ndarray, np.ndarray], np.ndarray]], keep: np.ndarray,
                      scores: np.ndarray, *, n_boot: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Per-target replicates ``float[k, T, n_boot]`` of ``k`` ROC metrics when the n sample
    columns are resampled with replacement jointly for all targets (each target's metric, its
    threshold included, recomputed on the resample). ``fns[j](fpr[B, G], tpr[B, G]) -> float[B]``
    (as :func:`privaudit.evaluation.metrics._fast_metric`). A resample where a target has an
    empty class gives NaN for it."""
    keep = np.asarray(keep, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    T, n = scores.shape
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    parts = [_target_roc_parts(keep[t], scores[t]) for t in range(T)]
    vals = np.empty((len(fns), T, n_boot))
    chunk = max(1, _CHUNK_ELEMS // max(n, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        off = np.arange(b)[:, None]
        cnt = np.bincount((idx + off * n).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        for t, (order, ys, ends) in enumerate(parts):
            c = cnt[:, order]
            tp = np.cumsum(c * ys, axis=1)[:, ends]
            fp = np.cumsum(c * ~ys, axis=1)[:, ends]
            P, N = tp[:, -1:], fp[:, -1:]
            with np.errstate(divide="ignore", invalid="ignore"):
                tpr = np.concatenate([np.zeros((b, 1)), tp / P], axis=1)
                fpr = np.concatenate([np.zeros((b, 1)), fp / N], axis=1)
            bad = (P[:, 0] == 0) | (N[:, 0] == 0)
            if bad.any():
                tpr[bad], fpr[bad] = 0.0, np.linspace(0.0, 1.0, fpr.shape[1])
            for j, fn in enumerate(fns):
                v = np.asarray(fn(fpr, tpr), dtype=np.float64)
                v[bad] = np.nan
                vals[j, t, start:start + b] = v
    return vals


def threshold_bias(keep: np.ndarray, scores: np.ndarray, alpha: float, values: np.ndarray) -> np.ndarray:
    """Per-target bias ``float[T]`` of a TPR at FPR ``alpha`` from thresholding at an order
    statistic of the same non-members: the threshold just above the j-th highest of N
    non-members has expected true FPR j / (N + 1) (a Beta(j, N + 1 - j) variable), so the
    value at FPR ``alpha`` is read, interpolated, at j = alpha * (N + 1). The strict convention
    (threshold at the floor(alpha N) + 1-th non-member) sits at a larger true FPR: upward biased,
    and invisible to any resampling of the same scores (the bootstrap reproduces the rule)."""
    out = np.zeros(len(scores))
    for t in range(len(scores)):
        y, s = np.asarray(keep[t], dtype=bool), np.asarray(scores[t], dtype=np.float64)
        neg = np.sort(s[~y])[::-1]
        pos = np.sort(s[y])
        g = 1.0 - np.searchsorted(pos, neg, side="right") / pos.size        # members > j-th non-member
        u = float(np.interp(alpha * (neg.size + 1), np.arange(1, neg.size + 1), g))
        out[t] = values[t] - u
    return out


def components_interval(per_target: np.ndarray, reps: np.ndarray, *, level: float,
                        bias: float | None = None) -> tuple[float, float, bool]:
    """Interval of the mean over targets from per-target estimates ``float[T]`` and their column
    replicates ``float[T, B]``; ``(lo, hi, widened)``. See the module docstring."""
    est_t = np.asarray(per_target, dtype=np.float64)
    T = est_t.size
    est = float(est_t.mean())
    r = reps[:, np.isfinite(reps).all(axis=0)]
    if r.shape[1] < 2:
        return est, est, False
    C = np.cov(r) if T > 1 else np.array([[np.var(r[0], ddof=1)]])
    if T > 1:
        between = float(np.var(est_t, ddof=1)) / T                      # clusters + unshared sample noise
        shared = float((C.sum() - np.trace(C)) / (T * (T - 1)))         # shared sample noise
        shared = max(shared, 0.0)
        var = between + shared
        df = (T - 1) * var ** 2 / between ** 2 if between > 0 else np.inf
    else:
        var, df = float(C[0, 0]), np.inf
    q = 1.0 - (1.0 - level) / 2.0
    z = float(stats.t.ppf(q, df)) if np.isfinite(df) else float(stats.norm.ppf(q))
    if bias is None:
        bias = float(r.mean()) - est
    centre, half = est - bias, z * np.sqrt(var)
    lo, hi = centre - half, centre + half
    widened = not (lo <= est <= hi)
    return float(min(lo, est)), float(max(hi, est)), widened


def metric_intervals(names: Sequence[str], fns: Sequence[Callable], per_target: np.ndarray, keep: np.ndarray,
                     scores: np.ndarray, *, n_boot: int, seed: int = 0,
                     level: float = 0.95) -> dict[str, tuple[float, float, bool]]:
    """``name -> (lo, hi, widened)`` per metric; ``per_target``: ``float[k, T]`` estimates."""
    reps = column_replicates(fns, keep, scores, n_boot=n_boot, seed=seed)
    est = np.asarray(per_target, dtype=np.float64)
    out = {}
    for j, m in enumerate(names):
        bias = None
        if m.startswith("tpr@"):
            bias = float(threshold_bias(keep, scores, float(m[4:]), est[j]).mean())
        elif m.startswith("balanced_accuracy"):          # max-type: the bootstrap sees about half the optimism
            bias = 2.0 * (float(np.nanmean(reps[j])) - float(est[j].mean()))
        out[m] = components_interval(est[j], reps[j], level=level, bias=bias)
    return out
