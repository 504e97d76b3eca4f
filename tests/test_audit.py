"""Tests for privaudit.evaluation.audit: Clopper–Pearson and epsilon lower bounds."""

import math

import numpy as np
import pytest
import scipy.stats

from privaudit.errors import SignalError
from privaudit.evaluation import audit as A


# --------------------------------------------------------------------------------------------
# Clopper–Pearson
# --------------------------------------------------------------------------------------------
def test_clopper_pearson_matches_beta_quantiles():
    n, a = 37, 0.05
    k = np.arange(n + 1)
    ub = A.clopper_pearson(k, n, a, "upper")
    lb = A.clopper_pearson(k, n, a, "lower")
    ref_ub = np.array([scipy.stats.beta.ppf(1 - a, i + 1, n - i) if i < n else 1.0 for i in k])
    ref_lb = np.array([scipy.stats.beta.ppf(a, i, n - i + 1) if i > 0 else 0.0 for i in k])
    np.testing.assert_allclose(ub, ref_ub, rtol=1e-12)
    np.testing.assert_allclose(lb, ref_lb, rtol=1e-12)
    lo2, hi2 = A.clopper_pearson(k, n, a, "two")
    np.testing.assert_allclose(lo2, A.clopper_pearson(k, n, a / 2, "lower"))
    np.testing.assert_allclose(hi2, A.clopper_pearson(k, n, a / 2, "upper"))
    assert np.all(lb <= k / n) and np.all(k / n <= ub)


def test_clopper_pearson_hand_values():
    # k = 0: P[Binom(n, p) = 0] = (1-p)^n = alpha  ->  ub = 1 - alpha^(1/n)
    assert A.clopper_pearson(0, 10, 0.05) == pytest.approx(1 - 0.05 ** 0.1, rel=1e-10)
    # k = n: p^n = alpha -> lb = alpha^(1/n); ub = 1
    assert A.clopper_pearson(10, 10, 0.05, "lower") == pytest.approx(0.05 ** 0.1, rel=1e-10)
    assert A.clopper_pearson(10, 10, 0.05) == 1.0
    assert A.clopper_pearson(0, 10, 0.05, "lower") == 0.0
    # k = 1, n = 2: Beta(2, 1) cdf x^2 -> ub = sqrt(.95); Beta(1, 2) -> lb = 1 - sqrt(.95)
    assert A.clopper_pearson(1, 2, 0.05) == pytest.approx(math.sqrt(0.95), rel=1e-10)
    assert A.clopper_pearson(1, 2, 0.05, "lower") == pytest.approx(1 - math.sqrt(0.95), rel=1e-9)
    assert isinstance(A.clopper_pearson(3, 9, 0.1), float)


def test_clopper_pearson_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        A.clopper_pearson(1, 10, 1.0)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        A.clopper_pearson(11, 10, 0.05)
    with pytest.raises(ValueError, match="side"):
        A.clopper_pearson(1, 10, 0.05, "both")
    with pytest.raises(ValueError, match="n must be"):
        A.clopper_pearson(0, 0, 0.05)


# --------------------------------------------------------------------------------------------
# Nasr et al. 2021
# --------------------------------------------------------------------------------------------
def _rr(eps, n, rng):
    """Randomized response: a member outputs 1 w.p. e^eps/(1+e^eps), a non-member w.p.
    1/(1+e^eps); the mechanism is exactly eps-DP."""
    p = math.exp(eps) / (1 + math.exp(eps))
    return (rng.random(n) < p).astype(float), (rng.random(n) < 1 - p).astype(float)


@pytest.mark.parametrize("eps", [1.0, 2.0])
def test_eps_lb_never_exceeds_true_eps_randomized_response(eps):
    rng = np.random.default_rng(int(eps * 10))
    trials, alpha = 200, 0.05
    bon, spl = [], []
    for t in range(trials):
        a, b = _rr(eps, 500, rng)
        bon.append(A.eps_lower_bound(a, b, alpha=alpha).eps_lb)
        spl.append(A.eps_lower_bound(a, b, alpha=alpha, threshold="split", seed=t).eps_lb)
    bon, spl = np.array(bon), np.array(spl)
    assert np.mean(bon > eps) <= alpha
    assert np.mean(spl > eps) <= alpha
    assert np.mean(bon) > 0.6 * eps      # not vacuous


