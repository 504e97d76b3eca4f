"""Difficulty-calibrated loss attacks: per-example (or population) thresholds on the loss.

Signal ``loss`` ``[n, A]`` (reference ``[R, n, A]``); every attack here first averages the loss
over the augmented queries, ``l(x) = mean_a loss_a(x)``, for the target and each reference model.
Higher score = member (lower loss than expected).
"""

from __future__ import annotations

import numpy as np

from privaudit.attacks._common import (masked_mean_var, masked_quantile, query_mean,
                                       require_counts, validate)
from privaudit.errors import ConfigError, SignalError


def _losses(name, target, ref, ref_keep, labels, need_ref=True):
    target, ref, keep, _ = validate(target, ref, ref_keep, labels, name=name, need_ref=need_ref)
    return query_mean(target), query_mean(ref), keep


def sablayrolles(target, ref, ref_keep, *, labels) -> np.ndarray:
    """Sablayrolles, Douze, Ollivier, Schmid, Jégou, "White-box vs Black-box: Bayes Optimal
    Strategies for Membership Inference", ICML 2019 (MAST: membership attack with a
    sample-dependent threshold tau(x)), in the form evaluated by Carlini et al. 2022, Sec. V-C:

    ``score(x) = -(l(x) - tau_x)``, ``tau_x = (mu_in(x) + mu_out(x)) / 2``,

    with ``mu_in``/``mu_out`` the mean query-averaged loss of the reference models trained with /
    without x. Online: every sample needs >= 1 IN and >= 1 OUT reference model.
    """
    name = "sablayrolles"
    tl, rl, keep = _losses(name, target, ref, ref_keep, labels)
    c_in, mu_in, _ = masked_mean_var(rl, keep)
    c_out, mu_out, _ = masked_mean_var(rl, ~keep)
    require_counts(c_in, name=name, side="IN")
    require_counts(c_out, name=name, side="OUT")
    return -(tl - 0.5 * (mu_in + mu_out))


def watson(target, ref, ref_keep, *, labels) -> np.ndarray:
    """Watson, Guo, Cormode, Sablayrolles, "On the Importance of Difficulty Calibration in
    Membership Inference Attacks", ICLR 2022 (difficulty-calibrated score
    ``s_cal(x) = s(x) - E_{g ~ ref}[s_g(x)]`` with s = -loss), offline form:

    ``score(x) = -(l(x) - mu_out(x))``, ``mu_out`` = mean loss of the OUT reference models.

    Every sample needs >= 1 OUT reference model; IN rows of ``ref`` are ignored.
    """
    name = "watson"
    tl, rl, keep = _losses(name, target, ref, ref_keep, labels)
    c_out, mu_out, _ = masked_mean_var(rl, ~keep)
    require_counts(c_out, name=name, side="OUT")
    return -(tl - mu_out)


def ye_r(target, ref, ref_keep, *, labels, alpha: float | None = None) -> np.ndarray:
    """Attack-R of Ye, Maddi, Murakonda, Bindschaedler, Shokri, "Enhanced Membership Inference
    Attacks against Machine Learning Models", CCS 2022 (Attack R: per-example threshold
    ``c_alpha(x)`` = alpha-quantile of the losses of reference models trained without x; predict
    member when ``l(x) < c_alpha(x)``). Offline; IN rows of ``ref`` are ignored.

    Default (``alpha=None``): ``score(x) = #{OUT refs r: l_r(x) >= l(x)} / #OUT refs(x)``, the
    fraction of the sample's OUT reference losses at or above the target's loss. Thresholding this
    score at ``1 - alpha`` is Attack-R at level alpha, so one sweep traces Attack-R's ROC over all
    alpha (it takes only ``#OUT + 1`` distinct values per sample, hence FPRs below ``1/#OUT``
    cannot be targeted, as noted by Carlini et al. 2022, Sec. V-C).

    ``alpha=float`` reproduces the fixed-quantile variant of the Curvature-Clues notebooks:
    ``score(x) = -(l(x) - q_alpha(x))`` with ``q_alpha`` the alpha-quantile
    (``np.nanpercentile(out, 100 alpha)``, linear interpolation; the notebooks use 1e-4).
    """
    name = "ye_r"
    tl, rl, keep = _losses(name, target, ref, ref_keep, labels)
    out = ~keep
    c_out = out.sum(axis=0)
    require_counts(c_out, name=name, side="OUT")
    if alpha is None:
        return ((rl >= tl) & out).sum(axis=0) / c_out
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"{name}: alpha must lie in [0, 1], got {alpha!r}")
    return -(tl - masked_quantile(rl, out, float(alpha)))


def ye_p(target, ref=None, ref_keep=None, *, labels, population=None) -> np.ndarray:
    """Attack-P of Ye et al., CCS 2022 (Attack P: the threshold is the alpha-quantile of
    the *target* model's losses on population data, which it was not trained on):

    ``score(x) = #{z in Z: l(z) >= l(x)} / |Z|``,

    thresholding at ``1 - alpha`` is Attack-P at level alpha. ``population``: bool ``[n]`` mask of
    the samples forming Z (default: all samples). This is a **global** threshold: the score is a
    non-increasing function of the loss alone (the same ROC as LOSS up to ties), no reference
    models are used (``ref`` is only shape-checked), and x itself counts in Z when it belongs to
    it, which keeps the score an exact function of ``l(x)``.
    """
    name = "ye_p"
    tl, _, _ = _losses(name, target, ref, ref_keep, labels, need_ref=False)
    if population is None:
        pop = tl
    else:
        mask = np.asarray(population)
        if mask.shape != tl.shape or mask.dtype != bool:
            raise SignalError(f"{name}: population must be a bool mask of shape {tl.shape}, "
                              f"got {mask.dtype} {mask.shape}")
        pop = tl[mask]
    if pop.size == 0:
        raise SignalError(f"{name}: population is empty")
    srt = np.sort(pop)
    below = np.searchsorted(srt, tl, side="left")
    return (srt.size - below) / srt.size
