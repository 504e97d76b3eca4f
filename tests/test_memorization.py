"""Memorization (Feldman-Zhang), influence, privacy score, per-sample TPR, the correlation report."""

from math import comb

import numpy as np
import pytest
from scipy import stats

from privaudit.errors import ConfigError, SignalError
from privaudit.evaluation.per_sample import (in_out_gaussian_params, per_sample_rates, per_sample_tpr,
                                             privacy_score)
from privaudit.studies.memorization.estimators import (MemorizationResult, correlation_band, feldman_zhang,
                                                       influence, memorization_report)

# --------------------------------------------------------------------------------------------
# toy learner with exactly known memorization: 1-nearest-neighbour
# --------------------------------------------------------------------------------------------

N_CLUSTERS, CLUSTER_SIZE, N_PAIRS, N_SINGLETONS = 20, 10, 6, 8


def _toy_dataset():
    """Clusters of 10 same-label points (mem ~ 0), pairs of same-label points with a label of
    their own (mem = 1 - P(mate IN | i OUT)), singletons with a label of their own (mem = 1:
    correct iff IN, since every other point has a different label)."""
    rng = np.random.default_rng(0)
    xs, ys, kinds = [], [], []
    for c in range(N_CLUSTERS):
        center = np.array([10.0 * (c % 5), 10.0 * (c // 5)])
        xs.append(center + 0.05 * rng.standard_normal((CLUSTER_SIZE, 2)))
        ys += [c % 5] * CLUSTER_SIZE
        kinds += ["cluster"] * CLUSTER_SIZE
    for p in range(N_PAIRS):
        center = np.array([10.0 * p, 60.0])
        xs.append(center + np.array([[-0.05, 0.0], [0.05, 0.0]]))
        ys += [100 + p] * 2
        kinds += ["pair"] * 2
    for s in range(N_SINGLETONS):
        xs.append(np.array([[10.0 * s + 5.0, 80.0]]))
        ys += [200 + s]
        kinds += ["singleton"]
    return np.concatenate(xs), np.array(ys), np.array(kinds)


def _subset_masks(n, m_models, ratio, seed):
    """FZ design: model k trains on a uniformly random subset of floor(ratio * n) samples."""
    rng = np.random.default_rng(seed)
    size = int(ratio * n)
    order = np.argsort(rng.random((m_models, n)), axis=1)
    keep = np.zeros((m_models, n), dtype=bool)
    np.put_along_axis(keep, order[:, :size], True, axis=1)
    return keep, size


def _one_nn_correct(train_x, train_y, keep, query_x, query_y):
    """correct[m, j] = 1[1-NN trained on keep[m] predicts query_y[j]] (numpy only)."""
    d = ((query_x[:, None, :] - train_x[None, :, :]) ** 2).sum(-1)          # [q, n]
    dm = np.where(keep[:, None, :], d[None], np.inf)                       # [M, q, n]
    return train_y[dm.argmin(axis=2)] == query_y[None, :]


@pytest.fixture(scope="module")
def toy():
    x, y, kinds = _toy_dataset()
    return x, y, kinds


@pytest.mark.parametrize("ratio", [0.5, 0.7])
def test_feldman_zhang_recovers_known_memorization_of_1nn(toy, ratio):
    x, y, kinds = toy
    n = y.size
    keep, size = _subset_masks(n, 200, ratio, seed=1)
    correct = _one_nn_correct(x, y, keep, x, y)
    res = feldman_zhang(correct, keep)
    assert isinstance(res, MemorizationResult)
    assert res.valid.all() and res.n_invalid == 0
    np.testing.assert_array_equal(res.n_in + res.n_out, 200)

    # singletons: correct iff IN -> mem = 1 exactly, se = 0
    single = kinds == "singleton"
    np.testing.assert_array_equal(res.mem[single], 1.0)
    np.testing.assert_array_equal(res.se[single], 0.0)

    # pairs: correct when IN, or when OUT and the mate is IN (prob size / (n - 1))
    pair = kinds == "pair"
    true_pair = 1.0 - size / (n - 1)
    assert (res.se[pair] > 0).all()
    assert (np.abs(res.mem[pair] - true_pair) <= 3 * res.se[pair]).all(), res.mem[pair]

    # cluster points: wrong only if all 9 mates are OUT too -> 0 <= mem <= P(all mates OUT | OUT)
    clus = kinds == "cluster"
    p_all_out = comb(n - CLUSTER_SIZE, size) / comb(n - 1, size)
    assert p_all_out < 0.01
    assert (res.mem[clus] >= -3 * res.se[clus] - 1e-12).all()
    assert (res.mem[clus] <= p_all_out + 3 * res.se[clus] + 1e-12).all()
    assert np.abs(res.mem[clus]).mean() < 0.02

    s = res.summary()
    assert s["n"] == n and s["n_invalid"] == 0


def test_feldman_zhang_matches_reference_formula_and_flags_missing_sides():
    rng = np.random.default_rng(3)
    m, n = 40, 30
    keep = rng.random((m, n)) < 0.7
    keep[:, 0] = True          # never OUT
    keep[:, 1] = False         # never IN
    correct = rng.random((m, n)) < 0.6
    res = feldman_zhang(correct, keep)

    def masked_avg(x, mask, esp=1e-10):          # heldout-influence-estimation mnist_infl_mem.py
        return np.sum(x * mask, axis=0) / np.maximum(np.sum(mask, axis=0), esp)

    ref = masked_avg(correct, keep) - masked_avg(correct, ~keep)
    np.testing.assert_allclose(res.mem[2:], ref[2:], atol=1e-12)
    assert not res.valid[0] and not res.valid[1] and res.valid[2:].all()
    assert np.isnan(res.mem[:2]).all() and np.isnan(res.se[:2]).all()
    assert res.n_out[0] == 0 and res.n_in[1] == 0
    assert res.summary()["n_invalid_no_out"] == 1 and res.summary()["n_invalid_no_in"] == 1
    # standard error of sample 5 by hand
    c, k = correct[:, 5].astype(float), keep[:, 5]
    p_in, p_out = c[k].mean(), c[~k].mean()
    se = np.sqrt(p_in * (1 - p_in) / k.sum() + p_out * (1 - p_out) / (~k).sum())
    assert res.se[5] == pytest.approx(se)


def test_feldman_zhang_input_errors():
    keep = np.ones((3, 4), dtype=bool)
    with pytest.raises(SignalError):
        feldman_zhang(np.ones((3, 5), dtype=bool), keep)
    with pytest.raises(SignalError):
        feldman_zhang(np.ones((2, 4), dtype=bool), keep)
    with pytest.raises(SignalError):
        feldman_zhang(np.full((3, 4), 2.0), keep)
    with pytest.raises(SignalError):
        feldman_zhang(np.ones((3, 4)), np.full((3, 4), 0.5))


def test_influence_known_values_on_1nn(toy):
    x, y, kinds = toy
    n = y.size
    keep, size = _subset_masks(n, 200, 0.7, seed=2)
    first_single = int(np.flatnonzero(kinds == "singleton")[0])
    pair_a, pair_b = np.flatnonzero(kinds == "pair")[:2]
    test_x = np.stack([x[first_single], (x[pair_a] + x[pair_b]) / 2, x[:CLUSTER_SIZE].mean(0)])
    test_y = np.array([y[first_single], y[pair_a], y[0]])
    correct_test = _one_nn_correct(x, y, keep, test_x, test_y)
    res = influence(correct_test, keep)
    assert res.infl.shape == (n, 3) and res.se.shape == (n, 3)
    # test point 0 sits on a singleton with its unique label: correct iff the singleton is IN
    assert res.infl[first_single, 0] == 1.0 and res.se[first_single, 0] == 0.0
    # test point 1 sits between a same-label pair: correct iff at least one of them is IN
    true = 1.0 - size / (n - 1)
    for i in (pair_a, pair_b):
        assert abs(res.infl[i, 1] - true) <= 3 * res.se[i, 1]
    # test point 2 is a cluster centre: any cluster point IN makes it correct -> ~no influence
    assert np.abs(res.infl[:CLUSTER_SIZE, 2]).max() < 0.05


def test_influence_matches_reference_masked_dot_and_loops():
    rng = np.random.default_rng(4)
    m, n, t = 25, 12, 7
    keep = rng.random((m, n)) < 0.5
    keep[:, 3] = True
    correct_test = rng.random((m, t)) < 0.7
    res = influence(correct_test, keep)

    def masked_dot(x, mask, esp=1e-10):          # reference layout [t, n]
        x = x.T.astype(np.float64)
        return np.matmul(x, mask) / np.maximum(np.sum(mask, axis=0, keepdims=True), esp)

    ref = (masked_dot(correct_test, keep) - masked_dot(correct_test, ~keep)).T
    valid = np.arange(n) != 3
    np.testing.assert_allclose(res.infl[valid], ref[valid], atol=1e-12)
    assert np.isnan(res.infl[3]).all() and not res.valid[3]
    for i in (0, 5):                              # standard errors by explicit loops
        for j in range(t):
            a = correct_test[keep[:, i], j].astype(float)
            b = correct_test[~keep[:, i], j].astype(float)
            se = np.sqrt(a.var() / a.size + b.var() / b.size)
            assert res.se[i, j] == pytest.approx(se)


def test_probability_outcomes_match_loops():
    """LeakPro-style variant: true-class probabilities instead of 0/1 correctness."""
    rng = np.random.default_rng(6)
    m, n, t = 30, 9, 4
    keep = rng.random((m, n)) < 0.6
    prob = rng.random((m, n))
    prob_test = rng.random((m, t))
    res = feldman_zhang(prob, keep)
    infl = influence(prob_test, keep)
    for i in range(n):
        a, b = prob[keep[:, i], i], prob[~keep[:, i], i]
        assert res.mem[i] == pytest.approx(a.mean() - b.mean())
        assert res.se[i] == pytest.approx(np.sqrt(a.var() / a.size + b.var() / b.size))
        for j in range(t):
            a, b = prob_test[keep[:, i], j], prob_test[~keep[:, i], j]
            assert infl.infl[i, j] == pytest.approx(a.mean() - b.mean())
            assert infl.se[i, j] == pytest.approx(np.sqrt(a.var() / a.size + b.var() / b.size))
    # 0/1 integers behave like bools
    c = (prob > 0.5).astype(np.int64)
    np.testing.assert_allclose(feldman_zhang(c, keep).mem, feldman_zhang(c.astype(bool), keep).mem)


# --------------------------------------------------------------------------------------------
# privacy score and per-sample TPR: hand examples
# --------------------------------------------------------------------------------------------

KEEP4 = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=bool)


def test_privacy_score_hand_example():
    # sample 0: IN {1, 3} (mu 2, sd 1), OUT {0, 0} (mu 0, sd 0)      -> |2 - 0| / (1 + 0) = 2
    # sample 1: IN {0, 4} (mu 2, sd 2), OUT {1, 1} (mu 1, sd 0)      -> 1 / 2 = 0.5
    phi = np.array([[1.0, 1.0], [3.0, 0.0], [0.0, 1.0], [0.0, 4.0]])
    np.testing.assert_allclose(privacy_score(phi, KEEP4), [2.0, 0.5])
    np.testing.assert_allclose(privacy_score(phi[:, :, None], KEEP4), [2.0, 0.5])
    # second query: sample 0 IN {0,0} OUT {1,3} -> 2 / 1 = 2; sample 1 all 5 -> 0/0 := 0
    q2 = np.array([[0.0, 5.0], [0.0, 5.0], [1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(privacy_score(np.stack([phi, q2], axis=-1), KEEP4), [2.0, 0.25])
    # separated point masses -> inf
    assert privacy_score(np.array([[1.0], [1.0], [2.0], [2.0]]),
                         np.array([[1], [1], [0], [0]], dtype=bool))[0] == np.inf
    g = in_out_gaussian_params(phi, KEEP4)
    np.testing.assert_allclose(g.mu_in[:, 0], [2, 2])
    np.testing.assert_allclose(g.sd_in[:, 0], [1, 2])
    # a sample with no OUT model -> NaN
    keep = KEEP4.copy()
    keep[:, 1] = True
    assert np.isnan(privacy_score(phi, keep)[1])
    with pytest.raises(SignalError):
        privacy_score(phi[:3], KEEP4)
    with pytest.raises(SignalError):
        privacy_score(np.full((4, 2), np.nan), KEEP4)


def test_per_sample_tpr_hand_example():
    keep = np.array([[1, 1, 1, 0, 0, 0],
                     [0, 1, 0, 1, 1, 0]], dtype=bool)
    scores = np.array([[5.0, 4.0, 1.0, 3.0, 2.0, 0.0],
                       [9.0, 1.0, 2.0, 8.0, 7.0, 3.0]])
    # fpr 1e-3, 3 negatives -> no false positive allowed: thresholds > 3 and > 9
    np.testing.assert_array_equal(per_sample_tpr(scores, keep, fpr=1e-3),
                                  [1.0, 0.5, 0.0, 0.0, 0.0, np.nan])
    # fpr 1/3 -> one false positive allowed: thresholds > 2 and > 3
    np.testing.assert_array_equal(per_sample_tpr(scores, keep, fpr=1 / 3),
                                  [1.0, 0.5, 0.0, 1.0, 1.0, np.nan])
    # fpr 1 -> everything flagged
    np.testing.assert_array_equal(per_sample_tpr(scores, keep, fpr=1.0),
                                  [1.0, 1.0, 1.0, 1.0, 1.0, np.nan])
    with pytest.raises(ConfigError):
        per_sample_tpr(scores, keep, fpr=1.5)
    with pytest.raises(SignalError):
        per_sample_tpr(scores[:, :5], keep)


# --------------------------------------------------------------------------------------------
# Spearman + report
# --------------------------------------------------------------------------------------------

def test_correlation_bands():
    assert correlation_band(0.39) == "weak"
    assert correlation_band(-0.4) == "moderate"
    assert correlation_band(0.59) == "moderate"
    assert correlation_band(0.6) == "strong"
    assert correlation_band(-0.95) == "strong"
    assert correlation_band(float("nan")) == "undefined"


def test_correlation_report_reads_spearman_in_bands():
    """The report's band and significance follow the Spearman result (Choi et al. §4.1 bands)."""
    a = np.arange(60, dtype=float)
    rep = memorization_report(a, a**3, n_boot=200, seed=1)["mem_vs_privacy_score"]
    assert rep["rho"] == pytest.approx(1.0) and rep["band"] == "strong" and rep["significant"]
    assert rep["lo"] == pytest.approx(1.0) and rep["hi"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(400)
    y = x + 1.6 * rng.standard_normal(400)
    rep = memorization_report(x, y, n_boot=300, seed=2)["mem_vs_privacy_score"]
    assert rep["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert rep["band"] == correlation_band(rep["rho"]) == "moderate" and rep["significant"]
    z = rng.standard_normal(400)
    rep = memorization_report(x, z, n_boot=100)["mem_vs_privacy_score"]
    assert rep["band"] == "weak" and abs(rep["rho"]) < 0.15
    rep = memorization_report(x, np.ones_like(x), n_boot=10)["mem_vs_privacy_score"]
    assert rep["band"] == "undefined" and not rep["significant"] and "constant" in rep["note"]


def test_per_sample_rates_hand_example():
    """3 targets x 4 samples: FPR_i counts the targets where i is OUT and flagged."""
    scores = np.array([[5.0, 1.0, 3.0, 0.0], [0.0, 4.0, 2.0, 1.0], [3.0, 2.0, 9.0, 1.0]])
    keep = np.array([[True, False, True, False], [False, True, True, False], [True, True, False, False]])
    # fpr 1/2 with 2 non-members per target: threshold = 2nd largest non-member score
    fpr_i, tpr_i = per_sample_rates(scores, keep, fpr=0.5)
    # target 0: non-members 1.0, 0.0 -> thr 0.0 -> flags 5, 1, 3; target 1: non-members 0.0, 1.0 -> thr 0.0
    # -> flags 4, 2, 1; target 2: non-members 9.0, 1.0 -> thr 1.0 -> flags 3, 2, 9
    np.testing.assert_array_equal(tpr_i, [1.0, 1.0, 1.0, np.nan])
    np.testing.assert_array_equal(fpr_i, [0.0, 1.0, 1.0, 1 / 3])
    np.testing.assert_array_equal(per_sample_tpr(scores, keep, fpr=0.5), tpr_i)


def test_memorization_report_structure_and_values():
    rng = np.random.default_rng(5)
    mem = rng.random(300)
    score = 3 * mem + 0.3 * rng.standard_normal(300)       # strongly related
    tpr = rng.random(300)                                   # unrelated
    mem[:5] = np.nan
    rep = memorization_report(mem, score, tpr, n_boot=200, seed=0)
    assert rep["n"] == 300
    a, b = rep["mem_vs_privacy_score"], rep["mem_vs_per_sample_tpr"]
    assert a["n"] == 295 and a["band"] == "strong" and a["significant"] and a["rho"] > 0.8
    assert a["lo"] < a["rho"] < a["hi"] and a["p_value"] < 1e-6
    assert b["band"] == "weak"
    # MemorizationResult input, privacy score only
    keep = rng.random((50, 20)) < 0.5
    res = feldman_zhang(rng.random((50, 20)) < 0.8, keep)
    rep = memorization_report(res, rng.random(20), n_boot=50)
    assert "mem" in rep and "mem_vs_per_sample_tpr" not in rep
    with pytest.raises(SignalError):
        memorization_report(mem, score[:10])
