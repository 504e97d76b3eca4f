"""The shared statistics (privaudit.evaluation.statistics): Spearman with a bootstrap interval,
the bootstrap interval of a mean, and the resample ranks behind both."""

import math

import numpy as np
import pytest
from scipy import stats

from privaudit.errors import ConfigError, SignalError
from privaudit.evaluation.statistics import (ResampleRanks, bootstrap_interval, bootstrap_mean_ci, pearson_rows,
                                             spearman_rows, spearman_with_ci)


def test_spearman_hand_computed():
    """a = 1..5, b = (5, 6, 7, 8, 7): ranks of b are (1, 2, 3.5, 5, 3.5) (the tie shares 3 and 4).
    Centred ranks (-2, -1, 0, 1, 2) and (-2, -1, .5, 2, .5): covariance sum 4 + 1 + 0 + 2 + 1 = 8,
    sums of squares 10 and 9.5, so rho = 8 / sqrt(95); p from t = rho sqrt(3 / (1 - rho^2)), 3 dof."""
    res = spearman_with_ci([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], n_boot=400, seed=3)
    rho = 8 / math.sqrt(95)
    assert res.rho == pytest.approx(rho, abs=1e-12)
    t = rho * math.sqrt(3 / (1 - rho**2))
    assert res.p_value == pytest.approx(2 * stats.t.sf(t, 3), rel=1e-9)
    assert res.n == 5 and res.n_boot == 400 and res.level == 0.95
    assert res.lo <= res.rho <= res.hi <= 1.0 and res.lo < 0.5      # 5 pairs: a wide interval
    doc = res.to_json()
    assert set(doc) >= {"rho", "p_value", "lo", "hi", "n", "level", "n_boot"}


def test_spearman_interval_contains_rho_and_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(400)
    y = x + 1.6 * rng.standard_normal(400)
    res = spearman_with_ci(x, y, n_boot=300, seed=2)
    ref = stats.spearmanr(x, y)
    assert res.rho == pytest.approx(ref.statistic) and res.p_value == pytest.approx(ref.pvalue)
    assert res.lo < res.rho < res.hi and res.hi - res.lo < 0.25
    assert spearman_with_ci(x, y, n_boot=300, seed=2) == res
    assert spearman_with_ci(x, y, n_boot=300, seed=3).lo != res.lo
    # a 90 % interval lies inside the 95 % one of the same resamples
    narrow = spearman_with_ci(x, y, n_boot=300, seed=2, level=0.9)
    assert res.lo <= narrow.lo <= narrow.hi <= res.hi
    # a perfect monotone relation: every resample has rho = 1
    a = np.arange(60, dtype=float)
    perfect = spearman_with_ci(a, a**3, n_boot=200, seed=1)
    assert perfect.rho == perfect.lo == perfect.hi == pytest.approx(1.0)
    for seed in range(5):                      # small, skewed samples: the interval still brackets rho
        u = rng.standard_normal(12)
        r = spearman_with_ci(u, u + rng.standard_normal(12), n_boot=50, seed=seed)
        assert r.lo <= r.rho <= r.hi


def test_spearman_drops_nan_and_explains_undefined():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(50), rng.standard_normal(50)
    y[:10] = np.nan
    res = spearman_with_ci(x, y, n_boot=0)
    assert res.n == 40 and math.isnan(res.lo) and math.isnan(res.hi)
    assert res.rho == pytest.approx(stats.spearmanr(x[10:], y[10:]).statistic)
    const = spearman_with_ci(x, np.ones_like(x), n_boot=20)
    assert math.isnan(const.rho) and math.isnan(const.p_value) and "constant" in const.note
    assert "note" in const.to_json() and "note" not in res.to_json()
    few = spearman_with_ci([1.0, 2.0], [3.0, 4.0])
    assert math.isnan(few.rho) and few.n == 2 and "3" in few.note
    with pytest.raises(SignalError):
        spearman_with_ci(x, y[:10])
    with pytest.raises(ConfigError):
        spearman_with_ci(x, x, level=1.5)
    with pytest.raises(ConfigError):
        spearman_with_ci(x, x, n_boot=-1)


def test_resample_ranks_equal_scipy_on_the_same_resamples():
    rng = np.random.default_rng(8)
    a = rng.integers(0, 5, 40).astype(float)          # many ties
    b = a + rng.integers(0, 3, 40)
    b[0] = np.inf
    idx = rng.integers(0, 40, size=(30, 40))
    got = pearson_rows(ResampleRanks(a)(idx), ResampleRanks(b)(idx))
    ref = np.array([stats.spearmanr(a[i], b[i]).statistic for i in idx])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    np.testing.assert_allclose(spearman_rows(a[idx], b[idx]), ref, atol=1e-12)
    np.testing.assert_array_equal(ResampleRanks(a)(np.arange(40)[None])[0], stats.rankdata(a))


def test_bootstrap_mean_ci():
    rng = np.random.default_rng(2)
    v = rng.normal(3.0, 1.0, size=200)
    lo, hi = bootstrap_mean_ci(v, n_boot=500, seed=0)
    se = v.std(ddof=1) / math.sqrt(v.size)
    assert lo < v.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)     # the normal-theory width
    assert bootstrap_mean_ci(v, n_boot=500, seed=0) == (lo, hi)
    assert bootstrap_mean_ci([4.0]) == (4.0, 4.0)
    assert all(math.isnan(x) for x in bootstrap_mean_ci([]))
    assert all(math.isnan(x) for x in bootstrap_mean_ci(v, n_boot=0))
    assert bootstrap_mean_ci([2.0, 2.0, 2.0], n_boot=50) == (2.0, 2.0)


def test_bootstrap_interval_of_several_statistics():
    """k statistics of the same resamples come back as k intervals; NaN resamples are left out."""
    rng = np.random.default_rng(4)
    v = rng.standard_normal(100)
    lo, hi = bootstrap_interval(lambda idx: np.stack([v[idx].mean(-1), v[idx].max(-1)]), v.size, n_boot=200, seed=1)
    assert lo.shape == hi.shape == (2,)
    assert lo[0] < v.mean() < hi[0] and hi[1] <= v.max()
    mean_lo, mean_hi = bootstrap_mean_ci(v, n_boot=200, seed=1)
    assert (lo[0], hi[0]) == pytest.approx((mean_lo, mean_hi))
    # a statistic that is NaN on some resamples: the interval of the others
    nan_some = lambda idx: np.where(idx[:, 0] % 2 == 0, v[idx].mean(-1), np.nan)
    lo, hi = bootstrap_interval(nan_some, v.size, n_boot=200, seed=1)
    assert np.isfinite(lo).all() and lo[0] < hi[0]
    lo, hi = bootstrap_interval(lambda idx: v[idx].mean(-1), v.size, n_boot=0)
    assert np.isnan(lo).all() and np.isnan(hi).all()
