"""Label memorization, influence, per-sample vulnerability and their correlation.

References
----------
* Feldman & Zhang 2020, "What neural networks memorize and why" (NeurIPS), estimator as released in
  google-research/heldout-influence-estimation ``mnist-example/mnist_infl_mem.py``::

      mem_hat(i)    = mean_{k: i in S_k} correct_k[i] - mean_{k: i not in S_k} correct_k[i]
      infl_hat(i,j) = same masked difference evaluated on held-out example j

  (spec ALGORITHMS.md §6.1). The reference code divides by ``max(count, 1e-10)``, i.e. it silently
  returns 0 for a sample with no IN (or no OUT) model; here such samples get NaN and
  ``valid = False`` instead.
* Carlini et al. 2022 (LiRA), §VII-B: per-example privacy score
  ``d(x) = |mu_in - mu_out| / (sigma_in + sigma_out)`` on logit-scaled confidences (spec §1.2); Choi
  et al. ("Why Train More?", arXiv 2310.08015) use it as their "privacy score" (seed footnote 4).
* Choi et al. §4.1: Spearman rank correlation with the bands |rho| < 0.4 weak, 0.4-0.59 moderate,
  >= 0.6 strong, significance at p < 0.05 (spec §6.3).

All functions are pure NumPy/SciPy on arrays, float64 inside, no per-sample Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from privaudit.errors import ConfigError, SignalError

__all__ = [
    "MemorizationResult",
    "InfluenceResult",
    "GaussianParams",
    "SpearmanResult",
    "feldman_zhang",
    "influence",
    "in_out_gaussian_params",
    "privacy_score",
    "per_sample_tpr",
    "strict_threshold_flags",
    "spearman_with_ci",
    "correlation_band",
    "memorization_report",
]

# Choi et al. §4.1 bands on |rho| (p < 0.05 for significance).
BANDS = ((0.4, "weak"), (0.6, "moderate"), (np.inf, "strong"))
SIGNIFICANCE = 0.05


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------

def _keep(keep: np.ndarray, name: str = "keep") -> np.ndarray:
    keep = np.asarray(keep)
    if keep.ndim != 2:
        raise SignalError(f"{name} must be bool [M, n], got shape {keep.shape}")
    if keep.dtype != bool:
        if not np.isin(keep, (0, 1)).all():
            raise SignalError(f"{name} must be bool (or 0/1) [M, n]")
        keep = keep.astype(bool)
    return keep


def _outcomes(values: np.ndarray, name: str, m: int | None = None) -> np.ndarray:
    """Per-model outcomes [M, k]: bool 0/1 correctness is returned as bool (memory: 1 byte per
    entry; 2000 models x 60k samples stay at 120 MB), anything else as float64 in [0, 1]."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise SignalError(f"{name} must be [M, n] (one row per model), got shape {values.shape}")
    if m is not None and values.shape[0] != m:
        raise SignalError(f"{name} has {values.shape[0]} model rows but keep has {m}")
    if values.dtype == bool:
        return values
    if np.issubdtype(values.dtype, np.integer) and np.isin(values, (0, 1)).all():
        return values.astype(bool)
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise SignalError(f"{name} contains NaN or inf")
    if values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0:
        raise SignalError(f"{name} must lie in [0, 1] (0/1 correctness, or a probability)")
    return values


# --------------------------------------------------------------------------------------------
# Feldman-Zhang memorization and influence
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemorizationResult:
    """Per-sample Feldman-Zhang memorization estimate.

    ``mem[i] = p_in[i] - p_out[i]``; ``se[i] = sqrt(v_in/n_in + v_out/n_out)`` where ``v`` is the
    (ddof=0) variance of the outcome over the IN (OUT) models, i.e. ``p(1-p)`` for 0/1 correctness.
    ``valid[i]`` is False (and mem/se/p are NaN) where sample i has no IN or no OUT model.
    """

    mem: np.ndarray       # float[n]
    se: np.ndarray        # float[n]
    p_in: np.ndarray      # float[n] mean outcome over models trained WITH i
    p_out: np.ndarray     # float[n] mean outcome over models trained WITHOUT i
    n_in: np.ndarray      # int[n]
    n_out: np.ndarray     # int[n]
    valid: np.ndarray     # bool[n]: at least one IN and one OUT model

    @property
    def n_invalid(self) -> int:
        return int((~self.valid).sum())

    def summary(self) -> dict:
        """JSON-friendly summary (counts, mean/quantiles of the valid estimates)."""
        m = self.mem[self.valid]
        q = np.quantile(m, [0.5, 0.9, 0.99]).tolist() if m.size else [np.nan] * 3
        return {"n": int(self.mem.size), "n_invalid": self.n_invalid,
                "n_invalid_no_in": int((self.n_in == 0).sum()),
                "n_invalid_no_out": int((self.n_out == 0).sum()),
                "mean": float(m.mean()) if m.size else float("nan"),
                "median": q[0], "q90": q[1], "q99": q[2],
                "mean_se": float(self.se[self.valid].mean()) if m.size else float("nan")}