@pytest.mark.parametrize("eps", [1.0, 2.0])
def test_eps_lb_valid_laplace_continuous_scores(eps):
    # Laplace mechanism, sensitivity 1, scale 1/eps: exactly eps-DP; continuous scores give
    # hundreds of thresholds, so the multiplicity correction matters
    rng = np.random.default_rng(7)
    vals = np.array([A.eps_lower_bound(rng.laplace(1, 1 / eps, 400),
                                       rng.laplace(0, 1 / eps, 400)).eps_lb
                     for _ in range(200)])
    assert np.mean(vals > eps) <= 0.05


def test_eps_lb_close_with_many_samples():
    rng = np.random.default_rng(0)
    a, b = _rr(1.0, 200_000, rng)
    res = A.eps_lower_bound(a, b)
    assert 0.95 < res.eps_lb <= 1.0
    assert res.confidence == pytest.approx(0.95)
    assert res.threshold == 1.0
    assert res.counts["n_pos"] == 200_000 and res.counts["tp"] + res.counts["fn"] == 200_000
    assert res.method.startswith("nasr2021")


def test_corrected_bounds_below_raw_max():
    rng = np.random.default_rng(3)
    for seed in range(10):
        a, b = rng.normal(1.0, 1, 300), rng.normal(0, 1, 300)
        _, eps_raw = A.eps_per_threshold(a, b, alpha=0.05)
        raw = max(0.0, eps_raw.max())
        assert A.eps_lower_bound(a, b).eps_lb <= raw + 1e-12
        assert A.eps_lower_bound(a, b, threshold="split", seed=seed).eps_lb <= raw + 1e-12
    # and strictly below it when there are many thresholds
    assert A.eps_lower_bound(a, b).eps_lb < raw


def test_explicit_threshold_hand_counts():
    a = np.array([0.9, 0.8, 0.7, 0.2])
    b = np.array([0.6, 0.3, 0.2, 0.1])
    res = A.eps_lower_bound(a, b, threshold=0.65, two_sided=False, alpha=0.1)
    assert res.counts == {"tp": 3, "fp": 0, "fn": 1, "tn": 4, "n_pos": 4, "n_neg": 4}
    fnr_ub = scipy.stats.beta.ppf(1 - 0.05, 2, 3)           # CP_upper(1, 4, alpha/2)
    fpr_ub = 1 - 0.05 ** (1 / 4)                            # CP_upper(0, 4, alpha/2)
    assert res.eps_lb == pytest.approx(max(0.0, math.log(1 - fnr_ub) - math.log(fpr_ub)))
    assert res.threshold == 0.65


def test_delta_and_two_sided_monotone():
    rng = np.random.default_rng(4)
    a, b = _rr(2.0, 5000, rng)
    e0 = A.eps_lower_bound(a, b).eps_lb
    e1 = A.eps_lower_bound(a, b, delta=1e-2).eps_lb
    one = A.eps_lower_bound(a, b, two_sided=False).eps_lb
    assert e1 <= e0 and one <= e0 and e0 > 1.5


def test_no_signal_gives_small_bound():
    rng = np.random.default_rng(5)
    vals = [A.eps_lower_bound(rng.normal(size=500), rng.normal(size=500)).eps_lb
            for _ in range(20)]
    assert np.mean(np.array(vals) == 0.0) >= 0.9


def test_eps_lb_bad_input():
    with pytest.raises(SignalError, match="NaN"):
        A.eps_lower_bound([1.0, np.nan], [0.0, 1.0])
    with pytest.raises(SignalError, match="empty"):
        A.eps_lower_bound([], [0.0, 1.0])
    with pytest.raises(ValueError, match="alpha"):
        A.eps_lower_bound([1.0], [0.0], alpha=0.0)
    with pytest.raises(ValueError, match="delta"):
        A.eps_lower_bound([1.0], [0.0], delta=1.0)
    with pytest.raises(ValueError, match="threshold"):
        A.eps_lower_bound([1.0], [0.0], threshold="max")
    with pytest.raises(SignalError, match="split"):
        A.eps_lower_bound([1.0], [0.0], threshold="split")


# --------------------------------------------------------------------------------------------
# Jagielski et al. 2020
# --------------------------------------------------------------------------------------------
def test_group_bound_hand_values_and_k_scaling():
    pois = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    clean = np.array([0.5, 0.4, 0.3, 0.2, 0.65])
    r1 = A.eps_lower_bound_group(pois, clean, 1, alpha=0.05, threshold=0.55)
    # 4/5 poisoned above, 1/5 clean above; statsmodels proportion_confint(method="beta")
    p1 = scipy.stats.beta.ppf(0.025, 4, 2)
    p0 = scipy.stats.beta.ppf(0.975, 2, 4)
    assert p0 + p1 <= 1
    assert r1.eps_lb == pytest.approx(max(0.0, math.log(p1 / p0)))
    assert r1.counts["poisoned_above"] == 4 and r1.counts["clean_above"] == 1
    r2 = A.eps_lower_bound_group(pois, clean, 2, alpha=0.05, threshold=0.55)
    assert r2.eps_lb == pytest.approx(r1.eps_lb / 2)


