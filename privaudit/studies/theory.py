"""The theory study: bounds that relate privacy, memorization, curvature and attack success, as
plain vectorised functions (no command and no artifacts of its own; the memorization study and
the benchmarks use them).

* The DP hypothesis-testing region: Kairouz, Oh, Viswanath, "The Composition Theorem for
  Differential Privacy", ICML 2015, Thm 2.1.
* Ravikumar, Soufleri, Hashemi, Roy, "Unveiling Privacy, Memorization, and Input Curvature
  Links", ICML 2024: Lemma 5.2, Thm 5.3, Thm 5.4.
* Ravikumar, Soufleri, Roy, "Curvature Clues: Decoding Deep Learning Privacy with Input Loss
  Curvature", NeurIPS 2024: the AUROC-vs-epsilon fit of the authors' notebook
  ``conditonal_mia_aug_dp.ipynb``; how it follows from the paper's Thm 4.2 is privaudit's
  reading (``docs/studies.md``).
* Choi, Tople, Chandrasekaran, Jha, "Why Train More? Effective and Efficient Membership Inference
  via Memorization", arXiv:2310.08015, 2023: Thm 1, Lemma 2 and Corollary 1 (advantage and
  shadow-model sample complexity through the Hellinger distance), as derived in
  ``docs/studies.md``; the Gaussian Hellinger closed form is standard.
* Yeom, Giacomelli, Fredrikson, Jha, "Privacy Risk in Machine Learning: Analyzing the Connection
  to Overfitting", IEEE CSF 2018, Thm 1: Adv <= e^eps - 1.
"""

from __future__ import annotations

import warnings

import numpy as np

from privaudit.errors import SignalError
from privaudit.studies import Study

