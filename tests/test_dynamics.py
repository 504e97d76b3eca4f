"""Tests for the dynamics study's analysis on arrays (privaudit.studies.dynamics: plane, difficulty,
early, analysis; after Chen et al. 2025, dynamics of membership privacy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from privaudit.errors import ConfigError, SignalError
from privaudit.studies.dynamics import analysis, difficulty, early, plane


def _population(n=400, t=32, deltas=(0.0, 1.0, 2.0, 8.0), n_vuln=40, seed=0):
    """score = N(0,1) + delta_p * IN for the first n_vuln samples, pure noise for the rest."""
    rng = np.random.default_rng(seed)
    keep = rng.random((t, n)) < 0.5
    keep[:, 0] = [True] * (t - 1) + [False]          # every sample at least once IN and once OUT
    keep[:, 1] = [False] * (t - 1) + [True]
    vuln = np.zeros(n, bool)
    vuln[:n_vuln] = True
    scores = rng.standard_normal((len(deltas), t, n))
    scores += np.asarray(deltas)[:, None, None] * (keep & vuln)[None]
    return scores, keep, vuln


def _brute_traj(scores, keep, fpr):
    """Reference: scan every candidate threshold, keep the smallest with FPR <= fpr."""
    p_, t_, n = scores.shape
    out = np.full((p_, n, 2), np.nan)
    for p in range(p_):
        flags = np.zeros((t_, n), bool)
        for t in range(t_):
            o = scores[p, t][~keep[t]]
            cands = np.concatenate([[-np.inf], np.unique(o)])
            ok = [c for c in cands if (o > c).mean() <= fpr]
            flags[t] = scores[p, t] > min(ok)
        for i in range(n):
            ins, outs = keep[:, i], ~keep[:, i]
            out[p, i, 1] = flags[ins, i].mean() if ins.any() else np.nan
            out[p, i, 0] = flags[outs, i].mean() if outs.any() else np.nan
    return out


# ---------------------------------------------------------------------------- trajectories

def test_trajectories_known_separation():
    fpr = 0.05
    scores, keep, vuln = _population()
    traj = plane.trajectories(scores, keep, fpr=fpr)
    assert traj.shape == (4, 400, 2)
    last = traj[-1]
    # strongly separated samples: flagged whenever IN, at chance rate when OUT
    assert last[vuln, 1].mean() > 0.97
    assert abs(last[vuln, 0].mean() - fpr) < 0.03
    # the others: TPR ~ FPR ~ fpr
    assert abs(last[~vuln, 1].mean() - fpr) < 0.02
    assert abs(last[~vuln, 0].mean() - fpr) < 0.02
    # with no signal at all (checkpoint 0) every sample sits near (fpr, fpr)
    assert abs(np.nanmean(traj[0, :, 1]) - fpr) < 0.02
    # strict threshold: realised FPR of every (checkpoint, target) <= fpr
    # (recompute pooled FPR from the per-sample rates)
    n_out_i = (~keep).sum(axis=0)
    pooled = (traj[:, :, 0] * n_out_i).sum(axis=1) / n_out_i.sum()
    assert (pooled <= fpr + 1e-12).all()


def test_trajectories_centre_of_mass_moves_up():
    scores, keep, vuln = _population(deltas=(0.0, 1.0, 2.0, 4.0, 8.0))
    traj = plane.trajectories(scores, keep, fpr=0.05)
    com = plane.center_of_mass(traj)
    assert com.shape == (5, 2)
    assert (np.diff(com[:, 1]) > 0).all()                      # TPR centroid rises
    assert np.abs(np.diff(com[:, 0])).max() < 0.01             # FPR centroid stays at ~fpr
    d = plane.com_displacement(traj)
    assert d["vector"][1] > 0.05
    assert d["path_length"] >= d["displacement"] > 0
    assert d["displacement_pp"] == pytest.approx(100 * d["displacement"])
    # the vulnerable subset enters the upper-left region, the others stay safe (fpr_lo is loose
    # because a sample is OUT for only ~16 targets, so its own FPR is Binomial(16, 0.05) / 16)
    reg = plane.regions(traj, fpr_lo=0.25)
    assert (reg[-1, vuln] == plane.HIGHLY_VULNERABLE).mean() > 0.95
    assert (reg[0] == plane.HIGHLY_VULNERABLE).sum() == 0
    assert (reg[-1, ~vuln] == plane.HIGHLY_VULNERABLE).sum() == 0


def test_trajectories_match_bruteforce_with_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, size=(2, 5, 30)).astype(float)     # many ties
    keep = rng.random((5, 30)) < 0.5
    keep[0, 0], keep[1, 0] = True, False
    for fpr in (0.01, 0.1, 0.29, 0.5, 1.0):
        np.testing.assert_allclose(plane.trajectories(scores, keep, fpr=fpr), _brute_traj(scores, keep, fpr),
                                   equal_nan=True)


def test_trajectories_hand_threshold_and_nan():
    # one checkpoint, two targets; target 0: 10 OUT scores 0..9, IN samples 8.5 and 100
    s0 = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 8.5, 100.0])
    keep0 = np.array([False] * 10 + [True, True])
    s1 = s0.copy()
    keep1 = keep0.copy()
    scores = np.stack([s0, s1])[None]                 # [1, 2, 12]
    keep = np.stack([keep0, keep1])
    # fpr 0.1: k = 1, tau = 8 -> OUT "9" flagged, both IN flagged
    tr = plane.trajectories(scores, keep, fpr=0.1)[0]
    assert tr[9, 0] == 1.0 and tr[8, 0] == 0.0
    assert tr[10, 1] == 1.0 and tr[11, 1] == 1.0
    assert np.isnan(tr[10, 0]) and np.isnan(tr[0, 1])  # never OUT / never IN
    # fpr 0.05: k = 0, tau = 9 -> no OUT flagged, 8.5 not flagged, 100 flagged
    tr = plane.trajectories(scores, keep, fpr=0.05)[0]
    assert np.nansum(tr[:, 0]) == 0.0
    assert tr[10, 1] == 0.0 and tr[11, 1] == 1.0


def test_trajectories_fpr_float_rounding():
    # 0.29 * 100 == 28.999999999999996 in floating point: still 29 OUT samples may be flagged
    rng = np.random.default_rng(5)
    keep = np.zeros((2, 110), bool)
    keep[:, 100:] = True                               # exactly 100 OUT per target
    scores = rng.standard_normal((1, 2, 110))
    traj = plane.trajectories(scores, keep, fpr=0.29)
    # every OUT sample is OUT for both targets, so sum_i FPR_i = (29 + 29) / 2
    assert np.nansum(traj[0, :, 0]) == pytest.approx(29.0)


def test_trajectories_errors():
    scores, keep, _ = _population(n=20, t=4)
    with pytest.raises(SignalError):
        plane.trajectories(scores[0], keep)
    bad = scores.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(SignalError):
        plane.trajectories(bad, keep)
    with pytest.raises(ConfigError):
        plane.trajectories(scores, keep[:, :5])
    with pytest.raises(ConfigError):
        plane.trajectories(scores, keep, fpr=0.0)
    all_in = keep.copy()
    all_in[2] = True
    with pytest.raises(ConfigError):
        plane.trajectories(scores, all_in)


# ---------------------------------------------------------------------------- plane metrics

def test_speed_and_epochs():
    traj = np.zeros((3, 2, 2))
    traj[1, 0] = [0.3, 0.4]        # moves 0.5
    traj[2, 0] = [0.3, 0.4]        # stays
    traj[:, 1] = np.nan
    s = plane.speed(traj)
    np.testing.assert_allclose(s[:, 0], [0.5, 0.0])
    assert np.isnan(s[:, 1]).all()
    s = plane.speed(traj, epochs=[0, 5, 25])
    np.testing.assert_allclose(s[:, 0], [0.1, 0.0])
    ms = plane.mean_speed(traj, epochs=[0, 5, 25])
    assert ms["overall"] == pytest.approx(0.05)
    with pytest.raises(ConfigError):
        plane.speed(traj, epochs=[0, 5, 5])


def test_regions_default_and_grid():
    pts = np.array([[[0.05, 0.9],    # upper-left -> highly vulnerable
                     [0.3, 0.6],     # advantage 0.3 but FPR too high -> leaky
                     [0.5, 0.5],     # diagonal -> safe
                     [np.nan, 0.2],  # undefined
                     [1.0, 1.0]]])   # corner, last grid cell
    np.testing.assert_array_equal(plane.regions(pts)[0], [2, 1, 0, -1, 0])
    g = plane.regions(pts, grid=2)[0]
    # label = tpr_bin * 2 + fpr_bin
    np.testing.assert_array_equal(g, [2, 2, 3, -1, 3])
    assert plane.n_regions(2) == 4 and len(plane.region_names(2)) == 4
    g = plane.regions(pts, grid=([0, 0.1, 1], [0, 0.5, 0.8, 1]))[0]
    np.testing.assert_array_equal(g, [4, 3, 3, -1, 5])
    assert plane.n_regions(([0, 0.1, 1], [0, 0.5, 0.8, 1])) == 6
    with pytest.raises(ConfigError):
        plane.regions(pts, grid=([0.2, 1], [0, 1]))


def test_transition_matrix_hand_example():
    a = np.array([0, 0, 1])
    b = np.array([0, 2, 2])
    m = plane.transition_matrix(a, b, 3)
    np.testing.assert_allclose(m[:2], [[0.5, 0.0, 0.5], [0.0, 0.0, 1.0]])
    assert np.isnan(m[2]).all()
    np.testing.assert_allclose(plane.transition_matrix(a, b, 3, empty="uniform")[2], [1 / 3] * 3)
    np.testing.assert_allclose(plane.transition_matrix(a, b, 3, empty="identity")[2], [0, 0, 1])
    # -1 labels are ignored
    m2 = plane.transition_matrix(np.array([0, 0, 1, -1]), np.array([0, 2, 2, 1]), 3)
    np.testing.assert_allclose(m2, m, equal_nan=True)
    np.testing.assert_array_equal(plane.transition_counts(a, b, 3), [[1, 0, 1], [0, 0, 1], [0, 0, 0]])


def test_transition_matrices_rows_stochastic():
    rng = np.random.default_rng(0)
    seq = rng.integers(-1, 4, size=(6, 500))
    mats = plane.transition_matrices(seq, 4)
    assert mats.shape == (5, 4, 4)
    rows = mats.sum(axis=-1)
    np.testing.assert_allclose(rows[np.isfinite(rows)], 1.0)
    assert np.isfinite(rows).all()                       # every region is populated here


def test_entry_probability_and_first_entry():
    seq = np.array([[0, 2, 1, 0, -1],      # rows = checkpoints, columns = samples
                    [2, 2, 2, 0, -1],
                    [2, 0, 2, 1, -1]])
    # step 0: samples 0, 2, 3 are outside HV, 0 and 2 enter; step 1: only sample 3 is outside, stays
    np.testing.assert_allclose(plane.entry_probability(seq), [2 / 3, 0.0])
    fe = plane.first_entry(seq, epochs=[1, 10, 20])
    np.testing.assert_array_equal(fe[:4], [10, 1, 10, np.inf])
    assert np.isnan(fe[4])
    assert np.isnan(plane.entry_probability(np.array([[2, 2], [2, 0]]))[0])   # nobody outside
    fe = plane.first_entry(np.array([[0], [1]]))
    assert fe[0] == np.inf


def test_spatial_entropy_point_mass_and_uniform():
    bins = 10
    point = np.full((1, 50, 2), 0.37)
    assert plane.spatial_entropy(point, bins)[0] == pytest.approx(0.0, abs=1e-12)
    c = (np.arange(bins) + 0.5) / bins
    f, t = np.meshgrid(c, c)
    uniform = np.stack([f.ravel(), t.ravel()], axis=-1)[None]
    assert plane.spatial_entropy(uniform, bins)[0] == pytest.approx(math.log(bins ** 2))
    assert plane.spatial_entropy(uniform, bins, base=2)[0] == pytest.approx(math.log2(bins ** 2))
    both = np.concatenate([np.full((1, 100, 2), 0.37), uniform])
    assert plane.entropy_change(both, bins) == pytest.approx(math.log(bins ** 2))
    # NaN samples are ignored; the corner point (1, 1) lies in the last cell
    corner = np.array([[[1.0, 1.0], [0.95, 0.99], [np.nan, 0.5]]])
    assert plane.spatial_entropy(corner, bins)[0] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------- learning difficulty

def test_count_forgetting():
    assert difficulty.count_forgetting([1, 0, 1, 1, 0, 0, 1]) == 2
    assert difficulty.count_forgetting([0, 0, 0]) == 0
    assert difficulty.count_forgetting([1, 1, 1]) == 0
    assert difficulty.count_forgetting([1, 0, 1, 0, 1, 0]) == 3


def test_forgetting_events_over_models():
    seqs = np.array([[1, 0, 1, 1, 0, 0, 1],     # model 0: 2 events
                     [1, 0, 1, 0, 1, 0, 1],     # model 1: 3 events
                     [0, 0, 0, 0, 0, 0, 0]],    # model 2: never learned
                    dtype=bool)
    correct = seqs.T[:, :, None]               # [E=7, M=3, n=1]
    keep = np.array([[True], [True], [False]])
    np.testing.assert_allclose(difficulty.forgetting_events(correct, keep), [2.5])
    keep2 = np.array([[True], [False], [True]])
    np.testing.assert_allclose(difficulty.forgetting_events(correct, keep2), [1.0])
    assert difficulty.forgetting_events(correct, keep2, never_learned="inf")[0] == np.inf
    assert np.isnan(difficulty.forgetting_events(correct, np.zeros((3, 1), bool))[0])


def test_first_learned_epoch_hand():
    seqs = np.array([[0, 1, 0, 1, 1],   # learned for good at index 3
                     [1, 1, 1, 1, 1],   # 0
                     [1, 1, 1, 1, 0]],  # never
                    dtype=bool)
    correct = seqs.T[:, None, :]                          # [E=5, M=1, n=3]
    keep = np.ones((1, 3), bool)
    fl = difficulty.first_learned_epoch(correct, keep)
    np.testing.assert_array_equal(fl, [3, 0, np.inf])
    fl = difficulty.first_learned_epoch(correct, keep, never=5)
    np.testing.assert_array_equal(fl, [3, 0, 5])
    fl = difficulty.first_learned_epoch(correct, keep, epochs=[1, 2, 4, 8, 16])
    np.testing.assert_array_equal(fl, [8, 1, np.inf])
    # averaged over IN models only
    correct2 = np.stack([seqs[0], seqs[1]], axis=1)[:, :, None]   # [E, M=2, n=1]
    np.testing.assert_allclose(difficulty.first_learned_epoch(correct2, np.array([[True], [True]])), [1.5])
    np.testing.assert_allclose(difficulty.first_learned_epoch(correct2, np.array([[False], [True]])), [0.0])


def test_mean_training_loss():
    loss = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)    # [E, M, n]
    keep = np.array([[True, False], [True, True], [False, True]])
    expect = [np.mean(loss[:, [0, 1], 0]), np.mean(loss[:, [1, 2], 1])]
    np.testing.assert_allclose(difficulty.mean_training_loss(loss, keep), expect)
    with pytest.raises(SignalError):
        difficulty.mean_training_loss(loss[0], keep)


def test_difficulty_correlation():
    rng = np.random.default_rng(0)
    v = rng.random(300)
    diff = v + 0.3 * rng.standard_normal(300)
    r = difficulty.difficulty_vulnerability_correlation(diff, v, n_boot=300, seed=1)
    ref = stats.spearmanr(diff, v)
    assert r["rho"] == pytest.approx(ref.statistic)
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert 0 < r["lo"] < r["rho"] < r["hi"]
    r0 = difficulty.difficulty_vulnerability_correlation(rng.random(300), v, n_boot=300, seed=1)
    assert r0["lo"] < 0 < r0["hi"]
    # NaN pairs dropped, inf ranked (never learned = hardest)
    d2 = diff.copy()
    d2[:5] = np.nan
    d2[5] = np.inf
    r2 = difficulty.difficulty_vulnerability_correlation(d2, v, n_boot=0)
    assert r2["n"] == 295 and np.isfinite(r2["rho"])


# ---------------------------------------------------------------------------- early prediction

def test_topk_weights_ties():
    w = early.topk_weights(np.array([3.0, 2.0, 2.0, 2.0, 1.0]), 2)
    np.testing.assert_allclose(w, [1, 1 / 3, 1 / 3, 1 / 3, 0])
    assert w.sum() == pytest.approx(2)


def test_early_prediction_random_and_last():
    rng = np.random.default_rng(0)
    traj = rng.random((4, 3000, 2))
    cur = early.early_prediction_curve(traj, top_frac=0.1, n_boot=50)
    assert cur["k"] == 300
    assert cur["precision"][-1] == 1.0 and cur["recall"][-1] == 1.0
    assert cur["spearman"][-1] == pytest.approx(1.0)
    for t in range(3):
        assert abs(cur["precision"][t] - 0.1) < 0.04
        assert abs(cur["spearman"][t]) < 0.08
        assert cur["precision_lo"][t] <= cur["precision"][t] <= cur["precision_hi"][t]
    assert cur["precision_lo"][-1] == 1.0


def test_early_prediction_random_scores_with_ties():
    # per-sample vulnerabilities from real trajectories are heavily tied; the expected overlap
    # under random tie-breaking must still sit at chance for unrelated checkpoints. The keep
    # design is balanced (every sample IN for exactly 8 of 16 targets): with Bernoulli keep,
    # samples with few IN or few OUT targets have noisier TPR_i - FPR_i and land in the top-k
    # at every checkpoint more often, a genuine above-chance overlap (see the docstring).
    from privaudit.data.membership import make_keep
    rng = np.random.default_rng(1)
    keep = make_keep(16, 2000, design="balanced", seed=1)
    scores = rng.standard_normal((3, 16, 2000))
    traj = plane.trajectories(scores, keep, fpr=0.1)
    cur = early.early_prediction_curve(traj, top_frac=0.1, n_boot=20)
    assert cur["precision"][-1] == 1.0
    assert abs(cur["precision"][0] - cur["chance"]) < 0.04
    assert abs(cur["precision"][1] - cur["chance"]) < 0.04


def test_early_prediction_signal_and_final_mask():
    scores, keep, vuln = _population(n=400, t=32, deltas=(0.0, 6.0, 7.0, 8.0), n_vuln=40)
    traj = plane.trajectories(scores, keep, fpr=0.05)
    cur = early.early_prediction_curve(traj, top_frac=0.1, n_boot=50)
    assert cur["precision"][0] < 0.3          # no signal yet
    assert cur["precision"][1] > 0.9          # decided early
    hv = plane.regions(traj)[-1] == plane.HIGHLY_VULNERABLE
    cur2 = early.early_prediction_curve(traj, top_frac=0.1, final_mask=hv, n_boot=0)
    assert cur2["target"] == "final_mask"
    assert cur2["recall"][1] > 0.9
    assert np.isnan(cur2["precision_lo"][1])  # no bootstrap requested


# ---------------------------------------------------------------------------- bundle

def test_analyze_report_json():
    scores, keep, vuln = _population(n=300, t=16, deltas=(0.0, 2.0, 8.0), n_vuln=30)
    e_, n = 6, 300
    rng = np.random.default_rng(2)
    # difficulty tied to vulnerability: vulnerable samples have high loss and are learned late
    loss = rng.random((e_, 16, n)) + 2.0 * vuln[None, None, :]
    correct = rng.random((e_, 16, n)) < np.where(vuln, 0.3, 0.995)[None, None, :]
    rep = analysis.analyze(scores, keep, [1, 5, 20], train_loss=loss, train_correct=correct,
                      fpr=0.05, top_frac=0.1, n_boot=30)
    assert rep.trajectories.shape == (3, n, 2)
    assert rep.transitions.shape == (2, 3, 3)
    assert rep.speed.shape == (2, n)
    assert rep.center_of_mass[-1, 1] > rep.center_of_mass[0, 1]
    assert rep.correlations["mean_loss"]["rho"] > 0.2
    assert rep.correlations["mean_loss"]["lo"] > 0
    assert rep.correlations["first_learned"]["rho"] > 0.2
    assert set(rep.difficulty) == {"mean_loss", "first_learned", "forgetting"}
    d = rep.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert "samples" not in d
    assert d["early_prediction"]["precision"][-1] == 1.0
    full = rep.to_dict(include_samples=True)
    json.dumps(full, allow_nan=False)
    assert len(full["samples"]["final_vulnerability"]) == n
    assert len(text) < len(json.dumps(full, allow_nan=False))
    with pytest.raises(ConfigError):
        analysis.analyze(scores, keep, [1, 5])
    rep_g = analysis.analyze(scores, keep, [1, 5, 20], grid=4, n_boot=0)
    assert rep_g.transitions.shape == (2, 16, 16)
    json.dumps(rep_g.to_dict(), allow_nan=False)