def test_group_bound_swap_branch():
    # 50/50 poisoned above, 30/50 clean above -> p0_ub + p1_lb > 1 -> use (1-p1, 1-p0)
    pois = np.r_[np.ones(50), np.zeros(0)]
    clean = np.r_[np.ones(30), np.zeros(20)]
    res = A.eps_lower_bound_group(pois, clean, 1, alpha=0.05, threshold=0.5)
    p1 = 0.025 ** (1 / 50)                                  # CP lower, k = n
    p0 = scipy.stats.beta.ppf(0.975, 31, 20)
    assert p0 + p1 > 1
    assert res.eps_lb == pytest.approx(math.log((1 - p0) / (1 - p1)))


def test_group_bound_valid_under_group_privacy():
    # k copies of an eps-DP Laplace canary shift the score by k: the k-group is k*eps-DP,
    # so ln(p1/p0)/k must not exceed eps
    rng = np.random.default_rng(11)
    eps, k = 1.0, 3
    vals = np.array([A.eps_lower_bound_group(rng.laplace(k, 1 / eps, 300),
                                             rng.laplace(0, 1 / eps, 300), k).eps_lb
                     for _ in range(100)])
    assert np.mean(vals > eps) <= 0.05 and vals.mean() > 0.3
    raw = A.eps_lower_bound_group(rng.laplace(k, 1, 300), rng.laplace(0, 1, 300), k)
    assert raw.details["n_candidates"] >= 2


# --------------------------------------------------------------------------------------------
# Steinke, Nasr, Jagielski 2023
# --------------------------------------------------------------------------------------------
def test_one_run_p_value_hand():
    # delta = 0: p = P[Binom(r, q) >= v]; eps = 0 -> q = 1/2
    assert A.one_run_p_value(100, 10, 10, 0.0, 0.0) == pytest.approx(2.0 ** -10)
    assert A.one_run_p_value(100, 10, 8, 0.0, 0.0) == pytest.approx(56 / 1024)
    # all-correct, delta = 0: eps_lb solves expit(eps)^r = p_target
    r = 10
    q = 0.05 ** (1 / r)
    eps_star = math.log(q / (1 - q))
    assert A.one_run_eps_from_counts(100, r, r, delta=0.0) == pytest.approx(eps_star, abs=2e-5)
    # delta adds alpha*delta*2m
    p_delta = A.one_run_p_value(100, 10, 8, 0.5, 1e-3)
    q = 1 / (1 + math.exp(-0.5))
    beta = scipy.stats.binom.sf(7, 10, q)
    alpha_term = max(sum(scipy.stats.binom.pmf(8 - j, 10, q) for j in range(1, i + 1)) / i
                     for i in range(1, 9))
    assert p_delta == pytest.approx(beta + alpha_term * 1e-3 * 200)


def test_one_run_monotone_in_v():
    eps = [A.one_run_eps_from_counts(1000, 200, v, delta=1e-5) for v in range(100, 201, 10)]
    assert all(e2 >= e1 for e1, e2 in zip(eps, eps[1:]))
    assert eps[0] == 0.0 and eps[-1] > 2.0


def test_one_run_no_signal():
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(40):
        inc = rng.random(1000) < 0.5
        vals.append(A.eps_one_run(rng.normal(size=1000), inc, k_pos=100, k_neg=100,
                                  delta=1e-5).eps_lb)
    vals = np.array(vals)
    assert np.mean(vals == 0.0) >= 0.85 and vals.max() < 0.5


