"""Confidence intervals of the leave-one-model-out metrics that respect how the data depend.

The reported number of a metric is the mean over T target models of a per-target metric
(AUC, balanced accuracy, TPR at FPR alpha), each computed on the *same* n samples (every target
scores the whole pool; membership differs by target). Three sources of dependence:

* targets are clusters: the T per-target values are a sample of models;
* samples are shared: a hard sample is hard for every target, so sample-level errors are
  correlated across targets (treating (model, sample) pairs as independent is too narrow);
* the threshold of TPR@FPR and of balanced accuracy is estimated on the same non-members it
  is evaluated on (max-type / order statistics: biased, non-normal resampling distributions).

Method (variance components + bootstrap). Interval: ``(theta - bias) +- t_df * se``. The mean
over targets varies by (i) the target-level (cluster) spread plus each target's unshared sample
noise, estimated by the between-target variance of the per-target *bias-corrected* values / T
(so the noise of each target's correction is counted), and (ii) the sample noise shared by all
targets, estimated by the mean off-diagonal covariance of the per-target values under a bootstrap
that resamples the n sample *columns jointly for all targets* (every threshold re-estimated on each
resample). Adding (i) and (ii) counts each part once; a crossed "pigeonhole" bootstrap (Owen 2007),
which also resamples rows, counts the unshared sample noise twice and covered AUC in 100% of runs
at 2.4x the width. df by Satterthwaite from the between-target part (the t quantile ``scipy.special.stdtrit``).
One target (an own-model audit) estimates that model's metric: the spread between models is not
identifiable from one model, se is the column-bootstrap standard deviation, normal quantile.

Bias, per target. TPR at FPR alpha: the order-statistic bias of the threshold
(:func:`threshold_bias`; the bootstrap reproduces the strict rule and cannot see it), the centre
read at the non-member rank whose true FPR has median alpha (:func:`median_position`): median-
unbiased for any ROC shape. Balanced accuracy (a max over thresholds): twice the bootstrap bias.
The bootstrap sees only part of a maximum's optimism (its own world's maximum is already
inflated): for a sharp maximum (cube-root asymptotics) the share is 2^(2/3) - 1 = 0.59, for a flat
one sqrt(2) - 1 = 0.41, i.e. factors 1.7 to 2.4; the measured ratio (true optimism / bootstrap
optimism, one target, n in {200, 1000}, AUC in {0.55, 0.7, 0.9}, none of them the setting the
factor was first tuned on) was 1.85-2.12. The corrected value 3 x - 2 mean(x*) is noisier than
x: with T > 1 that noise is in (i); for one target its variance comes from a second-level
bootstrap, 4 resamples of each replicate: var(3 x* - 2 mean(x**)) - 4 mean(var(x**)) / 4 (the
inner Monte-Carlo noise removed; 5x the resampling, one target only). Without it one target's
balanced accuracy covered 86-94% (200 runs per setting). Else (AUC): the bootstrap bias.
Each target of a population gets its own interval by the one-target method on its columns of the
same resamples; for balanced accuracy only the first 50 replicates of each are resampled again
and the ratio var(corrected) / var(x*) is pooled over the targets (50 replicates alone
estimate one target's variance too noisily), then applied to each target's own var(x*).
Coverage of each target's own metric: 0.923 (4 targets x 600, AUC 0.9) and 0.928 (8 x 400, AUC
0.69), 1,200 intervals each; 0.89 with the ratio left at 1.

Why not percentile/BCa: for max-type and threshold statistics the resampling distribution is
shifted from the estimate by the estimator's own bias, so the percentile interval can exclude its
estimate (``0.523 [0.525, 0.533]``) and goes the wrong way; BCa's correction is undefined when no
replicate falls below the estimate. ``scipy.stats.bootstrap`` resamples one axis (or pairs), not
the per-target ROC recomputation used here, so the resampling is our own (vectorised: each
target sorted once, a resample is a vector of column counts, one ROC per target shared by all
metrics). If the interval excludes the estimate it is widened to include it (``widened``): the
point estimate always lies in its interval, at the price of over-coverage where a bias larger
than the half-width is corrected (many targets, few samples).

Coverage (``benchmarks/coverage.py``, 300 runs per setting, Monte-Carlo s.e. 1.3%; T in
{1, 4, 16} x n in {200, 1000} x AUC ~{0.55, 0.7, 0.9}, two n = 4000 settings, and the
calibration setting 8 x 400, AUC 0.69): AUC 0.93-0.97 (mean 0.948 over the 20 held-out settings),
balanced accuracy 0.92-0.98 (0.954; 0.98 where T = 16, n = 200 forced widening in 60-99% of
runs), TPR at 5% 0.92-0.96 (0.941; one target: 0.92-0.94), TPR at 1% 0.93-0.97 (0.945) except
0.89 for one target, 100 non-members and AUC 0.9 (one allowed false positive on a steep ROC: the
estimate rests on the top two non-members and its distribution is far from normal), TPR at 0.1%
(2000 non-members) 0.93-0.97. Limits: Gaussian scores, no ties or heavy tails checked; with few
targets (T = 4) the t interval assumes roughly symmetric per-target values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize, special

__all__ = ["column_replicates", "components_interval", "threshold_bias", "median_position", "metric_intervals"]

_CHUNK_ELEMS = 2_000_000        # resamples x samples held at once
_INNER = 4                      # second-level resamples per replicate (balanced accuracy, one target)
_NESTED = 50                    # replicates resampled again (of n_boot): the corrected value's variance
_MAX_TYPE = ("balanced_accuracy", "advantage")   # a max over thresholds of the same samples


def _target_roc_parts(y: np.ndarray, s: np.ndarray):
    """For one target: descending-score order, member flag in that order, group ends (ties).
    A NaN score is a row not evaluated for this target (``protocol``): it is left out."""
    order = np.argsort(-s, kind="mergesort")
    order = order[~np.isnan(s[order])]
    ss = s[order]
    ends = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])
    return order, y[order], ends


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    b = idx.shape[0]
    off = np.arange(b)[:, None]
    return np.bincount((idx + off * n).ravel(), minlength=b * n).reshape(b, n).astype(np.int32)


def _roc_values(fns, part, cnt: np.ndarray) -> np.ndarray:
    """``float[len(fns), b]``: the metrics of one target on ``b`` resamples given as column counts."""
    order, ys, ends = part
    b = cnt.shape[0]
    c = cnt[:, order]                                    # int32 counts: exact, half the memory traffic
    cy = c * ys
    tp = np.cumsum(cy, axis=1, dtype=np.int32)[:, ends]
    fp = np.cumsum(c - cy, axis=1, dtype=np.int32)[:, ends]
    P, N = tp[:, -1:], fp[:, -1:]
    tpr, fpr = np.zeros((b, len(ends) + 1)), np.zeros((b, len(ends) + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(tp, P, out=tpr[:, 1:])
        np.divide(fp, N, out=fpr[:, 1:])
    bad = (P[:, 0] == 0) | (N[:, 0] == 0)
    if bad.any():
        tpr[bad], fpr[bad] = 0.0, np.linspace(0.0, 1.0, fpr.shape[1])
    out = np.empty((len(fns), b))
    for j, fn in enumerate(fns):
        v = np.asarray(fn(fpr, tpr), dtype=np.float64)
        v[bad] = np.nan
        out[j] = v
    return out


def column_replicates(fns: Sequence[Callable[[np.ndarray, np.ndarray], np.ndarray]], keep: np.ndarray,
                      scores: np.ndarray, *, n_boot: int, seed: int | np.random.Generator = 0,
                      nested: Sequence[int] = (), inner: int = 0, n_nested: int | None = None):
    """Per-target replicates ``float[k, T, n_boot]`` of ``k`` ROC metrics when the n sample
    columns are resampled with replacement jointly for all targets (each target's metric, its
    threshold included, recomputed on the resample). ``fns[j](fpr[B, G], tpr[B, G]) -> float[B]``
    (as :func:`privaudit.evaluation.metrics._fast_metric`). A resample where a target has an
    empty class gives NaN for it.

    With ``inner > 0``, each replicate is itself resampled ``inner`` times (a second-level
    bootstrap, its own random stream: the first-level replicates do not change) for the metrics
    ``fns[j], j in nested``; then ``(replicates, inner_mean, inner_var)`` is returned, the last
    two ``float[len(nested), T, n_boot]`` (mean and variance, ddof 1, over the inner resamples).
    ``n_nested``: only the first ``n_nested`` replicates are resampled again (the others' inner
    values are NaN); default all."""
    keep = np.asarray(keep, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    T, n = scores.shape
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    nested = list(nested) if inner > 0 else []
    irng = rng.spawn(1)[0] if nested else None
    parts = [_target_roc_parts(keep[t], scores[t]) for t in range(T)]
    vals = np.empty((len(fns), T, n_boot))
    if nested:
        n_nested = n_boot if n_nested is None else min(int(n_nested), n_boot)
        isum = np.zeros((len(nested), T, n_boot))
        isq = np.zeros((len(nested), T, n_boot))
        nfns = [fns[j] for j in nested]
    chunk = max(1, _CHUNK_ELEMS // max(n, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        cnt = _counts(idx, n)
        for t, part in enumerate(parts):
            vals[:, t, start:start + b] = _roc_values(fns, part, cnt)
        bn = min(b, n_nested - start) if nested else 0          # this chunk's replicates nested again
        for _ in range(inner if bn > 0 else 0):
            sub = _counts(np.take_along_axis(idx[:bn], irng.integers(0, n, size=(bn, n)), axis=1), n)
            for t, part in enumerate(parts):
                v = _roc_values(nfns, part, sub)
                isum[:, t, start:start + bn] += v
                isq[:, t, start:start + bn] += v * v
    if not nested:
        return vals
    imean = isum / inner
    ivar = np.maximum(isq - inner * imean ** 2, 0.0) / (inner - 1) if inner > 1 else np.zeros_like(imean)
    imean[:, :, n_nested:] = ivar[:, :, n_nested:] = np.nan
    return vals, imean, ivar


def median_position(alpha: float, n_neg: int) -> float:
    """The (fractional) rank ``j`` among ``n_neg`` non-members, counted from the highest, whose
    true FPR has median ``alpha``: the threshold just above the j-th highest non-member has true
    FPR ~ Beta(j, n_neg + 1 - j), and ``j`` solves ``median Beta(j, n_neg + 1 - j) = alpha``
    (``scipy.special.betaincinv``; about ``alpha (n_neg + 1/3) + 1/3``), clipped to ``[1, n_neg]``."""
    N = int(n_neg)

    def f(j: float) -> float:
        return float(special.betaincinv(j, N + 1.0 - j, 0.5)) - alpha   # the median of Beta(j, N + 1 - j)

    if N < 1 or f(1.0) >= 0.0:
        return 1.0
    if f(float(N)) <= 0.0:
        return float(N)
    return float(optimize.brentq(f, 1.0, float(N), xtol=1e-9))


def threshold_bias(keep: np.ndarray, scores: np.ndarray, alpha: float, values: np.ndarray, *,
                   position: str = "median") -> np.ndarray:
    """Per-target bias ``float[T]`` of a TPR at FPR ``alpha`` from thresholding at an order
    statistic of the same non-members: ``values`` minus the TPR read, interpolated, just above
    the j-th highest of the N non-members. That threshold's true FPR U is Beta(j, N + 1 - j).
    ``position="median"`` (default): ``j = median_position(alpha, N)``, median U = alpha, and as
    the ROC curve R is increasing, R(U) has median R(alpha) whatever its shape (median-unbiased;
    its mean bias was also the smaller one in ``benchmarks/coverage.py``'s settings).
    ``"mean"``: j = alpha (N + 1), E U = alpha; the TPR is then low by the curve's concavity,
    E R(U) < R(E U): -0.042 at 100 non-members, AUC 0.9, FPR 1%. The strict convention (threshold at the
    floor(alpha N) + 1-th non-member) sits at a larger true FPR: upward biased, and invisible to
    any resampling of the same scores (the bootstrap reproduces the rule)."""
    if position not in ("mean", "median"):
        raise ValueError(f"position must be 'mean' or 'median', got {position!r}")
    out = np.zeros(len(scores))
    for t in range(len(scores)):
        y, s = np.asarray(keep[t], dtype=bool), np.asarray(scores[t], dtype=np.float64)
        y, s = y[~np.isnan(s)], s[~np.isnan(s)]                               # NaN: not evaluated
        neg = np.sort(s[~y])[::-1]
        pos = np.sort(s[y])
        g = 1.0 - np.searchsorted(pos, neg, side="right") / pos.size        # members > j-th non-member
        j = alpha * (neg.size + 1) if position == "mean" else median_position(alpha, neg.size)
        u = float(np.interp(j, np.arange(1, neg.size + 1), g))
        out[t] = values[t] - u
    return out


def components_interval(per_target: np.ndarray, reps: np.ndarray, *, level: float,
                        bias: float | np.ndarray | None = None,
                        var_single: float | None = None) -> tuple[float, float, bool]:
    """Interval of the mean over targets from per-target estimates ``float[T]`` and their column
    replicates ``float[T, B]``; ``(lo, hi, widened)``. ``bias``: per target ``float[T]`` (the
    between-target variance is then that of the bias-corrected values) or one number (default:
    the per-target bootstrap bias). ``var_single``: for one target, the variance of the
    corrected estimate when it is not the replicates' variance (balanced accuracy). See the
    module docstring."""
    est_t = np.asarray(per_target, dtype=np.float64)
    T = est_t.size
    est = float(est_t.mean())
    r = reps[:, np.isfinite(reps).all(axis=0)]
    if r.shape[1] < 2:
        return est, est, False
    if bias is None:
        bias = r.mean(axis=1) - est_t
    bias_t = np.broadcast_to(np.asarray(bias, dtype=np.float64), est_t.shape)
    C = np.cov(r) if T > 1 else np.array([[np.var(r[0], ddof=1)]])
    if T > 1:
        between = float(np.var(est_t - bias_t, ddof=1)) / T             # clusters + unshared sample noise
        shared = float((C.sum() - np.trace(C)) / (T * (T - 1)))         # shared sample noise
        shared = max(shared, 0.0)
        var = between + shared
        df = (T - 1) * var ** 2 / between ** 2 if between > 0 else np.inf
    else:
        var = float(C[0, 0]) if var_single is None or not var_single > 0 else float(var_single)
        df = np.inf
    q = 1.0 - (1.0 - level) / 2.0
    z = float(special.stdtrit(df, q)) if np.isfinite(df) else float(special.ndtri(q))   # t / normal quantile
    centre, half = est - float(bias_t.mean()), z * np.sqrt(var)
    lo, hi = centre - half, centre + half
    widened = not (lo <= est <= hi)
    lo, hi = max(min(lo, est), 0.0), min(max(hi, est), 1.0)   # every metric here is a rate or AUC in [0, 1]
    return float(lo), float(hi), widened


def _corrected_variance(reps: np.ndarray, imean: np.ndarray, ivar: np.ndarray) -> float | None:
    """Variance of one target's corrected max-type value ``3 x* - 2 mean(x**)`` over the nested
    replicates, the inner Monte-Carlo noise removed: ``var - 4 mean(var(x**)) / inner``."""
    ok = np.isfinite(reps) & np.isfinite(imean)
    if ok.sum() < 2:
        return None
    corr = 3.0 * reps[ok] - 2.0 * imean[ok]
    return float(np.var(corr, ddof=1) - 4.0 * np.mean(ivar[ok]) / _INNER)


def _pooled_corrected_variances(reps: np.ndarray, imean: np.ndarray, ivar: np.ndarray) -> list[float | None]:
    """Per target, the corrected value's variance as ``ratio * var(x*)``: the ratio of the
    corrected to the plain replicate variance, pooled over the targets' nested replicates (the
    first ``_NESTED`` of each; 50 replicates alone estimate one target's variance too noisily:
    coverage 0.895 vs 0.93 with all 200), times each target's own variance over all replicates."""
    num = den = 0.0
    for t in range(len(reps)):
        ok = np.isfinite(imean[t]) & np.isfinite(reps[t])
        v = _corrected_variance(reps[t], imean[t], ivar[t])
        if v is not None and ok.sum() > 1:
            num, den = num + v, den + float(np.var(reps[t, ok], ddof=1))
    if not den > 0:
        return [None] * len(reps)
    ratio = max(num / den, 0.0)
    return [ratio * float(np.nanvar(r, ddof=1)) for r in reps]