@dataclass(frozen=True)
class InfluenceResult:
    """Feldman-Zhang influence of train sample i on held-out sample j, layout ``[n_train, t]``.

    The reference code returns ``[t, n_train]``; use ``.infl.T`` for that layout.
    Rows of train samples without an IN or an OUT model are NaN (``valid[i]`` False).
    """

    infl: np.ndarray      # float[n, t]
    se: np.ndarray        # float[n, t]
    n_in: np.ndarray      # int[n]
    n_out: np.ndarray     # int[n]
    valid: np.ndarray     # bool[n]


def _masked_sums(values: np.ndarray, keep: np.ndarray):
    """Sums of ``values[:, j]`` and of its squares over the IN rows (``keep[:, i]``) and the OUT
    rows of every train sample i: four [n, k] arrays from one (binary) or two matrix products.
    Binary ``values`` use float32 products (integer counts are exact below 2**24 models) and
    x^2 = x."""
    if values.dtype == bool:
        s_in = (keep.astype(np.float32).T @ values.astype(np.float32)).astype(np.float64)
        s_out = values.sum(axis=0, dtype=np.float64)[None, :] - s_in
        return s_in, s_out, s_in, s_out
    w = keep.astype(np.float64)
    sq = values * values
    s_in, q_in = w.T @ values, w.T @ sq
    return s_in, values.sum(axis=0)[None, :] - s_in, q_in, sq.sum(axis=0)[None, :] - q_in


def feldman_zhang(correct: np.ndarray, keep: np.ndarray) -> MemorizationResult:
    """Feldman & Zhang (2020) memorization estimate from a population of subset-trained models.

    ``correct``: bool [M, n], ``correct[m, i] = 1[h_m(x_i) = y_i]`` (a probability of the true class
    in [0, 1] is also accepted, as in LeakPro's variant); ``keep``: bool [M, n] training-set masks.
    Any subset ratio works (the estimator uses whatever IN/OUT split ``keep`` has; FZ and Choi et
    al. use 0.7).

    mem_i = mean_{m: keep[m,i]} correct[m,i] - mean_{m: not keep[m,i]} correct[m,i]
    se_i  = sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)    (0/1 outcomes)

    Samples with no IN or no OUT model get NaN and ``valid = False`` (the reference code returns 0).
    """
    keep = _keep(keep)
    c = _outcomes(correct, "correct", keep.shape[0])
    if c.shape != keep.shape:
        raise SignalError(f"correct has shape {c.shape} but keep has {keep.shape}")
    m = keep.shape[0]
    n_in = keep.sum(axis=0).astype(np.float64)
    n_out = m - n_in
    valid = (n_in > 0) & (n_out > 0)
    if c.dtype == bool:                      # counts only; x^2 = x
        s_in = (c & keep).sum(axis=0).astype(np.float64)
        s_all = c.sum(axis=0).astype(np.float64)
        q_in, q_all = s_in, s_all
    else:
        s_in = np.where(keep, c, 0.0).sum(axis=0)
        s_all = c.sum(axis=0)
        q_in = np.where(keep, c * c, 0.0).sum(axis=0)
        q_all = (c * c).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in = s_in / n_in
        p_out = (s_all - s_in) / n_out
        v_in = np.maximum(q_in / n_in - p_in**2, 0.0)
        v_out = np.maximum((q_all - q_in) / n_out - p_out**2, 0.0)
        se = np.sqrt(v_in / n_in + v_out / n_out)
    mem = p_in - p_out
    for arr in (mem, se, p_in, p_out):
        arr[~valid] = np.nan
    return MemorizationResult(mem=mem, se=se, p_in=p_in, p_out=p_out,
                              n_in=n_in.astype(np.int64), n_out=n_out.astype(np.int64),
                              valid=valid)