def test_one_run_grows_with_m_under_perfect_separation():
    rng = np.random.default_rng(1)
    out = []
    for m in (100, 1000, 10000):
        inc = rng.random(m) < 0.5
        res = A.eps_one_run(inc + 0.1 * rng.random(m), inc, k_pos=m // 20, k_neg=m // 20,
                            delta=1e-5)
        assert res.counts["v"] == res.counts["r"] == 2 * (m // 20)
        out.append(res.eps_lb)
    assert out[0] < out[1] < out[2]


def test_power_is_the_bound_of_a_perfect_attack_and_caps_every_bound():
    rng = np.random.default_rng(3)
    m, kp, kn, d, p = 400, 40, 40, 1e-5, 0.05 / 15
    inc = rng.random(m) < 0.5
    power = A.one_run_power(m, kp, kn, delta=d, p_target=p)
    assert power == pytest.approx(A.eps_one_run(inc.astype(float), inc, k_pos=kp, k_neg=kn, delta=d,
                                                p_target=p).eps_lb)
    assert power > 0
    for eps in (0.5, 2.0, 8.0):
        score = np.where(rng.random(m) < 1 / (1 + math.exp(-eps)), inc, ~inc).astype(float)
        assert A.eps_one_run(score, inc, k_pos=kp, k_neg=kn, delta=d, p_target=p).eps_lb <= power
    n_pos, n_neg = 9, 7
    cp_power = A.clopper_pearson_power(n_pos, n_neg, delta=d, alpha=0.05)
    assert cp_power == pytest.approx(A.eps_lower_bound(np.ones(n_pos), np.zeros(n_neg), delta=d, alpha=0.05,
                                                       threshold=0.5).eps_lb)
    for threshold in ("bonferroni", "split", 0.5):
        for eps in (1.0, 4.0, 20.0):
            pos, neg = _rr(eps, n_pos, rng)[0], _rr(eps, n_neg, rng)[1]
            try:
                b = A.eps_lower_bound(pos, neg, delta=d, alpha=0.05, threshold=threshold).eps_lb
            except SignalError:            # an empty split half
                continue
            assert b <= cp_power + 1e-12
    assert A.clopper_pearson_power(0, 5, delta=d) == 0.0
    with pytest.raises(ValueError):
        A.one_run_power(10, 8, 8, delta=d)


def test_one_run_valid_randomized_response():
    # each canary's score is eps-DP randomized response of its inclusion bit
    rng = np.random.default_rng(2)
    eps, m, trials = 1.0, 1000, 200
    p = 1 / (1 + math.exp(-eps))
    vals = []
    for _ in range(trials):
        inc = rng.random(m) < 0.5
        score = np.where(rng.random(m) < p, inc, ~inc).astype(float)
        vals.append(A.eps_one_run(score, inc, k_pos=100, k_neg=100, delta=0.0).eps_lb)
    vals = np.array(vals)
    # at the null boundary the rejection rate is <= 0.05 in expectation (+ 2 s.e. of 200 trials)
    assert np.mean(vals > eps) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / trials)
    assert vals.mean() > 0.3


def test_one_run_bad_input():
    s, inc = np.arange(10.0), np.arange(10) % 2 == 0
    with pytest.raises(SignalError, match="shape mismatch"):
        A.eps_one_run(s, inc[:-1], k_pos=1, k_neg=1, delta=0)
    with pytest.raises(ValueError, match="k_pos"):
        A.eps_one_run(s, inc, k_pos=8, k_neg=8, delta=0)
    with pytest.raises(ValueError, match="p_target"):
        A.eps_one_run(s, inc, k_pos=1, k_neg=1, delta=0, p_target=1.5)
    with pytest.raises(ValueError, match="v <= r <= m"):
        A.one_run_p_value(10, 5, 6, 1.0, 0.0)


# --------------------------------------------------------------------------------------------
# DP region
# --------------------------------------------------------------------------------------------
def test_dp_bound_violations():
    e = 1.0
    fpr, tpr = 1 / (1 + math.e), math.e / (1 + math.e)      # randomized response at eps = 1
    assert not A.dp_bound_violations(tpr, fpr, e, 0.0)
    assert A.dp_bound_violations(tpr, fpr, 0.9, 0.0)
    assert A.dp_bound_violations(tpr, fpr, 0.9, 0.05)        # e^.9 * .269 + .05 = .712 < .731
    assert not A.dp_bound_violations(tpr, fpr, 0.9, 0.1)     # .762 >= .731
    # second inequality: 1 - FPR <= e^eps (1 - TPR) + delta
    assert A.dp_bound_violations(0.999, 0.5, 1.0, 0.0)
    got = A.dp_bound_violations(np.array([0.5, 0.9]), np.array([0.5, 0.1]), 1.0, 0.0)
    np.testing.assert_array_equal(got, [False, True])
    with pytest.raises(SignalError):
        A.dp_bound_violations([0.5, np.nan], [0.1, 0.2], 1.0, 0.0)
