"""Per-sample statistics over a population: the LiRA privacy score and the TPR each sample gets
at a global threshold (one definition each, used by the report and by every study)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privaudit.errors import ConfigError, SignalError


# --------------------------------------------------------------------------------------------
# LiRA privacy score
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
    """LiRA per-example privacy score (Carlini et al., "Membership Inference Attacks From First
    Principles", IEEE S&P 2022, §VII-B)

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
    """Rows of ``scores`` [T, n] flagged at the strict threshold (``docs/ARCHITECTURE.md``: the
    largest ROC operating point with FPR <= fpr, no interpolation, as LiRA's ``plot.py``): with
    k = floor(fpr * n_neg), flag ``score > s_(k+1)``, the (k+1)-th largest negative score of the
    row (everything if k >= n_neg).
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


def per_sample_rates(scores: np.ndarray, keep_targets: np.ndarray, fpr: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample false- and true-positive rates of an attack over several target models.

    ``scores`` [T, n] attack scores (higher = member) against T target models, ``keep_targets``
    [T, n] their membership. For each target, one global threshold is set at the strict
    TPR@FPR operating point (see :func:`strict_threshold_flags`); then for each sample

        tpr_i = #{t : keep[t, i] and flagged[t, i]} / #{t : keep[t, i]}
        fpr_i = #{t : not keep[t, i] and flagged[t, i]} / #{t : not keep[t, i]}

    i.e. the fraction of the targets that contain (do not contain) sample i in which it is
    flagged as a member. NaN for a sample that is IN (OUT) for no target. Returns
    ``(fpr_i, tpr_i)``, each float [n].
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
    n_out = keep_targets.shape[0] - n_in
    tp = (flags & keep_targets).sum(axis=0)
    fp = (flags & ~keep_targets).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_out > 0, fp / n_out, np.nan), np.where(n_in > 0, tp / n_in, np.nan)


def per_sample_tpr(scores: np.ndarray, keep_targets: np.ndarray, fpr: float = 1e-3) -> np.ndarray:
    """Per-sample true-positive rate at each target's global threshold: ``tpr_i`` of
    :func:`per_sample_rates` (the fraction of the targets containing sample i that flag it)."""
    return per_sample_rates(scores, keep_targets, fpr)[1]
