"""The dynamics stage (``privaudit dynamics``): a real checkpointed digits population built with the
pipeline functions, and synthetic populations whose per-sample separations are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from privaudit.analysis import dynamics as dyn
from privaudit.cli import app
from privaudit.config import parse_config
from privaudit.errors import ConfigError, SignalError
from privaudit.runtime import dynamics_stage as ds
from privaudit.runtime import pipeline
from privaudit.runtime.store import RunStore

TINY = {"name": "tiny", "seed": 0, "data": {"name": "digits", "n": 600},
        "population": {"n_models": 8, "models_per_group": 8},
        "model": {"arch": "mlp", "hidden": [64]},
        "training": {"epochs": 6, "batch_size": 32, "lr": 0.005, "workers": 1, "checkpoints": [2, 4]},
        "attacks": ["loss", "lira_online"], "evaluation": {"targets": 2, "bootstrap": 10}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """8 MLPs on 600 digits, checkpoints at epochs 2 and 4 (+ final 6), final epoch evaluated."""
    out = tmp_path_factory.mktemp("dyn")
    cfg = parse_config(TINY | {"out": str(out)})
    store = RunStore(cfg.run_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                  # tiny models: one thread is fastest on a shared CPU
    try:
        pipeline.prepare(cfg, store)
        pipeline.train(cfg, store)
        pipeline.compute_signals(cfg, store)
    finally:
        torch.set_num_threads(threads)
    pipeline.evaluate(cfg, store)             # the run's own metrics (loss, lira_online on 2 targets)
    return cfg.run_dir


def test_command_writes_arrays_of_the_right_shapes(run_dir):
    result = CliRunner().invoke(app, ["dynamics", str(run_dir), "--bootstrap", "20"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = run_dir / "results" / "dynamics"
    traj = np.load(out / "trajectories.npy")
    assert traj.shape == (3, 600, 2)
    assert np.isfinite(traj).all() and traj.min() >= 0 and traj.max() <= 1
    doc = json.loads((out / "dynamics.json").read_text())
    assert doc["epochs"] == [2, 4, 6] and doc["n_targets"] == 8 and doc["scores_label"] == "lira_online_T8"
    for key in ("precision", "precision_lo", "precision_hi", "spearman", "recall"):
        assert len(doc["early_prediction"][key]) == 3
    assert doc["early_prediction"]["precision"][-1] == pytest.approx(1.0)   # final set predicts itself
    assert len(doc["early_prediction_cross_model"]["precision"]) == 3
    assert set(doc["correlations"]) == {"mean_loss", "first_learned", "forgetting"}
    for c in doc["correlations"].values():
        assert c["n"] == 600 and c["ci_low"] <= c["rho"] <= c["ci_high"]
    assert len(doc["claims"]) in (4, 5) and all(c["verdict"] for c in doc["claims"])
    assert len(doc["early_identification_hv"]["checkpoint"]) == 3
    assert np.asarray(doc["transitions"], dtype=float).shape == (2, 3, 3)
    assert len(doc["center_of_mass"]) == 3 and len(doc["entropy"]) == 3
    first = np.load(out / "difficulty_first_learned.npy")
    finite = first[np.isfinite(first)]
    assert finite.size > 0 and finite.min() >= 2 and finite.max() <= 6          # in epochs, not indices
    for png in ("trajectories.png", "com_path.png", "early_prediction.png"):
        assert (out / png).stat().st_size > 5_000
    # the trajectories are those of the cached per-epoch scores, targets = every model
    store = RunStore(run_dir)
    scores = np.stack([np.load(run_dir / "results" / f"epoch_{e:04d}" / "scores_lira_online_T8.npy")
                       for e in (2, 4, 6)])
    np.testing.assert_allclose(traj, dyn.trajectories(scores, store.load_npy("keep.npy"), fpr=0.01), atol=1e-6)
    # scoring every checkpoint kept the run's own results (pipeline.evaluate rewrites metrics.json)
    final = json.loads((run_dir / "results" / "metrics.json").read_text())
    assert {"loss", "lira_online", "lira_online_T8"} <= set(final["attacks"])
    assert "SUBSAMPLED APPROXIMATION" in " ".join(result.output.split())
    assert "reproduce" in result.output


def test_resume_does_not_rescore(run_dir):
    ds.run_dynamics(run_dir, n_boot=0)
    files = {e: run_dir / "results" / f"epoch_{e:04d}" / "scores_lira_online_T8.npy" for e in (2, 4, 6)}
    mtimes = {e: f.stat().st_mtime_ns for e, f in files.items()}
    again = ds.run_dynamics(run_dir, n_boot=0)
    assert again.scored_epochs == []
    assert {e: f.stat().st_mtime_ns for e, f in files.items()} == mtimes
    files[4].unlink()
    partial = ds.run_dynamics(run_dir, n_boot=0)
    assert partial.scored_epochs == [4]
    assert files[2].stat().st_mtime_ns == mtimes[2] and files[6].stat().st_mtime_ns == mtimes[6]
    np.testing.assert_allclose(partial.report.trajectories, again.report.trajectories)   # deterministic


def test_another_attack_and_target_count_use_their_own_cache(run_dir):
    out = ds.run_dynamics(run_dir, attack="loss", targets=4, n_boot=0)
    assert out.scored_epochs == [2, 4, 6] and out.doc["scores_label"] == "loss_T4"
    assert out.report.trajectories.shape == (3, 600, 2)
    with pytest.raises(SignalError, match="unknown attack"):
        ds.run_dynamics(run_dir, attack="no_such_attack", n_boot=0)
    with pytest.raises(ConfigError, match="targets"):
        ds.run_dynamics(run_dir, targets=9, n_boot=0)


def test_clear_error_without_checkpoints(tmp_path):
    cfg = parse_config(TINY | {"out": str(tmp_path), "training": TINY["training"] | {"checkpoints": []}})
    pipeline.prepare(cfg, RunStore(cfg.run_dir))                  # no training needed to fail
    with pytest.raises(ConfigError, match="at least 2"):
        ds.run_dynamics(cfg.run_dir)
    result = CliRunner().invoke(app, ["dynamics", str(cfg.run_dir)])
    assert result.exit_code == 2
    assert "at least 2" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["dynamics", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a privaudit run directory" in result.output


def test_forgetting_resolution_says_exact_only_for_every_epoch():
    assert "exactly Toneva" in ds.forgetting_resolution([1, 2, 3, 4])
    assert "SUBSAMPLED" in ds.forgetting_resolution([1, 2, 4])
    assert "SUBSAMPLED" in ds.forgetting_resolution([2, 3, 4])


def test_difficulty_signals_from_hand_built_logits():
    # 2 checkpoints, 1 model, 3 samples, 2 queries (only the first is used), 2 classes
    first = np.array([[[[2.0, 0.0], [9, 9]], [[0.0, 1.0], [9, 9]], [[0.0, 0.0], [9, 9]]]])
    second = np.array([[[[0.0, 3.0], [9, 9]], [[0.0, 2.0], [9, 9]], [[5.0, 0.0], [9, 9]]]])
    labels = np.array([0, 1, 0])
    loss, correct = ds.difficulty_signals([first, second], labels)
    assert loss.shape == correct.shape == (2, 1, 3)
    np.testing.assert_allclose(loss[0, 0], [np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0)), np.log(2.0)], rtol=1e-6)
    # ties (logits 0, 0) count as argmax = class 0 = correct for sample 2
    np.testing.assert_array_equal(correct[:, 0], [[True, True, True], [False, True, True]])
    keep = np.ones((1, 3), bool)
    np.testing.assert_array_equal(dyn.forgetting_events(correct, keep), [1, 0, 0])


# -- synthetic populations with known per-sample separations --------------------------------------
LEVELS = {0.0: 0.6, 1.0: 0.3, 4.0: 0.1}   # separation level -> fraction of samples (top 10 % = level 4)


def _synthetic(n=2000, t=64, growth=(0.25, 0.5, 0.75, 1.0), reshuffle=False, seed=0):
    """score = N(0,1) + d_i(p) * IN: d_i(p) = level_i * growth[p]. Balanced design (each sample IN for
    exactly t/2 targets). With reshuffle, every checkpoint draws a new random level per sample."""
    rng = np.random.default_rng(seed)
    keep = rng.random((t, n)).argsort(axis=0).argsort(axis=0) < t // 2
    level = np.concatenate([np.full(int(round(f * n)), lv) for lv, f in LEVELS.items()])
    d = np.stack([(rng.permutation(level) if reshuffle and p else level) * g for p, g in enumerate(growth)])
    scores = rng.standard_normal((len(growth), t, n)) + d[:, None, :] * keep[None]
    return scores, keep, level, d


def test_synthetic_trajectories_match_the_known_separations():
    fpr = 0.05
    scores, keep, level, d = _synthetic()
    epochs = [1, 2, 3, 4]
    report, doc = ds.analyze_population(scores, keep, epochs, fpr=fpr, n_boot=50)
    traj = report.trajectories
    assert traj.shape == (4, 2000, 2)
    tau = stats.norm.ppf(1 - fpr)                  # every OUT score is N(0, 1)
    for p in range(4):
        for lv in np.unique(level):
            grp = level == lv
            expected_tpr = stats.norm.sf(tau - lv * [0.25, 0.5, 0.75, 1.0][p])
            assert traj[p, grp, 1].mean() == pytest.approx(expected_tpr, abs=0.02), (p, lv)
            assert traj[p, grp, 0].mean() == pytest.approx(fpr, abs=0.01), (p, lv)
    com = np.asarray(doc["center_of_mass"])
    assert (np.diff(com[:, 1]) > 0).all()          # the population moves up the plane
    assert abs(com[-1, 0] - fpr) < 0.01
    rows = np.asarray(doc["transitions"], dtype=float).sum(axis=-1)
    assert np.allclose(rows[np.isfinite(rows)], 1.0)
    # the top 10 % (level 4) is the final top set, and already stands out at the first checkpoint
    print(doc["early_prediction"]["precision"], doc["early_prediction_cross_model"]["precision"])
    top = level == 4.0
    final_top = np.argsort(-report.final_vulnerability)[:top.sum()]
    assert top[final_top].mean() > 0.95
    assert doc["early_prediction"]["precision"][0] > 0.6
    assert doc["early_prediction"]["precision"][1] > 0.9
    assert doc["early_prediction_cross_model"]["precision"][1] > 0.8
    assert doc["early_prediction"]["chance"] == pytest.approx(0.1)
    early = [c for c in doc["claims"] if "early" in c["claim"]]
    assert len(early) == 2 and all(c["verdict"] == "reproduced" for c in early), early
    hv = doc["early_identification_hv"]
    # final HV = level-4 samples whose FPR_i <= 0.1: P(Binomial(32, 0.05) <= 3) = 0.92 of the 200
    expected = 200 * stats.binom.cdf(3, 32, fpr)
    assert abs(hv["n_final"] - expected) < 4 * np.sqrt(expected * 0.08) and hv["recall"][-1] == 1.0


def test_hv_identification_on_a_hand_built_region_sequence():
    regions = np.array([[2, 2, 0, 1, -1], [2, 0, 2, 2, 2]])
    hv = ds.hv_identification(regions, [5, 10])
    assert hv["n_final"] == 3 and hv["n"] == 4                     # the undefined sample is dropped
    assert hv["recall"] == pytest.approx([1 / 3, 1.0]) and hv["precision"] == pytest.approx([0.5, 1.0])
    assert hv["chance"] == pytest.approx([0.5, 0.75])
    assert hv["recall_lo"][0] < 1 / 3 < hv["recall_hi"][0]
    assert not ds.hv_identification(np.zeros((2, 3), int), [1, 2])["available"]
    assert ds._hv_claim(hv, [5, 10], 0)["verdict"].startswith("undetermined")       # 3 < MIN_HV samples
    many = ds.hv_identification(np.array([[2] * 12 + [0] * 88, [2] * 12 + [0] * 88]), [5, 10])
    assert ds._hv_claim(many, [5, 10], 0)["verdict"] == "reproduced"


def test_synthetic_claims_detect_presence_and_absence():
    scores, keep, level, d = _synthetic()
    rng = np.random.default_rng(1)
    e_, m = 3, keep.shape[0]
    # harder samples (larger separation) have a higher training loss; the control's loss is unrelated
    hard = np.broadcast_to(level, (e_, m, level.size)) + rng.standard_normal((e_, m, level.size))
    unrelated = rng.standard_normal((e_, m, level.size))
    _, doc = ds.analyze_population(scores, keep, [1, 2, 3, 4], train_loss=hard, train_keep=keep, n_boot=100)
    corr = [c for c in doc["claims"] if "difficulty" in c["claim"]]
    assert corr[0]["verdict"] == "reproduced" and corr[0]["value"] > 0.5
    _, doc = ds.analyze_population(scores, keep, [1, 2, 3, 4], train_loss=unrelated, train_keep=keep, n_boot=100)
    assert [c for c in doc["claims"] if "difficulty" in c["claim"]][0]["verdict"].startswith("not reproduced")
    # a vulnerable set redrawn at every checkpoint: the early top set says nothing about the final one
    scores, keep, _, _ = _synthetic(reshuffle=True)
    _, doc = ds.analyze_population(scores, keep, [1, 2, 3, 4], n_boot=100)
    early = [c for c in doc["claims"] if "early" in c["claim"]]
    assert [c["verdict"] for c in early] == ["not reproduced"] * 2, early
    assert abs(early[0]["value"] - doc["early_prediction"]["chance"]) < 0.06
