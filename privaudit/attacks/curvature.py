"""Input-loss-curvature attacks, Curv ZO NLL and Curv ZO LR (Ravikumar, Soufleri, Roy,
"Curvature Clues: Decoding Deep Learning Privacy with Input Loss Curvature", NeurIPS 2024;
official notebooks DeepakTatachar/Curvature-Clues).

Signal ``curvature``: raw non-negative zero-order curvature estimates, ``target [n, A]``,
``ref [R, n, A]``; the attacks work on ``s = log(curv + 1e-22)``. Per sample i and query a the
reference models give ``mu_in, v_in`` (mean and ddof=0 variance of s over the IN models) and
``mu_out, v_out`` (OUT models). Training points sit in flatter regions (lower curvature), so the
fitted means usually put members below non-members; the tests below need no sign assumption.
Online: every sample needs >= 1 IN and >= 1 OUT reference model.

Clean definitions (default, ``reference_quirks=False``):

* a per-example std from fewer than 2 observations falls back to the global (pooled over all
  samples, per query) std, as in LiRA; ``eps`` (default 1e-30) is added to every std.
* NLL: equal-variance Gaussian LRT (pooled per-example sigma), summed over queries.
* LR: unequal-variance Gaussian LRT, product over queries (sum of log-ratios).

``reference_quirks=True`` reproduces the scoring of the official notebooks exactly
(DeepakTatachar/Curvature-Clues, ``conditonal_mia_aug_{cifar10,cifar100,imagenet}.ipynb``): with
``nll(s; mu, v) = (s - mu)^2 / (2 v^2) + log(v^2)/2 + log(2 pi)/2`` (the *variance* v plugged in
where sigma belongs), NLL = ``-sum_a [nll(s; mu_in, v_in + 1e-32) - nll(s; mu_out, v_in + 1e-32)]``
(the IN variance in both terms) and LR = ``L_in / (L_out + 1e-22)`` with
``L_side = sum_a exp(-nll(s; mu_side, v_side + 1e-22))`` (a *sum* of per-query likelihoods).
"""

from __future__ import annotations

import numpy as np

from privaudit.attacks._common import (gaussian_logpdf, gaussian_side, masked_mean_var,
                                       require_counts, validate)

LOG_EPS = 1e-22


def _prepare(name, target, ref, ref_keep, labels):
    target, ref, keep, _ = validate(target, ref, ref_keep, labels, name=name, kind="nonneg")
    require_counts(keep.sum(axis=0), name=name, side="IN")
    require_counts((~keep).sum(axis=0), name=name, side="OUT")
    return np.log(target + LOG_EPS), np.log(ref + LOG_EPS), keep


def _quirk_nll(s, mu, v):
    """Notebook helper: Gaussian NLL with the variance v used as sigma."""
    return (s - mu) ** 2 / (2 * v**2) + 0.5 * np.log(v**2) + 0.5 * np.log(2 * np.pi)


def curv_zo_nll(target, ref, ref_keep, *, labels, reference_quirks: bool = False,
                eps: float = 1e-30) -> np.ndarray:
    """Curv ZO NLL, Ravikumar et al. NeurIPS 2024 (the paper's main black-box curvature score;
    notebooks ``get_nll``-based score), on ``s = log(curv + 1e-22)``:

    clean (default): equal-variance Gaussian log-likelihood ratio with the pooled per-example
    sigma ``sigma_p^2 = (n_in v_in + n_out v_out) / (n_in + n_out)`` (ddof=0), a per-example
    standardised mean-shift test summed over queries,
    ``score = sum_a [(s_a - mu_out)^2 - (s_a - mu_in)^2] / (2 sigma_p^2)``.
    A sample with fewer than 2 observations on both sides uses the global pooled sigma.

    ``reference_quirks=True``: ``-sum_a [nll(s; mu_in, v_in + 1e-32) - nll(s; mu_out,
    v_in + 1e-32)]`` exactly as the notebooks (module docstring). Higher = member.
    """
    name = "curv_zo_nll"
    s_t, s_r, keep = _prepare(name, target, ref, ref_keep, labels)
    c_in, mu_in, v_in = masked_mean_var(s_r, keep)
    c_out, mu_out, v_out = masked_mean_var(s_r, ~keep)
    if reference_quirks:
        v = v_in + 1e-32
        return -(_quirk_nll(s_t, mu_in, v) - _quirk_nll(s_t, mu_out, v)).sum(axis=1)
    c_in, c_out = c_in[:, None].astype(float), c_out[:, None].astype(float)
    pooled = (c_in * v_in + c_out * v_out) / (c_in + c_out)
    ok = (c_in >= 2) | (c_out >= 2)
    if ok.any():
        w = (c_in + c_out)[ok[:, 0]]
        glob = (w * pooled[ok[:, 0]]).sum(axis=0) / w.sum()
    else:
        glob = np.var(s_r, axis=(0, 1))
    sigma = np.sqrt(np.where(ok, pooled, glob)) + eps
    return (((s_t - mu_out) ** 2 - (s_t - mu_in) ** 2) / (2 * sigma**2)).sum(axis=1)


def curv_zo_lr(target, ref, ref_keep, *, labels, reference_quirks: bool = False,
               eps: float = 1e-30) -> np.ndarray:
    """Curv ZO LR, Ravikumar et al. NeurIPS 2024 (the notebooks' likelihood-ratio score, best at
    low FPR), on ``s = log(curv + 1e-22)``:

    clean (default): unequal-variance Gaussian log-likelihood ratio with separate per-example
    ``sigma_in``, ``sigma_out`` (ddof=0, + ``eps``), product over queries:
    ``score = sum_a [log N(s_a; mu_in, sigma_in^2) - log N(s_a; mu_out, sigma_out^2)]``.

    ``reference_quirks=True``: ``L_in / (L_out + 1e-22)`` with per-query likelihoods *summed*
    and the variance used as sigma, exactly as the notebooks (module docstring). Higher = member.
    """
    name = "curv_zo_lr"
    s_t, s_r, keep = _prepare(name, target, ref, ref_keep, labels)
    if reference_quirks:
        _, mu_in, v_in = masked_mean_var(s_r, keep)
        _, mu_out, v_out = masked_mean_var(s_r, ~keep)
        l_in = np.exp(-_quirk_nll(s_t, mu_in, v_in + 1e-22)).sum(axis=1)
        l_out = np.exp(-_quirk_nll(s_t, mu_out, v_out + 1e-22)).sum(axis=1)
        return l_in / (l_out + 1e-22)
    opts = dict(name=name, center="mean", variance="per_example", equal_counts=False, floor=eps)
    mu_in, s_in = gaussian_side(s_r, keep, side="IN", **opts)
    mu_out, s_out = gaussian_side(s_r, ~keep, side="OUT", **opts)
    return (gaussian_logpdf(s_t, mu_in, s_in) - gaussian_logpdf(s_t, mu_out, s_out)).sum(axis=1)
