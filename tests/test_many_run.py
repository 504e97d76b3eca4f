"""The many-run DP audit (Tramèr et al. 2022): a small population refutes a broken DP-SGD, leaves
the correct one standing, and its bound is the hand Clopper–Pearson computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from privaudit.evaluation.audit import eps_lower_bound
from privaudit.studies.many_run.audit import ManyRunSettings, keep_matrix, run_many

N = 400


def hand_eps(tp: int, fp: int, n_pos: int, n_neg: int, alpha: float = 0.05, delta: float = 0.0) -> float:
    """Nasr et al. 2021 with Clopper–Pearson upper bounds at alpha/2 each, by hand (scipy beta)."""
    fn = n_pos - tp
    fnr_ub = 1.0 if fn == n_pos else scipy.stats.beta.ppf(1 - alpha / 2, fn + 1, n_pos - fn)
    fpr_ub = 1.0 if fp == n_neg else scipy.stats.beta.ppf(1 - alpha / 2, fp + 1, n_neg - fp)
    one = math.log(1 - fnr_ub - delta) - math.log(fpr_ub) if 1 - fnr_ub > delta else -math.inf
    two = math.log(1 - fpr_ub - delta) - math.log(fnr_ub) if 1 - fpr_ub > delta else -math.inf
    return max(0.0, one, two)


@pytest.mark.parametrize("tp,fp,n_pos,n_neg", [(90, 0, 100, 100), (2500, 300, 5000, 5000), (40, 10, 200, 200),
                                               (5, 5, 50, 50)])
def test_bound_is_the_hand_clopper_pearson(tp, fp, n_pos, n_neg):
    pos = np.r_[np.ones(tp), np.zeros(n_pos - tp)]
    neg = np.r_[np.ones(fp), np.zeros(n_neg - fp)]
    got = eps_lower_bound(pos, neg, threshold=0.5, delta=0.0, alpha=0.05)
    assert got.counts["tp"] == tp and got.counts["fp"] == fp
    assert got.eps_lb == pytest.approx(hand_eps(tp, fp, n_pos, n_neg), rel=1e-9, abs=1e-12)


def test_keep_matrix_puts_the_canary_in_odd_models_only():
    keep = keep_matrix(6, 3)
    assert keep[:, :3].all() and keep[:, 3].tolist() == [False, True] * 3


@pytest.fixture(scope="module")
def audits():
    return {bug: run_many(ManyRunSettings(epsilon=1.0, bug=bug, n_models=N, models_per_group=200))
            for bug in ("none", "noise_not_scaled")}


def test_broken_noise_is_refuted_and_correct_dp_sgd_is_not(audits):
    broken, correct = audits["noise_not_scaled"], audits["none"]
    assert broken["claimed_epsilon"] == pytest.approx(correct["claimed_epsilon"])
    assert broken["claimed_epsilon"] == pytest.approx(1.0, abs=0.02)
    assert broken["eps_lower_bound"] > 2 * broken["claimed_epsilon"] and broken["refuted"]
    assert correct["eps_lower_bound"] < correct["claimed_epsilon"] and not correct["refuted"]
    for doc in audits.values():
        assert doc["n_in"] == doc["n_out"] == N // 2 and doc["confidence"] == pytest.approx(0.95)
        c = doc["counts"]                                        # the bound half of the split
        assert c["n_pos"] + c["n_neg"] == N // 2
        assert doc["eps_lower_bound"] == pytest.approx(hand_eps(c["tp"], c["fp"], c["n_pos"], c["n_neg"],
                                                                delta=doc["delta"]), rel=1e-9, abs=1e-12)
        assert doc["eps_lower_bound"] <= doc["ceiling"] + 1e-9
