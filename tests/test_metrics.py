"""Tests for privaudit.evaluation.metrics (hand-computed values on tiny arrays)."""

import functools
import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privaudit.errors import SignalError
from privaudit.evaluation import metrics as M

# Case A, 4 members / 4 non-members with one member/non-member tie at 0.5.
# Descending: .9P .7N .6P .5(P,N) .3N .2P .1N  ->  ROC points
# (0,0) (0,.25) (.25,.25) (.25,.5) (.5,.75) (.75,.75) (.75,1) (1,1)
Y_A = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
S_A = np.array([0.9, 0.6, 0.5, 0.2, 0.7, 0.5, 0.3, 0.1])

# Case B: AUC = 1/2 but max balanced accuracy 3/4; the equal-error point gives 1/2.
# Descending: .9P .8P .7N .6N .5N .4N .2P .1P -> (0,.5) best, (.5,.5) equal-error point
Y_B = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
S_B = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.6, 0.5, 0.4])


def test_roc_curve_points():
    fpr, tpr, thr = M.roc_curve(Y_A, S_A)
    np.testing.assert_allclose(fpr, [0, 0, .25, .25, .5, .75, .75, 1])
    np.testing.assert_allclose(tpr, [0, .25, .25, .5, .75, .75, 1, 1])
    assert np.isinf(thr[0])
    np.testing.assert_allclose(thr[1:], [.9, .7, .6, .5, .3, .2, .1])


def test_auc_by_hand():
    # pairs won: 4 + 3 + (2 + 1/2 tie) + 1 = 10.5 of 16
    assert M.auc(Y_A, S_A) == pytest.approx(10.5 / 16)
    assert M.auc(Y_B, S_B) == pytest.approx(0.5)


def test_tpr_at_fpr_strict_lira_interp_by_hand():
    assert M.tpr_at_fpr(Y_A, S_A, 0.375) == pytest.approx(0.5)                   # (.25,.5)
    assert M.tpr_at_fpr(Y_A, S_A, 0.375, mode="interp") == pytest.approx(0.625)  # on diagonal
    assert M.tpr_at_fpr(Y_A, S_A, 0.375, mode="lira") == pytest.approx(0.5)
    # alpha exactly on an attained FPR: <= includes it, LiRA's < does not
    assert M.tpr_at_fpr(Y_A, S_A, 0.25) == pytest.approx(0.5)
    assert M.tpr_at_fpr(Y_A, S_A, 0.25, mode="lira") == pytest.approx(0.25)
    assert M.tpr_at_fpr(Y_A, S_A, 0.25, mode="interp") == pytest.approx(0.5)
    assert M.tpr_at_fpr(Y_A, S_A, 0.1) == pytest.approx(0.25)                    # FPR 0 only


def test_balanced_accuracy_and_advantage_by_hand():
    assert M.balanced_accuracy(Y_A, S_A) == pytest.approx(0.625)
    assert M.balanced_accuracy(Y_A, S_A, mode="eer") == pytest.approx(0.625)
    assert M.advantage(Y_A, S_A) == pytest.approx(0.25)
    assert M.balanced_accuracy(Y_B, S_B) == pytest.approx(0.75)
    assert M.balanced_accuracy(Y_B, S_B, mode="eer") == pytest.approx(0.5)
    assert M.advantage(Y_B, S_B) == pytest.approx(0.5)


def test_perfect_and_random_scores():
    rng = np.random.default_rng(0)
    y = rng.random(20000) < 0.5
    s_perfect = y + 0.01 * rng.random(y.size)
    assert M.auc(y, s_perfect) == 1.0
    assert M.tpr_at_fpr(y, s_perfect, 1e-3) == 1.0
    assert M.balanced_accuracy(y, s_perfect) == 1.0
    assert M.balanced_accuracy(y, s_perfect, mode="eer") == 1.0
    assert M.advantage(y, s_perfect) == 1.0
    s_rand = rng.random(y.size)
    assert abs(M.auc(y, s_rand) - 0.5) < 0.02
    assert abs(M.tpr_at_fpr(y, s_rand, 0.1) - 0.1) < 0.02
    assert abs(M.balanced_accuracy(y, s_rand) - 0.5) < 0.03
    assert M.balanced_accuracy(y, s_rand, mode="eer") <= M.balanced_accuracy(y, s_rand)
    assert M.auc(y, s_rand) == pytest.approx(roc_auc_score(y, s_rand))
    # inverted perfect scores
    assert M.auc(y, -s_perfect) == 0.0


