"""Tests for privaudit.studies.theory (the bounds of the theory study)."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from privaudit.errors import SignalError
from privaudit.studies import theory as T


# --------------------------------------------------------------------------------------------
# DP region
# --------------------------------------------------------------------------------------------
def test_dp_tpr_upper_bound_hand_values():
    f = np.linspace(0, 1, 11)
    np.testing.assert_allclose(T.dp_tpr_upper_bound(f, 0.0, 0.0), f, atol=1e-15)  # no leakage
    # eps = ln 2, delta = 0: min(2 x, 1 - (1 - x)/2) = min(2x, (1 + x)/2)
    e = math.log(2)
    assert T.dp_tpr_upper_bound(0.2, e) == pytest.approx(0.4)
    assert T.dp_tpr_upper_bound(0.5, e) == pytest.approx(0.75)
    assert T.dp_tpr_upper_bound(0.0, e, 0.01) == pytest.approx(0.01)
    assert T.dp_tpr_upper_bound(1.0, 3.0, 0.1) == 1.0
    assert T.dp_tpr_upper_bound(0.3, np.inf) == 1.0


def test_dp_auc_upper_bound():
    assert T.dp_auc_upper_bound(0, 0) == pytest.approx(0.5)
    # pure DP: area = e^eps / (1 + e^eps)
    for e in (0.5, 1.0, 3.0):
        assert T.dp_auc_upper_bound(e) == pytest.approx(1 / (1 + math.exp(-e)))
    for e, d in ((1.0, 0.0), (2.0, 1e-3), (0.0, 0.2), (10.0, 0.01)):
        pts = [(1 - d) / (1 + math.exp(e)), 1 - d]
        num = scipy.integrate.quad(lambda x: T.dp_tpr_upper_bound(x, e, d), 0, 1,
                                   points=pts, limit=200)[0]
        assert T.dp_auc_upper_bound(e, d) == pytest.approx(num, abs=1e-9)
    vals = T.dp_auc_upper_bound(np.array([0.0, 1.0, 5.0, 800.0, np.inf]))
    assert np.all(np.diff(vals) >= 0) and vals[-1] == 1.0


def test_dp_advantage_upper_bound_is_max_of_region():
    f = np.linspace(0, 1, 200001)
    for e, d in ((0.5, 0.0), (1.0, 1e-2), (3.0, 0.1)):
        grid = np.max(T.dp_tpr_upper_bound(f, e, d) - f)
        assert T.dp_advantage_upper_bound(e, d) == pytest.approx(grid, abs=1e-5)
    assert T.dp_advantage_upper_bound(0.0) == 0.0
    # tighter than Yeom's e^eps - 1
    e = np.array([0.1, 0.5, 1.0])
    assert np.all(T.dp_advantage_upper_bound(e) <= T.yeom_advantage_bound(e))


# --------------------------------------------------------------------------------------------
# Ravikumar et al. ICML'24
# --------------------------------------------------------------------------------------------
def test_memorization_stability_curvature():
    assert T.memorization_upper_bound(0.0) == 0.0
    assert T.memorization_upper_bound(math.log(2)) == pytest.approx(0.5)
    assert T.memorization_upper_bound(np.inf) == 1.0
    assert T.stability_from_dp(math.log(4), 2.0) == pytest.approx(1.5)
    # L (m + 1)(1 - e^-eps) + c with m = 9, eps = ln 2, L = 2, c = 0.5 -> 2 * 10 * .5 + .5
    assert T.expected_curvature_upper_bound(9, math.log(2), 2.0, 0.5) == pytest.approx(10.5)
    got = T.expected_curvature_upper_bound(np.array([1, 10, 100]), 1.0, 1.0)
    assert np.all(np.diff(got) > 0)


def test_yeom_bound():
    assert T.yeom_advantage_bound(0.0) == 0.0
    assert T.yeom_advantage_bound(math.log(2)) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# AUROC vs eps fit (Curvature Clues)
# --------------------------------------------------------------------------------------------
EPS_NB = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0])


def test_auroc_vs_eps_fit_formula():
    # s (l m (1 - e^-eps) + l + c)^2 + offset, eps = ln 2 -> u = 1/2
    got = T.auroc_vs_eps_fit(math.log(2), m=10, s=2.0, l=0.1, c=0.2, offset=0.015)
    assert got == pytest.approx(2.0 * (0.1 * 10 * 0.5 + 0.1 + 0.2) ** 2 + 0.015)


def test_fit_recovers_parameters():
    rng = np.random.default_rng(0)
    m, l, c = 50000, 1e-5, 0.5 - 1e-5
    clean = T.auroc_vs_eps_fit(EPS_NB, m, 1.0, l, c, offset=0.0)
    fit = T.fit_auroc_vs_eps(EPS_NB, clean, m)
    assert fit["l"] == pytest.approx(l, rel=1e-6) and fit["c"] == pytest.approx(c, rel=1e-6)
    noisy = clean + rng.normal(0, 1e-3, EPS_NB.size)
    fit = T.fit_auroc_vs_eps(EPS_NB, noisy, m)
    assert fit["l"] == pytest.approx(l, rel=0.02) and fit["c"] == pytest.approx(c, abs=0.01)
    assert fit["rmse"] < 2e-3
    # with an offset: fit auroc - offset
    fit_o = T.fit_auroc_vs_eps(EPS_NB, clean + 0.015, m, offset=0.015)
    assert fit_o["l"] == pytest.approx(l, rel=1e-6)
    # notebook mode (all four free): only a = sqrt(s) l m and b = sqrt(s)(l + c) identifiable
    nb = T.fit_auroc_vs_eps(EPS_NB, noisy)
    assert abs(nb["a"]) == pytest.approx(0.5, abs=0.01)
    assert abs(nb["b"]) == pytest.approx(0.5, abs=0.01)
    # s != 1 in the data: identifiable combinations recovered
    y2 = T.auroc_vs_eps_fit(EPS_NB, m, 4.0, l / 2, c / 2, offset=0.0)
    fit2 = T.fit_auroc_vs_eps(EPS_NB, y2, m)
    assert fit2["a"] == pytest.approx(0.5, rel=1e-6) and fit2["b"] == pytest.approx(0.5, rel=1e-6)


def test_fit_bad_input():
    with pytest.raises(SignalError, match="shape mismatch"):
        T.fit_auroc_vs_eps(EPS_NB, EPS_NB[:-1], 100)
    with pytest.raises(ValueError, match="at least"):
        T.fit_auroc_vs_eps([1.0], [0.6], 100)
    with pytest.raises(SignalError, match="NaN"):
        T.fit_auroc_vs_eps([1.0, np.nan, 2.0], [0.6, 0.7, 0.8], 100)


# --------------------------------------------------------------------------------------------
# Choi et al. (Hellinger, sample complexity)
# --------------------------------------------------------------------------------------------
def test_hellinger_gaussian():
    assert T.hellinger_gaussian(0.3, 1.7, 0.3, 1.7) == pytest.approx(0.0, abs=1e-15)
    assert T.hellinger_gaussian(0, 1, 1, 1) == pytest.approx(1 - math.exp(-1 / 8))
    assert T.hellinger_gaussian(0, 1, 0, 2) == pytest.approx(1 - math.sqrt(4 / 5))
    assert T.hellinger_gaussian(0, 1, 1, 2) == pytest.approx(T.hellinger_gaussian(1, 2, 0, 1))
    # numerical: H^2 = 1 - int sqrt(p q)
    for args in ((0.0, 1.0, 2.0, 0.5), (-1.0, 3.0, 1.0, 1.0)):
        m1, s1, m2, s2 = args
        bc = scipy.integrate.quad(lambda x: math.sqrt(scipy.stats.norm.pdf(x, m1, s1)
                                                      * scipy.stats.norm.pdf(x, m2, s2)),
                                  -40, 40, limit=200)[0]
        assert T.hellinger_gaussian(*args) == pytest.approx(1 - bc, abs=1e-8)
    got = T.hellinger_gaussian(np.zeros(3), 1.0, np.array([0.0, 1.0, 10.0]), 1.0)
    assert got.shape == (3,) and got[0] == 0 and got[2] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="standard deviations"):
        T.hellinger_gaussian(0, 0.0, 1, 1)
    with pytest.raises(SignalError, match="NaN"):
        T.hellinger_gaussian(np.nan, 1, 0, 1)


def test_advantage_bounds_bracket_true_tv():
    # optimal advantage between N(0,1) and N(1,1) = TV = 2 Phi(1/2) - 1
    tv = 2 * scipy.stats.norm.cdf(0.5) - 1
    h2 = T.hellinger_gaussian(0, 1, 1, 1)
    assert T.advantage_lower_bound_hellinger(h2) <= tv <= T.advantage_upper_bound_hellinger(h2)
    assert T.advantage_lower_bound_hellinger(0.0) == 0.0
    with pytest.raises(ValueError):
        T.advantage_lower_bound_hellinger(1.5)


def test_shadow_models_needed():
    assert T.shadow_models_needed(hellinger_sq=0.1) == pytest.approx(10.0)
    assert T.shadow_models_needed(mem=0.5, const=3.0) == pytest.approx(3.0 * 2 / 0.25)
    n = T.shadow_models_needed(mem=np.array([0.0, 0.1, 0.2, 0.4]))
    assert np.isinf(n[0]) and np.all(np.diff(n[1:]) < 0)
    assert n[1] / n[2] == pytest.approx(4.0)          # quadratic in 1/mem
    with pytest.raises(ValueError, match="exactly one"):
        T.shadow_models_needed(mem=0.5, hellinger_sq=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        T.shadow_models_needed()


def test_bad_eps_delta():
    with pytest.raises(ValueError, match="eps"):
        T.memorization_upper_bound(-1.0)
    with pytest.raises(ValueError, match="delta"):
        T.dp_auc_upper_bound(1.0, 1.0)
    with pytest.raises(ValueError, match="fpr"):
        T.dp_tpr_upper_bound(1.5, 1.0)
    with pytest.raises(SignalError, match="NaN"):
        T.dp_tpr_upper_bound(0.5, np.nan)