def influence(correct_test: np.ndarray, keep: np.ndarray) -> InfluenceResult:
    """Feldman & Zhang (2020) influence estimate ``infl[i, j]`` of train sample i on held-out j.

    ``correct_test``: bool [M, t] correctness of each model on the held-out set; ``keep``: bool
    [M, n]. infl[i, j] = mean_{m: keep[m,i]} correct_test[m,j] - mean_{m: not keep[m,i]}
    correct_test[m,j], computed with matrix products (``keep.T @ correct_test``; the OUT sums are
    the column totals minus the IN sums), as in the reference ``_masked_dot``; standard errors as
    in :func:`feldman_zhang`, per (i, j). Memory is O(n * t) float64.
    """
    keep = _keep(keep)
    c = _outcomes(correct_test, "correct_test", keep.shape[0])
    n_in = keep.sum(axis=0).astype(np.int64)
    n_out = keep.shape[0] - n_in
    valid = (n_in > 0) & (n_out > 0)
    s_in, s_out, q_in, q_out = _masked_sums(c, keep)
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = n_in[:, None].astype(np.float64), n_out[:, None].astype(np.float64)
        mean_in, mean_out = s_in / a, s_out / b
        var_in = np.maximum(q_in / a - mean_in**2, 0.0)
        var_out = np.maximum(q_out / b - mean_out**2, 0.0)
        se = np.sqrt(var_in / a + var_out / b)
    infl = mean_in - mean_out
    infl[~valid] = np.nan
    se[~valid] = np.nan
    return InfluenceResult(infl=infl, se=se, n_in=n_in, n_out=n_out, valid=valid)


# --------------------------------------------------------------------------------------------
# LiRA privacy score
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GaussianParams:
    """Per-sample, per-query IN/OUT Gaussian fits of a signal over a population: arrays [n, A]
    (means, ddof=0 standard deviations as in LiRA's score code) and counts [n]."""

    mu_in: np.ndarray
    sd_in: np.ndarray
    mu_out: np.ndarray
    sd_out: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray


def _signal_3d(phi: np.ndarray, keep: np.ndarray) -> np.ndarray:
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim == 2:
        phi = phi[:, :, None]
    if phi.ndim != 3:
        raise SignalError(f"signal must be [M, n, A] or [M, n], got shape {phi.shape}")
    if phi.shape[:2] != keep.shape:
        raise SignalError(f"signal has shape {phi.shape} but keep has {keep.shape}")
    if not np.isfinite(phi).all():
        raise SignalError("signal contains NaN or inf")
    return phi


def in_out_gaussian_params(phi: np.ndarray, keep: np.ndarray) -> GaussianParams:
    """Fit N(mu_in, sd_in) and N(mu_out, sd_out) per sample and query from ``phi`` [M, n, A] (or
    [M, n]) and ``keep`` [M, n]. NaN where a sample has no IN (OUT) model."""
    keep = _keep(keep)
    x = _signal_3d(phi, keep)
    out = {}
    for side, mask in (("in", keep), ("out", ~keep)):
        w = mask.astype(np.float64)[:, :, None]
        cnt = mask.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = (w * x).sum(axis=0) / cnt[:, None]
            var = (w * (x - np.nan_to_num(mu)[None]) ** 2).sum(axis=0) / cnt[:, None]
        out[f"mu_{side}"] = mu
        out[f"sd_{side}"] = np.sqrt(var)
        out[f"n_{side}"] = cnt.astype(np.int64)
    return GaussianParams(**out)