def test_int_labels_accepted():
    assert M.auc(Y_A.astype(int), S_A) == M.auc(Y_A, S_A)


def test_summary_flags_non_estimable():
    out = M.summary(Y_A, S_A)
    assert out["n_pos"] == 4 and out["n_neg"] == 4
    assert out["auc"] == pytest.approx(10.5 / 16)
    assert out["balanced_accuracy"] == pytest.approx(0.625)
    for key in ("0.01", "0.001", "0.0001"):
        assert out[f"estimable@{key}"] is False
        assert out[f"n_fp@{key}"] == 0
        assert out[f"tpr@{key}"] == pytest.approx(0.25)   # value still reported (TPR at FPR 0)
    assert len(out["warnings"]) == 3

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(500, bool), np.zeros(1000, bool)]
    s = rng.normal(size=y.size) + y
    out = M.summary(y, s, mode="interp")
    assert out["n_fp@0.01"] == 10 and out["estimable@0.01"]
    assert out["n_fp@0.001"] == 1 and out["estimable@0.001"]
    assert out["n_fp@0.0001"] == 0 and not out["estimable@0.0001"]
    assert out["tpr@0.01"] == pytest.approx(M.tpr_at_fpr(y, s, 0.01, mode="interp"))
    assert out["balanced_accuracy_eer"] <= out["balanced_accuracy"]
    assert out["advantage"] == pytest.approx(2 * out["balanced_accuracy"] - 1)


def _data(n, seed=0, shift=0.5):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    return y, np.round(rng.normal(size=n) + shift * y, 2)   # rounding makes ties


def test_bootstrap_contains_estimate_and_shrinks():
    widths = []
    for n in (400, 20000):
        y, s = _data(n)
        for metric, point in (("auc", M.auc(y, s)),
                              (M.advantage, M.advantage(y, s)),
                              (functools.partial(M.tpr_at_fpr, alpha=0.1),
                               M.tpr_at_fpr(y, s, 0.1))):
            lo, hi = M.bootstrap_ci(metric, y, s, n_boot=200, seed=3)
            assert lo <= point <= hi
        lo, hi = M.bootstrap_ci("auc", y, s)
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3      # ~ 1/sqrt(n): 7x narrower expected


@pytest.mark.parametrize("metric", [
    "auc", "advantage", "balanced_accuracy", "balanced_accuracy_eer",
    functools.partial(M.tpr_at_fpr, alpha=0.01),
    functools.partial(M.tpr_at_fpr, alpha=0.01, mode="interp"),
    functools.partial(M.tpr_at_fpr, alpha=0.005, mode="lira"),
])
def test_bootstrap_fast_path_equals_generic(metric):
    y, s = _data(3000, seed=5)
    plain = {"auc": M.auc, "advantage": M.advantage, "balanced_accuracy": M.balanced_accuracy,
             "balanced_accuracy_eer": functools.partial(M.balanced_accuracy, mode="eer")}
    func = plain[metric] if isinstance(metric, str) else metric
    fast = M.bootstrap_ci(metric, y, s, n_boot=40, seed=7)
    slow = M.bootstrap_ci(lambda a, b: func(a, b), y, s, n_boot=40, seed=7)  # generic path
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_bootstrap_fast_50k():
    y, s = _data(50000, seed=2)
    t0 = time.perf_counter()
    lo, hi = M.bootstrap_ci("auc", y, s, n_boot=200)
    lo2, hi2 = M.bootstrap_ci(functools.partial(M.tpr_at_fpr, alpha=1e-3), y, s, n_boot=200)
    assert time.perf_counter() - t0 < 10.0
    assert lo < M.auc(y, s) < hi and lo2 <= hi2


def test_bootstrap_seeded_and_level():
    y, s = _data(1000)
    assert M.bootstrap_ci("auc", y, s, seed=1) == M.bootstrap_ci("auc", y, s, seed=1)
    lo90, hi90 = M.bootstrap_ci("auc", y, s, level=0.9)
    lo99, hi99 = M.bootstrap_ci("auc", y, s, level=0.99)
    assert lo99 <= lo90 and hi90 <= hi99


