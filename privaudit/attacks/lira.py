"""LiRA, the Likelihood Ratio Attack (Carlini, Chien, Nasr, Song, Terzis, Tramèr, "Membership
Inference Attacks From First Principles", IEEE S&P 2022).

Signal: LiRA's logit-scaled confidence ``phi`` (Sec. VI-A), ``target [n, A]``, ``ref [R, n, A]``.
Per sample i and augmented query a, the reference models give
``Q_in(i, a) = N(mu_in, sigma_in^2)`` (models trained on i) and ``Q_out(i, a)`` (the others).
With A queries the paper fits A-dimensional *spherical* Gaussians (its multi-query extension),
i.e. the log-likelihoods of the queries add up; like the reference code we report their mean over
queries (a monotone rescaling of the sum).

Estimation details (paper / reference code ``research/mi_lira_2021/plot.py``):

* ``center="mean"`` (paper, Algorithm 1) or ``"median"`` (reference code ``np.median``).
* standard deviations are the ddof=0 std around the per-sample mean (``np.std``), plus the
  reference code's floor ``+1e-30``.
* ``variance="per_example"`` (Algorithm 1) or ``"global"`` (Sec. VI-B, "fixed variance"): the
  per-sample centers are kept and one sigma per side and per query is estimated from all the
  observations of all samples. ``global_std_mode="within"`` (default) pools the deviations from
  each sample's own mean (the maximum-likelihood sigma of the shared-variance model);
  ``"total"`` reproduces the reference code's ``np.std(dat_in)``: one scalar over all samples and
  all queries around the grand mean (it also absorbs the spread of the per-sample means).
* A sample with fewer than 2 observations on a side has no per-example std: it falls back to
  that side's global std (``global_std_mode``). If no sample has 2 observations on a side, the
  ``within`` global std of that side is not estimable and the ``total`` std is used.
* ``equal_counts=True`` (reference code): every sample uses only the first ``min_i |IN_i|`` IN
  and first ``min_i |OUT_i|`` OUT reference models (in reference-model order).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from privaudit.attacks._common import choice, validate
from privaudit.attacks._common import gaussian_logpdf as _logpdf
from privaudit.attacks._common import gaussian_side as _side
from privaudit.errors import ConfigError


def _check_options(name, center, variance, global_std_mode):
    choice(name, "center", center, ("mean", "median"))
    choice(name, "variance", variance, ("per_example", "global"))
    choice(name, "global_std_mode", global_std_mode, ("within", "total"))


def lira_online(target, ref, ref_keep, *, labels, variance: str = "per_example",
                center: str = "mean", equal_counts: bool = False,
                global_std_quirk: bool = False, global_std_mode: str = "within") -> np.ndarray:
    """Online LiRA, Carlini et al. 2022, Algorithm 1, with the multi-query spherical Gaussian:

    ``score(i) = mean_a [ log N(phi_a; mu_in(i,a), sigma_in(i,a)^2)
                         - log N(phi_a; mu_out(i,a), sigma_out(i,a)^2) ]``.

    Higher = member. Every sample needs >= 1 IN and >= 1 OUT reference model.

    Options (module docstring): ``variance``, ``center``, ``equal_counts``, ``global_std_mode``.
    ``global_std_quirk=True`` (only with ``variance="global"``) reproduces the reference code's
    fixed-variance online mode, where the IN std is used for both sides
    (``std_in = std_out = np.std(dat_in)``); combine it with ``global_std_mode="total"``,
    ``center="median"`` and ``equal_counts=True`` for a bit-faithful ``generate_ours``.
    """
    name = "lira_online"
    _check_options(name, center, variance, global_std_mode)
    if global_std_quirk and variance != "global":
        raise ConfigError(f"{name}: global_std_quirk=True needs variance='global'")
    target, ref, keep, _ = validate(target, ref, ref_keep, labels, name=name)
    opts = dict(name=name, center=center, variance=variance, equal_counts=equal_counts,
                global_std_mode=global_std_mode)
    mu_in, s_in = _side(ref, keep, side="IN", **opts)
    mu_out, s_out = _side(ref, ~keep, side="OUT", **opts)
    if global_std_quirk:
        s_out = s_in
    return (_logpdf(target, mu_in, s_in) - _logpdf(target, mu_out, s_out)).mean(axis=1)


def lira_offline(target, ref, ref_keep, *, labels, variance: str = "per_example",
                 center: str = "mean", offline_test: str = "one_sided",
                 equal_counts: bool = False, global_std_mode: str = "within") -> np.ndarray:
    """Offline LiRA, Carlini et al. 2022, Eq. (4): only OUT reference models are used
    and the test is one-sided, ``Lambda = 1 - Pr[Z > phi_obs]``, ``Z ~ N(mu_out, sigma_out^2)``:

    ``score(i) = mean_a log Phi((phi_a - mu_out(i,a)) / sigma_out(i,a))``

    (log of Eq. 4 per query, averaged over queries = the spherical multi-query likelihood).
    Higher phi than the OUT models = member. Every sample needs >= 1 OUT reference model; the
    IN rows of ``ref`` are ignored.

    ``offline_test="two_sided"`` reproduces the reference code (``generate_ours_offline``, then
    ``sweep`` negates): ``score = -mean_a log N(phi_a; mu_out, sigma_out^2)``, a two-sided
    density test. ``variance="global"``: one OUT sigma (reference: ``std_out = np.std(dat_out)``,
    use ``global_std_mode="total"``). Other options: module docstring.
    """
    name = "lira_offline"
    _check_options(name, center, variance, global_std_mode)
    choice(name, "offline_test", offline_test, ("one_sided", "two_sided"))
    target, ref, keep, _ = validate(target, ref, ref_keep, labels, name=name)
    mu_out, s_out = _side(ref, ~keep, name=name, side="OUT", center=center, variance=variance,
                          equal_counts=equal_counts, global_std_mode=global_std_mode)
    if offline_test == "one_sided":
        return log_ndtr((target - mu_out) / s_out).mean(axis=1)
    return -_logpdf(target, mu_out, s_out).mean(axis=1)