def metric_intervals(names: Sequence[str], fns: Sequence[Callable], per_target: np.ndarray, keep: np.ndarray,
                     scores: np.ndarray, *, n_boot: int, seed: int = 0,
                     level: float = 0.95, per_target_out: dict | None = None
                     ) -> dict[str, tuple[float, float, bool]]:
    """``name -> (lo, hi, widened)`` per metric; ``per_target``: ``float[k, T]`` estimates.

    ``per_target_out``, when given, receives ``name -> [(lo, hi), ...]``, one interval per target:
    the one-target method on that target's columns of the same resamples (equal to auditing it
    alone). A max-type metric (balanced accuracy) needs, for one target, the variance of its
    corrected value: a second-level bootstrap of the first ``_NESTED`` replicates (``_INNER``
    resamples each), done for every target only when ``per_target_out`` asks for it."""
    est = np.asarray(per_target, dtype=np.float64)
    T = est.shape[1]
    nest = T == 1 or per_target_out is not None
    nested = [j for j, m in enumerate(names) if m in _MAX_TYPE] if nest else []
    if nested:
        reps, imean, ivar = column_replicates(fns, keep, scores, n_boot=n_boot, seed=seed, nested=nested,
                                              inner=_INNER, n_nested=None if T == 1 else _NESTED)
    else:
        reps = column_replicates(fns, keep, scores, n_boot=n_boot, seed=seed)
    out = {}
    for j, m in enumerate(names):
        var_t: list[float | None] = [None] * T
        boot_bias = np.nanmean(reps[j], axis=1) - est[j]                        # float[T]
        if m.startswith("tpr@"):
            bias = threshold_bias(keep, scores, float(m[4:]), est[j])
        elif m in _MAX_TYPE:                   # the bootstrap sees about half the optimism of a max
            bias = 2.0 * boot_bias
            if j in nested:                    # variance of the corrected value 3 x* - 2 mean(x**)
                k = nested.index(j)
                var_t = ([_corrected_variance(reps[j, 0], imean[k, 0], ivar[k, 0])] if T == 1 else
                         _pooled_corrected_variances(reps[j], imean[k], ivar[k]))
        else:
            bias = boot_bias
        out[m] = components_interval(est[j], reps[j], level=level, bias=bias, var_single=var_t[0] if T == 1 else None)
        if per_target_out is not None:
            bias_t = np.broadcast_to(np.asarray(bias, dtype=np.float64), (T,))
            per_target_out[m] = [out[m][:2] if T == 1 else
                                 components_interval(est[j, t:t + 1], reps[j, t:t + 1], level=level,
                                                     bias=bias_t[t:t + 1], var_single=var_t[t])[:2]
                                 for t in range(T)]
    return out