def test_aggregate():
    res = [{"auc": 0.6, "tpr@0.01": 0.1, "estimable@0.01": True, "tpr_mode": "strict",
            "warnings": []},
           {"auc": 0.8, "tpr@0.01": 0.3, "estimable@0.01": False, "tpr_mode": "strict",
            "warnings": ["w"]}]
    agg = M.aggregate(res)
    assert agg["auc"]["mean"] == pytest.approx(0.7)
    assert agg["auc"]["std"] == pytest.approx(0.1)
    assert agg["auc"]["n"] == 2
    assert agg["tpr@0.01"]["mean"] == pytest.approx(0.2)
    assert agg["estimable@0.01"]["mean"] == pytest.approx(0.5)
    assert agg["tpr_mode"] == "strict"
    assert agg["warnings"] == ["w"]
    assert M.aggregate(res, ddof=1)["auc"]["std"] == pytest.approx(np.std([.6, .8], ddof=1))
    with pytest.raises(ValueError):
        M.aggregate([])


def test_bad_input():
    with pytest.raises(SignalError, match="shape mismatch"):
        M.auc(Y_A, S_A[:-1])
    with pytest.raises(SignalError, match="NaN"):
        M.auc(Y_A, np.r_[S_A[:-1], np.nan])
    with pytest.raises(SignalError, match="empty class"):
        M.auc(np.ones(8, bool), S_A)
    with pytest.raises(SignalError, match="0/1"):
        M.auc(np.arange(8), S_A)
    with pytest.raises(SignalError, match="1-D"):
        M.auc(Y_A.reshape(2, 4), S_A.reshape(2, 4))
    for a in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            M.tpr_at_fpr(Y_A, S_A, a)
    with pytest.raises(ValueError, match="mode"):
        M.tpr_at_fpr(Y_A, S_A, 0.1, mode="nearest")
    with pytest.raises(ValueError, match="mode"):
        M.balanced_accuracy(Y_A, S_A, mode="mean")
    with pytest.raises(ValueError, match="level"):
        M.bootstrap_ci("auc", Y_A, S_A, level=1.0)
    with pytest.raises(ValueError, match="unknown metric"):
        M.bootstrap_ci("f1", Y_A, S_A)
    with pytest.raises(ValueError, match="n_boot"):
        M.bootstrap_ci("auc", Y_A, S_A, n_boot=0)


@pytest.mark.parametrize("mode", ["strict", "lira", "interp"])
def test_headline_equals_the_separate_metrics_from_one_roc(mode):
    rng = np.random.default_rng(3)
    y = rng.random(600) < 0.5
    s = np.round(rng.normal(size=600) + 0.4 * y, 1)      # rounded: many tied scores
    fprs = (0.01, 0.05, 0.2)
    got, tied = M.headline(y, s, fprs, mode)
    assert got["auc"] == M.auc(y, s)
    assert got["balanced_accuracy"] == M.balanced_accuracy(y, s)
    for a in fprs:
        assert got[f"tpr@{a:g}"] == M.tpr_at_fpr(y, s, a, mode=mode)
        assert (f"tpr@{a:g}" in tied) == M.tie_at_fpr(y, s, a, mode=mode)


@pytest.mark.parametrize("rounding", [None, 1, 0])
def test_roc_auc_and_balanced_accuracy_equal_sklearn_bit_for_bit(rounding):
    import sklearn.metrics as skm

    rng = np.random.default_rng(11)
    y = rng.random(900) < 0.3
    s = rng.normal(size=900) + 0.5 * y
    s = s if rounding is None else np.round(s, rounding)      # ties: many, then a few large blocks
    got, want = M.roc_curve(y, s), skm.roc_curve(y, s, drop_intermediate=False)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert M.auc(y, s) == skm.auc(want[0], want[1])
    fpr, tpr, thr = want
    tau = thr[int(np.argmin(np.abs(fpr + tpr - 1.0)))]
    assert M.balanced_accuracy(y, s, mode="eer") == skm.balanced_accuracy_score(y, s >= tau)
