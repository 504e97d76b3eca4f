"""Shadow-model budget curves and the Hellinger / memorization sample-complexity prediction."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from privaudit.errors import ConfigError, SignalError
from privaudit.evaluation.per_sample import strict_threshold_flags
from privaudit.studies.memorization.budget import (
    _tpr_at_fpr, bound_curve, hellinger_budget, hellinger_from_signal, models_to_reach,
    reduction_factor, shadow_budget_curve)

N, M, TARGETS = 2000, 68, [0, 1, 2, 3]
D_HIGH, D_LOW = 3.0, 1.0


def _population(seed=0):
    """Gaussian signal: per-sample offset mu_i ~ N(0, 2^2), shifted by delta_i when IN, unit
    noise per model. First half of the samples: delta = 3 (high separation), second half 1."""
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((M, N)), axis=0) < M // 2        # each sample IN in half
    mu = 2.0 * rng.standard_normal(N)
    delta = np.where(np.arange(N) < N // 2, D_HIGH, D_LOW)
    signal = mu + delta * keep + rng.standard_normal((M, N))
    return signal[:, :, None], keep, delta


def online_attack(target, ref, ref_keep, *, labels, scale=1.0):
    """Online Gaussian LR with a fixed (known) variance: needs >= 1 IN and 1 OUT per sample."""
    x, r = target[:, 0], ref[:, :, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_in = (r * ref_keep).sum(0) / ref_keep.sum(0)
        mu_out = (r * ~ref_keep).sum(0) / (~ref_keep).sum(0)
    return ((x - mu_out) ** 2 - (x - mu_in) ** 2) / scale


def offline_attack(target, ref, ref_keep, *, labels):
    """Offline: distance above the OUT mean (needs >= 1 OUT per sample)."""
    out = ~ref_keep
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_out = (ref[:, :, 0] * out).sum(0) / out.sum(0)
    return target[:, 0] - mu_out


@pytest.fixture(scope="module")
def population():
    return _population()


@pytest.fixture(scope="module")
def online_curve(population):
    signal, keep, delta = population
    groups = {"high_sep": delta == D_HIGH, "low_sep": delta == D_LOW}
    return shadow_budget_curve(online_attack, signal, keep, np.zeros(N, np.int64),
                               sizes=(1, 2, 4, 8, 16, 32, 64), targets=TARGETS,
                               sample_groups=groups, repeats=3, seed=0, fprs=(1e-3, 1e-2),
                               n_boot=200)


def _series(curve, group, key="auc_mean"):
    rows = sorted((r for r in curve if r["group"] == group and not r["skipped"]),
                  key=lambda r: r["n_models"])
    return [r["n_models"] for r in rows], np.array([r[key] for r in rows])


def test_curve_rows_and_skip_reason(online_curve):
    assert len(online_curve) == 7 * 2
    r1 = [r for r in online_curve if r["n_models"] == 1]
    assert all(r["skipped"] and "IN" in r["skipped"] and r["attack"] is None for r in r1)
    row = next(r for r in online_curve if r["n_models"] == 8 and r["group"] == "high_sep")
    assert row["attack"] == "primary" and row["n_evals"] == 12 and row["group_size"] == N // 2
    assert len(row["auc_values"]) == 12
    for key in ("auc", "tpr@0.001", "tpr@0.01"):
        assert row[f"{key}_ci_low"] <= row[f"{key}_mean"] <= row[f"{key}_ci_high"]
        assert row[f"{key}_std"] >= 0
    # with R = 2 random references a sample lacks an IN or an OUT one about half of the time
    row2 = next(r for r in online_curve if r["n_models"] == 2 and r["group"] == "low_sep")
    assert 0.35 < row2["excluded_frac"] < 0.65
    row64 = next(r for r in online_curve if r["n_models"] == 64 and r["group"] == "low_sep")
    assert row64["excluded_frac"] == 0.0


def test_auc_non_decreasing_in_r_and_high_separation_needs_far_fewer_models(online_curve):
    for group in ("high_sep", "low_sep"):
        sizes, auc = _series(online_curve, group)
        assert sizes == [2, 4, 8, 16, 32, 64]
        assert (np.diff(auc) >= -0.01).all(), (group, auc)
        assert auc[-1] > auc[0]
    # asymptotic AUCs: Phi(delta / sqrt(2)) for unit noise
    _, hi = _series(online_curve, "high_sep")
    _, lo = _series(online_curve, "low_sep")
    assert hi[-1] == pytest.approx(stats.norm.cdf(D_HIGH / np.sqrt(2)), abs=0.03)
    assert lo[-1] == pytest.approx(stats.norm.cdf(D_LOW / np.sqrt(2)), abs=0.04)
    # the high-separation group is at 0.9 AUC with the fewest models evaluated
    assert models_to_reach(online_curve, "auc", 0.9, group="high_sep") == 2
    assert models_to_reach(online_curve, "auc", 0.9, group="low_sep") is None
    level = 0.72
    r_low = models_to_reach(online_curve, "auc", level, group="low_sep")
    assert r_low is not None and r_low >= 8
    assert reduction_factor(online_curve, "high_sep", "low_sep", "auc", level) >= 4
    assert reduction_factor(online_curve, "high_sep", "low_sep", "auc", 0.9) == math.inf
    assert reduction_factor(online_curve, "high_sep", "low_sep", "auc", 0.9,
                            censored="lower_bound") == 32.0


def test_fallback_for_r1_deterministic_and_group_sizes(population):
    signal, keep, delta = population
    groups = {"all": np.ones(N, bool), "high_sep": delta == D_HIGH}
    kw = dict(targets=[0, 1], sample_groups=groups, sizes=(1, 4, 1000), repeats=2, seed=7,
              n_boot=50, fallback_fn=offline_attack, fallback_min_in=0, fallback_min_out=1)
    curve = shadow_budget_curve(online_attack, signal, keep, np.zeros(N, np.int64), **kw)
    again = shadow_budget_curve(online_attack, signal, keep, np.zeros(N, np.int64), **kw)
    assert curve == again
    by = {(r["n_models"], r["group"]): r for r in curve}
    assert by[(1, "all")]["attack"] == "fallback"
    assert 0.35 < by[(1, "all")]["excluded_frac"] < 0.65      # half the samples have no OUT ref
    assert by[(1, "high_sep")]["auc_mean"] > 0.8
    assert by[(4, "all")]["attack"] == "primary"
    assert "exceeds" in by[(1000, "all")]["skipped"]
    # an offline attack declared as such runs from R = 1 without a fallback
    curve = shadow_budget_curve(offline_attack, signal, keep, np.zeros(N, np.int64), min_in=0,
                                targets=[0], sample_groups=groups, sizes=(1,), repeats=1)
    assert curve[0]["attack"] == "primary" and curve[0]["auc_mean"] > 0.6

    class Spec:                       # duck-typed registry AttackSpec: requirements from .mode
        mode = "offline"

        def __call__(self, target, ref, ref_keep, *, labels):
            return offline_attack(target, ref, ref_keep, labels=labels)

    curve = shadow_budget_curve(Spec(), signal, keep, np.zeros(N, np.int64), targets=[0],
                                sample_groups=groups, sizes=(1,), repeats=1)
    assert curve[0]["attack"] == "primary"
    Spec.mode = "online"
    curve = shadow_budget_curve(Spec(), signal, keep, np.zeros(N, np.int64), targets=[0],
                                sample_groups=groups, sizes=(1,), repeats=1)
    assert curve[0]["skipped"]


def test_curve_input_errors(population):
    signal, keep, delta = population
    groups = {"all": np.ones(N, bool)}
    labels = np.zeros(N, np.int64)
    with pytest.raises(ConfigError):
        shadow_budget_curve(online_attack, signal, keep, labels, targets=[], sample_groups=groups)
    with pytest.raises(ConfigError):
        shadow_budget_curve(online_attack, signal, keep, labels, targets=[0, 0],
                            sample_groups=groups)
    with pytest.raises(SignalError):
        shadow_budget_curve(online_attack, signal[:, :10], keep, labels, targets=[0],
                            sample_groups=groups)
    with pytest.raises(SignalError):
        shadow_budget_curve(online_attack, signal, keep, labels, targets=[0],
                            sample_groups={"bad": np.ones(5, bool)})
    with pytest.raises(SignalError):
        shadow_budget_curve(lambda t, r, k, labels: np.zeros(3), signal, keep, labels,
                            targets=[0], sample_groups=groups, sizes=(4,), repeats=1)


def test_strict_tpr_helper_matches_threshold_rule():
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.5
    s = rng.standard_normal(500) + y
    for alpha in (0.0, 1e-3, 0.01, 0.1, 0.5):
        flags = strict_threshold_flags(s[None], ~y[None], alpha)[0]
        assert _tpr_at_fpr(y, s, alpha) == pytest.approx(flags[y].mean())
        assert flags[~y].mean() <= alpha + 1e-12
    # hand example: negatives 3, 2, 0; positives 5, 4, 1
    y = np.array([1, 1, 1, 0, 0, 0], bool)
    s = np.array([5.0, 4.0, 1.0, 3.0, 2.0, 0.0])
    assert _tpr_at_fpr(y, s, 0.0) == pytest.approx(2 / 3)
    assert _tpr_at_fpr(y, s, 1 / 3) == pytest.approx(2 / 3)
    assert _tpr_at_fpr(y, s, 2 / 3) == pytest.approx(1.0)


def test_models_to_reach_and_reduction_factor_hand_example():
    curve = [{"n_models": 1, "group": "a", "auc_mean": 0.60, "skipped": None},
             {"n_models": 2, "group": "a", "auc_mean": 0.81, "skipped": None},
             {"n_models": 4, "group": "a", "auc_mean": 0.79, "skipped": None},
             {"n_models": 8, "group": "a", "auc_mean": 0.92, "skipped": None},
             {"n_models": 1, "group": "b", "skipped": "R=1 too few"},
             {"n_models": 2, "group": "b", "auc_mean": 0.55, "skipped": None},
             {"n_models": 8, "group": "b", "auc_mean": 0.80, "skipped": None},
             {"n_models": 32, "group": "b", "auc_mean": 0.93, "skipped": None},
             {"n_models": 64, "group": "c", "auc_mean": 0.70, "skipped": None}]
    assert models_to_reach(curve, "auc", 0.8, group="a") == 2
    assert models_to_reach(curve, "auc", 0.9, group="a") == 8
    assert models_to_reach(curve, "auc", 0.8, group="b") == 8
    assert models_to_reach(curve, "auc", 0.95, group="a") is None
    assert reduction_factor(curve, "a", "b", "auc", 0.8) == 4.0
    assert reduction_factor(curve, "a", "b", "auc", 0.9) == 4.0
    assert math.isnan(reduction_factor(curve, "a", "b", "auc", 0.95))
    assert reduction_factor(curve, "a", "c", "auc", 0.8) == math.inf
    assert reduction_factor(curve, "a", "c", "auc", 0.8, censored="lower_bound") == 32.0
    with pytest.raises(ConfigError):
        models_to_reach(curve, "auc", 0.8)                 # several groups, none chosen
    with pytest.raises(ConfigError):
        models_to_reach(curve, "tpr@0.001", 0.1, group="a")
    with pytest.raises(ConfigError):
        models_to_reach(curve, "auc", 0.8, group="zzz")


def _h2_numeric(m1, s1, m2, s2):
    f = lambda x: 0.5 * (np.sqrt(stats.norm.pdf(x, m1, s1)) - np.sqrt(stats.norm.pdf(x, m2, s2))) ** 2
    return integrate.quad(f, -50, 50, points=[m1, m2], limit=200)[0]


def test_hellinger_closed_form():
    for m1, s1, m2, s2 in [(0, 1, 0, 1), (0, 1, 3, 1), (1, 0.5, -1, 2), (2, 1.5, 2.5, 0.7)]:
        assert hellinger_budget(m1, s1, m2, s2) == pytest.approx(_h2_numeric(m1, s1, m2, s2),
                                                                 abs=1e-7)
    h2 = hellinger_budget(np.array([0.0, 0.0, 1.0, np.nan]), np.array([1.0, 0.0, 0.0, 1.0]),
                          np.array([3.0, 0.0, 2.0, 0.0]), np.array([1.0, 0.0, 0.0, 1.0]))
    assert h2[0] == pytest.approx(1 - np.exp(-9 / 8))
    assert h2[1] == 0.0 and h2[2] == 1.0 and np.isnan(h2[3])
    with pytest.raises(SignalError):
        hellinger_budget(0, -1, 0, 1)


def test_bound_curve_and_population_hellinger(population):
    res = bound_curve(np.array([0.5, 0.1, 0.0, np.nan]), sizes=(1, 2, 4, 8, 16))
    np.testing.assert_allclose(res["n_required"], [2.0, 10.0, np.inf, np.nan])
    assert res["frac_reachable"] == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 2 / 3])
    assert res["kind"] == "h2" and res["const"] == 1.0 and res["median_required"] == pytest.approx(10.0)
    # memorization: H^2 >= mem^2 / 2 -> N = 2 const / mem^2
    res = bound_curve(np.array([0.5, 0.1, -0.2]), sizes=(4, 16), const=2.0, kind="mem")
    np.testing.assert_allclose(res["n_required"], [16.0, 400.0, np.inf])
    assert res["frac_reachable"] == pytest.approx([0, 1 / 3])
    with pytest.raises(ConfigError):
        bound_curve([0.5], kind="tv")
    # on the synthetic population the high-separation samples are predicted to need fewer models
    signal, keep, delta = population
    h2 = hellinger_from_signal(signal, keep)
    need = bound_curve(h2)["n_required"]
    assert np.median(need[delta == D_HIGH]) * 3 < np.median(need[delta == D_LOW])
    assert np.median(h2[delta == D_HIGH]) == pytest.approx(1 - np.exp(-D_HIGH**2 / 8), abs=0.05)
    two = np.concatenate([signal, signal], axis=2)
    np.testing.assert_allclose(hellinger_from_signal(two, keep), h2)
    assert (hellinger_from_signal(two, keep, combine="diag") >= h2 - 1e-12).all()