def privacy_score(phi: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """LiRA per-example privacy score (Carlini et al. 2022, §VII-B; spec §1.2)

        d(x) = |mu_in - mu_out| / (sigma_in + sigma_out)

    computed per augmented query from ``phi`` [M, n, A] (or [M, n] = one query) over the whole
    population ``keep`` [M, n], then averaged over the A queries. sigma is the ddof=0 standard
    deviation (LiRA score code). Conventions: 0/0 -> 0 (identical point masses), x/0 -> inf
    (separated point masses); NaN where a sample has no IN or no OUT model.
    Higher = more vulnerable; LeakPro flags d >= 2 as "vulnerable".
    """
    g = in_out_gaussian_params(phi, keep)
    num = np.abs(g.mu_in - g.mu_out)
    den = g.sd_in + g.sd_out
    with np.errstate(invalid="ignore", divide="ignore"):
        d = num / den
    d = np.where((den == 0) & (num == 0), 0.0, d)
    d = np.where((den == 0) & (num > 0), np.inf, d)
    return d.mean(axis=1)


# --------------------------------------------------------------------------------------------
# per-sample TPR at a fixed FPR
# --------------------------------------------------------------------------------------------

def strict_threshold_flags(scores: np.ndarray, negatives: np.ndarray, fpr: float) -> np.ndarray:
    """Rows of ``scores`` [T, n] flagged at the strict threshold (ARCHITECTURE.md: largest ROC
    operating point with FPR <= fpr, no interpolation): with k = floor(fpr * n_neg), flag
    ``score > s_(k+1)``, the (k+1)-th largest negative score of the row (everything if k >= n_neg).
    ``negatives`` [T, n] marks the non-members of each row. Returns bool [T, n]."""
    scores = np.asarray(scores, dtype=np.float64)
    negatives = np.asarray(negatives, dtype=bool)
    n_neg = negatives.sum(axis=1)
    k = np.floor(fpr * n_neg + 1e-9).astype(np.int64)
    neg_sorted = -np.sort(-np.where(negatives, scores, -np.inf), axis=1)   # descending
    idx = np.minimum(k, scores.shape[1] - 1)
    thr = np.take_along_axis(neg_sorted, idx[:, None], axis=1)[:, 0]
    thr = np.where(k >= n_neg, -np.inf, thr)
    return scores > thr[:, None]


def per_sample_tpr(scores: np.ndarray, keep_targets: np.ndarray, fpr: float = 1e-3) -> np.ndarray:
    """Per-sample true-positive rate of an attack over several target models.

    ``scores`` [T, n] attack scores (higher = member) against T target models, ``keep_targets``
    [T, n] their membership. For each target, one global threshold is set at the strict
    TPR@FPR operating point (see :func:`strict_threshold_flags`); then for each sample

        tpr_i = #{t : keep[t, i] and flagged[t, i]} / #{t : keep[t, i]}

    i.e. the fraction of the targets that contain sample i in which it is flagged as a member.
    NaN for a sample that is IN no target.
    """
    if not 0.0 <= fpr <= 1.0:
        raise ConfigError(f"fpr must lie in [0, 1], got {fpr}")
    keep_targets = _keep(keep_targets, "keep_targets")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != keep_targets.shape:
        raise SignalError(f"scores have shape {scores.shape} but keep_targets has {keep_targets.shape}")
    if not np.isfinite(scores).all():
        raise SignalError("scores contain NaN or inf")
    flags = strict_threshold_flags(scores, ~keep_targets, fpr)
    n_in = keep_targets.sum(axis=0)
    hits = (flags & keep_targets).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_in > 0, hits / n_in, np.nan)


# --------------------------------------------------------------------------------------------
# Spearman correlation with bootstrap CI, and the memorization report
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpearmanResult:
    rho: float
    pvalue: float
    ci_low: float
    ci_high: float
    n: int                 # pairs used (NaN pairs dropped)
    band: str              # "weak" | "moderate" | "strong" | "undefined"
    significant: bool      # pvalue < 0.05
    confidence: float = 0.95
    n_boot: int = 0

    def as_dict(self) -> dict:
        return {"rho": self.rho, "pvalue": self.pvalue, "ci": [self.ci_low, self.ci_high],
                "confidence": self.confidence, "n_boot": self.n_boot, "n": self.n,
                "band": self.band, "significant": self.significant}


def correlation_band(rho: float) -> str:
    """Choi et al. §4.1 strength band of |rho|: < 0.4 weak, 0.4-0.59 moderate, >= 0.6 strong."""
    if not np.isfinite(rho):
        return "undefined"
    a = abs(rho)
    for upper, name in BANDS:
        if a < upper:
            return name
    return "strong"