__all__ = [
    "dp_tpr_upper_bound",
    "dp_auc_upper_bound",
    "dp_advantage_upper_bound",
    "memorization_upper_bound",
    "stability_from_dp",
    "expected_curvature_upper_bound",
    "auroc_vs_eps_fit",
    "fit_auroc_vs_eps",
    "hellinger_gaussian",
    "advantage_lower_bound_hellinger",
    "advantage_upper_bound_hellinger",
    "shadow_models_needed",
    "yeom_advantage_bound",
]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _arr(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if np.any(np.isnan(a)):
        raise SignalError(f"{name} contains NaN")
    return a


def _eps(eps) -> np.ndarray:
    e = _arr(eps, "eps")
    if np.any(e < 0):
        raise ValueError("eps must be >= 0")
    return e


def _delta(delta) -> np.ndarray:
    d = _arr(delta, "delta")
    if np.any((d < 0) | (d >= 1)):
        raise ValueError("delta must lie in [0, 1)")
    return d


def _out(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


# --------------------------------------------------------------------------------------------
# DP region (Kairouz et al. 2015)
# --------------------------------------------------------------------------------------------
def dp_tpr_upper_bound(fpr, eps, delta=0.0):
    """Largest TPR of any test at the given FPR under (eps, delta)-DP (Kairouz, Oh, Viswanath
    2015, Thm 2.1):
    ``TPR <= min(e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR), 1)`` (two-sided region)."""
    f = _arr(fpr, "fpr")
    if np.any((f < 0) | (f > 1)):
        raise ValueError("fpr must lie in [0, 1]")
    e, d = _eps(eps), _delta(delta)
    with np.errstate(over="ignore", invalid="ignore"):
        b1 = np.where(f == 0, d, np.exp(e) * f + d)
        b2 = 1.0 - np.exp(-e) * (1.0 - d - f)
    return _out(np.clip(np.minimum(np.minimum(b1, b2), 1.0), 0.0, 1.0))


def dp_auc_upper_bound(eps, delta=0.0):
    """Largest AUC of any attack under (eps, delta)-DP: exact area under
    ``dp_tpr_upper_bound`` [derived from Kairouz et al. 2015, Thm 2.1].

    The two lines meet at ``x* = (1 - delta) / (1 + e^eps)``; the second reaches 1 at
    ``1 - delta``. Area = ``e^eps x*^2/2 + delta x* + w - e^-eps w^2/2 + delta`` with
    ``w = 1 - delta - x*``. For delta = 0 this is ``e^eps / (1 + e^eps)``; 1/2 at (0, 0).
    """
    e, d = _eps(eps), _delta(delta)
    with np.errstate(over="ignore", invalid="ignore"):
        xs = (1.0 - d) / (1.0 + np.exp(e))
        w = 1.0 - d - xs
        first = np.where(xs > 0, np.exp(e) * xs * xs / 2.0, 0.0) + d * xs
        area = first + w - np.exp(-e) * w * w / 2.0 + d
    return _out(np.clip(area, 0.5, 1.0))


def dp_advantage_upper_bound(eps, delta=0.0):
    """Largest membership advantage ``max TPR - FPR`` under (eps, delta)-DP:
    ``(e^eps - 1 + 2 delta) / (e^eps + 1)``, attained at ``x*`` of ``dp_auc_upper_bound``
    [derived from Kairouz et al. 2015, Thm 2.1]."""
    e, d = _eps(eps), _delta(delta)
    with np.errstate(over="ignore", invalid="ignore"):
        adv = np.where(np.isinf(e), 1.0, (np.expm1(e) + 2.0 * d) / (np.exp(e) + 1.0))
    return _out(np.clip(adv, 0.0, 1.0))


# --------------------------------------------------------------------------------------------
# Ravikumar et al. 2024 (ICML)
# --------------------------------------------------------------------------------------------
def memorization_upper_bound(eps):
    """``mem(A, S, i) <= 1 - e^-eps`` for an eps-DP algorithm A (Ravikumar et al. 2024, ICML,
    Thm 5.4). mem is Feldman's label memorization score."""
    return _out(-np.expm1(-_eps(eps)))


def stability_from_dp(eps, L):
    """eps-DP with loss ``0 <= l <= L`` implies ``L (1 - e^-eps)`` error stability
    (Ravikumar et al. 2024, ICML, Lemma 5.2; improves ``L (e^eps - 1)``)."""
    L_ = _arr(L, "L")
    if np.any(L_ <= 0):
        raise ValueError("L (loss bound) must be > 0")
    return _out(L_ * -np.expm1(-_eps(eps)))


def expected_curvature_upper_bound(m, eps, L, c=0.0):
    """``E_{z,phi}[Curv_phi(z, S)] <= L (m + 1)(1 - e^-eps) + c2`` (Ravikumar et al. 2024,
    ICML, Thm 5.3). Assumptions: eps-DP, loss ``0 <= l <= L``, rho-Lipschitz Hessian;
    ``c2 = (4m - 1) gamma + 2(m - 1) Delta + (rho/6) E||alpha||^3`` (generalisation rate gamma,
    model bias Delta) is passed as ``c``. ``m`` = training-set size."""
    m_ = _arr(m, "m")
    if np.any(m_ < 1):
        raise ValueError("m (training-set size) must be >= 1")
    L_ = _arr(L, "L")
    if np.any(L_ <= 0):
        raise ValueError("L (loss bound) must be > 0")
    return _out(L_ * (m_ + 1.0) * -np.expm1(-_eps(eps)) + _arr(c, "c"))


# --------------------------------------------------------------------------------------------
# Curvature Clues AUROC vs eps
# --------------------------------------------------------------------------------------------
def auroc_vs_eps_fit(eps, m, s, l, c, offset=0.015):
    """``s (l m (1 - e^-eps) + l + c)^2 + offset``: the ``model`` of the Curvature Clues authors'
    notebook ``conditonal_mia_aug_dp.ipynb`` (Ravikumar et al., NeurIPS 2024) plus its plotted
    0.015 offset ("the theorem predicts an upper bound so add offset"). privaudit reads the
    squared form as a Gaussian-KL version of that paper's Thm 4.2 with the mean-curvature gap
    bounded by Thm 5.3 of Ravikumar et al. 2024 (ICML); ``docs/studies.md`` gives the argument."""
    e = _eps(eps)
    return _out(_arr(s, "s") * (_arr(l, "l") * _arr(m, "m") * -np.expm1(-e)
                                + _arr(l, "l") + _arr(c, "c")) ** 2 + _arr(offset, "offset"))


def fit_auroc_vs_eps(eps, auroc, m=None, *, offset=0.0, p0=None) -> dict:
    """Least-squares fit of ``auroc_vs_eps_fit`` with ``scipy.optimize.curve_fit``, as in the
    Curvature Clues notebook (see :func:`auroc_vs_eps_fit` for its link to the theory).

    ``m=None`` reproduces the notebook: l, m, c, s all free (over-parameterised: only
    ``a = sqrt(s) l m`` and ``b = sqrt(s)(l + c)`` are identifiable). With ``m`` given (the
    training-set size) ``s`` is fixed to 1 and ``l >= 0``, c are fitted (identifiable). The fit
    is to ``auroc - offset`` (the notebook fits with offset 0 and adds 0.015 to the plot).
    Returns ``{"s", "l", "c", "m", "offset", "a", "b", "rmse", "cov"}``.
    """
    import scipy.optimize   # here, not at import: the CLI imports every study to register it

    e = _eps(eps).ravel()
    y = _arr(auroc, "auroc").ravel()
    if e.shape != y.shape:
        raise SignalError(f"shape mismatch: eps {e.shape} vs auroc {y.shape}")
    n_free = 4 if m is None else 2
    if e.size < n_free:
        raise ValueError(f"need at least {n_free} (eps, auroc) points, got {e.size}")
    target = y - float(offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
        if m is None:
            def model4(x, l, m_, c, s):
                return s * (l * m_ * -np.expm1(-x) + l + c) ** 2
            popt, pcov = scipy.optimize.curve_fit(
                model4, e, target, p0=p0 if p0 is not None else (1.0, 1.0, 0.0, 1.0),
                maxfev=20000)
            l, m_fit, c, s = (float(v) for v in popt)
        else:
            m_fit = float(m)
            if not m_fit >= 1:
                raise ValueError(f"m (training-set size) must be >= 1, got {m}")

            def model2(x, l, c):
                return (l * m_fit * -np.expm1(-x) + l + c) ** 2
            guess = p0
            if guess is None:  # sqrt(target) is linear in u = 1 - e^-eps: start from that line
                u = -np.expm1(-e)
                slope, icpt = np.polyfit(u, np.sqrt(np.clip(target, 0, None)), 1) \
                    if np.ptp(u) > 0 else (0.0, float(np.sqrt(max(target.mean(), 0))))
                l0 = max(slope / m_fit, 1e-12)
                guess = (l0, icpt - l0)
            popt, pcov = scipy.optimize.curve_fit(
                model2, e, target, p0=guess, bounds=([0.0, -np.inf], [np.inf, np.inf]),
                maxfev=20000)
            l, c = (float(v) for v in popt)
            s = 1.0
    pred = auroc_vs_eps_fit(e, m_fit, s, l, c, offset=offset)
    rmse = float(np.sqrt(np.mean((np.asarray(pred) - y) ** 2)))
    rs = float(np.sqrt(abs(s)))
    return {"s": s, "l": l, "c": c, "m": m_fit, "offset": float(offset),
            "a": rs * l * m_fit, "b": rs * (l + c), "rmse": rmse, "cov": pcov}


# --------------------------------------------------------------------------------------------
# Choi et al. 2023 (Hellinger, sample complexity)
# --------------------------------------------------------------------------------------------
def hellinger_gaussian(mu1, s1, mu2, s2):
    """Squared Hellinger distance ``H^2 = 1/2 int (sqrt p - sqrt q)^2`` between N(mu1, s1^2) and
    N(mu2, s2^2) (standard closed form; the 1/2 convention of Choi et al. 2023, Eq. 4):
    ``1 - sqrt(2 s1 s2 / (s1^2 + s2^2)) exp(-(mu1 - mu2)^2 / (4 (s1^2 + s2^2)))``. Vectorised;
    ``s1``, ``s2`` are standard deviations (> 0)."""
    m1, m2 = _arr(mu1, "mu1"), _arr(mu2, "mu2")
    a, b = _arr(s1, "s1"), _arr(s2, "s2")
    if np.any(a <= 0) or np.any(b <= 0) or np.any(np.isinf(a)) or np.any(np.isinf(b)):
        raise ValueError("standard deviations s1, s2 must be finite and > 0")
    v = a * a + b * b
    h2 = 1.0 - np.sqrt(2.0 * a * b / v) * np.exp(-((m1 - m2) ** 2) / (4.0 * v))
    return _out(np.clip(h2, 0.0, 1.0))


def _h2(h2) -> np.ndarray:
    h = _arr(h2, "hellinger_sq")
    if np.any((h < 0) | (h > 1)):
        raise ValueError("squared Hellinger distance must lie in [0, 1]")
    return h


def advantage_lower_bound_hellinger(h2):
    """``Adv(sLLR) >= H^2(P_in, P_out)`` for the soft likelihood-ratio test on the observed
    statistic (Choi et al. 2023, Thm 1, via their Lemma 1 after Cannone et al.; derivation in
    ``docs/studies.md``). Takes the squared Hellinger distance (``hellinger_gaussian``)."""
    return _out(_h2(h2))


def advantage_upper_bound_hellinger(h2):
    """Any test's advantage (= TV distance at best) is ``<= sqrt(H^2 (2 - H^2)) <= sqrt(2) H``
    (Le Cam's inequality; Choi et al. 2023, Eq. 8 state ``TV <= sqrt(2) H``)."""
    h = _h2(h2)
    return _out(np.sqrt(h * (2.0 - h)))


def shadow_models_needed(*, mem=None, hellinger_sq=None, const: float = 1.0):
    """Shadow models needed to distinguish IN from OUT: ``N = const / H^2`` (Choi et al. 2023,
    Lemma 2: Theta(1/H^2) sample complexity), or from memorization ``N = const * 2 / mem^2``
    using ``H^2 >= TV^2/2 = mem^2/2`` (their Corollary 1, O(1/mem^2); both derived in
    ``docs/studies.md``). ``const`` is the unknown constant (a curve's
    shape, not a prescription). Give exactly one of ``mem``, ``hellinger_sq``; ``inf`` at 0."""
    if (mem is None) == (hellinger_sq is None):
        raise ValueError("give exactly one of mem= or hellinger_sq=")
    k = float(const)
    if not k > 0:
        raise ValueError(f"const must be > 0, got {const}")
    if hellinger_sq is not None:
        h = _h2(hellinger_sq)
    else:
        mm = _arr(mem, "mem")
        if np.any((mm < 0) | (mm > 1)):
            raise ValueError("mem must lie in [0, 1]")
        h = mm * mm / 2.0
    with np.errstate(divide="ignore"):
        return _out(np.where(h > 0, k / np.where(h > 0, h, 1.0), np.inf))


def yeom_advantage_bound(eps):
    """``Adv <= e^eps - 1`` for eps-DP training (Yeom et al. 2018, Thm 1); vacuous for
    eps >= ln 2, and looser than ``dp_advantage_upper_bound``."""
    return _out(np.expm1(_eps(eps)))


STUDY = Study("theory", register=lambda app: None)   # bounds only: no command, no report section