def _tie_groups(x: np.ndarray):
    """Sort order of x, the tie group of each element (groups numbered in ascending value) and
    the start position of every group in the sorted order."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.concatenate([[True], xs[1:] != xs[:-1]])
    starts = np.flatnonzero(new)
    group_sorted = np.cumsum(new) - 1
    group = np.empty(x.size, dtype=np.int64)
    group[order] = group_sorted
    return order, group, starts


def _weighted_midranks(w: np.ndarray, order: np.ndarray, group: np.ndarray,
                       starts: np.ndarray) -> np.ndarray:
    """Average ranks of every original element inside the resamples given by the counts
    ``w`` [B, n] (element i appears w[b, i] times), ties averaged: no sorting per resample."""
    counts = np.add.reduceat(w[:, order], starts, axis=1).astype(np.float64)    # [B, G]
    below = np.cumsum(counts, axis=1) - counts
    return (below + (counts + 1.0) / 2.0)[:, group]


def _bootstrap_spearman(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Spearman rho of ``n_boot`` paired resamples (indices ``rng.integers(0, n, (B, n))``):
    resamples are represented by their counts, ranks by weighted mid-ranks; NaN when a resample
    is constant in a or b. Equals ``spearmanr(a[idx], b[idx])`` row by row."""
    n = a.size
    rng = np.random.default_rng(seed)
    ga, gb = _tie_groups(a), _tie_groups(b)
    chunk = max(1, int(4_000_000 // n))
    out = []
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(k, n))
        flat = (np.arange(k)[:, None] * n + idx).ravel()
        w = np.bincount(flat, minlength=k * n).reshape(k, n)
        ra = _weighted_midranks(w, *ga) - (n + 1) / 2.0
        rb = _weighted_midranks(w, *gb) - (n + 1) / 2.0
        cov = (w * ra * rb).sum(axis=1)
        den = np.sqrt((w * ra * ra).sum(axis=1) * (w * rb * rb).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, cov / np.where(den > 0, den, 1.0), np.nan))
    return np.concatenate(out) if out else np.empty(0)


def spearman_with_ci(a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> SpearmanResult:
    """Spearman rank correlation of a and b [n] with scipy's p-value and a percentile bootstrap
    CI (pairs resampled with replacement, ``n_boot`` resamples; vectorised, no per-resample
    sorting: resamples as counts, weighted mid-ranks).
    Pairs where either value is NaN are dropped; inf values are ranked normally.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise SignalError(f"spearman inputs differ in length: {a.size} vs {b.size}")
    if n_boot < 0 or not 0.0 < confidence < 1.0:
        raise ConfigError(f"need n_boot >= 0 and 0 < confidence < 1, got {n_boot}, {confidence}")
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    n = int(a.size)
    if n < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return SpearmanResult(np.nan, np.nan, np.nan, np.nan, n, "undefined", False,
                              confidence, n_boot)
    res = stats.spearmanr(a, b)
    rho, p = float(res.statistic), float(res.pvalue)
    lo = hi = np.nan
    if n_boot > 0:
        boots = _bootstrap_spearman(a, b, n_boot, seed)
        tail = (1.0 - confidence) / 2.0
        if np.isfinite(boots).any():
            lo, hi = (float(v) for v in np.nanquantile(boots, [tail, 1.0 - tail]))
    return SpearmanResult(rho, p, lo, hi, n, correlation_band(rho), bool(p < SIGNIFICANCE),
                          confidence, n_boot)


def memorization_report(mem: np.ndarray, privacy_score: np.ndarray | None = None,
                        per_sample_tpr: np.ndarray | None = None, *, n_boot: int = 1000,
                        seed: int = 0, confidence: float = 0.95) -> dict:
    """Choi et al. §4.2-style report: Spearman rho (+ p-value, bootstrap CI, band) of the
    memorization score against the LiRA privacy score and against the per-sample TPR.

    ``mem`` may be a float[n] array or a :class:`MemorizationResult`. Either comparison may be
    omitted (None). Returns a JSON-friendly dict::

        {"n": n, "bands": {...}, "mem": {summary},
         "mem_vs_privacy_score": {rho, pvalue, ci, band, significant, n, ...},
         "mem_vs_per_sample_tpr": {...}}
    """
    summary = None
    if isinstance(mem, MemorizationResult):
        summary = mem.summary()
        mem = mem.mem
    mem = np.asarray(mem, dtype=np.float64).ravel()
    report: dict = {"n": int(mem.size),
                    "bands": {"weak": "|rho| < 0.4", "moderate": "0.4 <= |rho| < 0.6",
                              "strong": "|rho| >= 0.6", "significance": f"p < {SIGNIFICANCE}"}}
    if summary is not None:
        report["mem"] = summary
    for name, other in (("privacy_score", privacy_score), ("per_sample_tpr", per_sample_tpr)):
        if other is None:
            continue
        other = np.asarray(other, dtype=np.float64).ravel()
        if other.size != mem.size:
            raise SignalError(f"{name} has {other.size} samples but mem has {mem.size}")
        report[f"mem_vs_{name}"] = spearman_with_ci(mem, other, n_boot=n_boot, seed=seed,
                                                    confidence=confidence).as_dict()
    return report
