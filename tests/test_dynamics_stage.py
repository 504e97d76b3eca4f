"""The dynamics study (``privaudit dynamics``): a real checkpointed digits population built by the
pipeline, and synthetic populations whose per-sample separations are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from privaudit.cli import app
from privaudit.config import AttackConfig, parse_config
from privaudit.errors import ConfigError, SignalError
from privaudit.pipeline import run_all
from privaudit.runtime.run import Layout, Run
from privaudit.stages.prepare import prepare
from privaudit.studies import studies
from privaudit.studies.dynamics import analysis, difficulty, early, plane
from privaudit.studies.dynamics.stage import run_dynamics

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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                  # tiny models: one thread is fastest on a shared CPU
    try:
        run_all(cfg)                          # the run's own metrics (loss, lira_online on 2 targets)
    finally:
        torch.set_num_threads(threads)
    return cfg.run_dir


def _dynamics(run_dir: Path, **kwargs):
    run = Run.open(run_dir)
    cfg = run.config()
    with run.writer():
        return run_dynamics(run, cfg, **kwargs)


def test_command_writes_arrays_of_the_right_shapes(run_dir):
    run = Run.open(run_dir)
    saved = run.manifest()["artifacts"][Layout.scores("lira_online", 6)]["sha256"]
    metrics_before = run.load_json(Layout.metrics)
    result = CliRunner().invoke(app, ["dynamics", str(run_dir), "--bootstrap", "20"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    study = lambda f: Layout.study("dynamics", f)
    traj = run.load_npy(study("trajectories.npy"))
    assert traj.shape == (3, 600, 2)
    assert np.isfinite(traj).all() and traj.min() >= 0 and traj.max() <= 1
    doc = run.load_json(study("dynamics.json"))
    assert doc["epochs"] == [2, 4, 6] and doc["n_targets"] == 8 and doc["attack"] == "lira_online"
    for key in ("precision", "precision_lo", "precision_hi", "spearman", "recall"):
        assert len(doc["early_prediction"][key]) == 3
    assert doc["early_prediction"]["precision"][-1] == pytest.approx(1.0)   # final set predicts itself
    assert len(doc["early_prediction_cross_model"]["precision"]) == 3
    assert set(doc["correlations"]) == {"mean_loss", "first_learned", "forgetting"}
    for name in ("mean_loss", "first_learned"):
        c = doc["correlations"][name]
        assert c["n"] == 600 and c["lo"] <= c["rho"] <= c["hi"] and 0 <= c["p_value"] <= 1
    assert len(doc["findings"]) in (4, 5) and all(f["answer"] and f["question"] for f in doc["findings"])
    assert len(doc["early_identification_hv"]["checkpoint"]) == 3
    assert np.asarray(doc["transitions"], dtype=float).shape == (2, 3, 3)
    assert len(doc["center_of_mass"]) == 3 and len(doc["entropy"]) == 3
    first = run.load_npy(study("difficulty_first_learned.npy"))
    finite = first[np.isfinite(first)]
    assert finite.size > 0 and finite.min() >= 2 and finite.max() <= 6          # in epochs, not indices
    for png in ("trajectories.png", "com_path.png", "early_prediction.png"):
        assert len(run.read_bytes(study(png))) > 5_000
    # the trajectories are those of the leave-one-model-out scores of every model at every checkpoint
    scores = np.stack([run.scores(AttackConfig(name="lira_online"), e, 8) for e in (2, 4, 6)])
    np.testing.assert_allclose(traj, plane.trajectories(scores, run.keep(), fpr=0.01), atol=1e-6)
    # the study wrote no scores: the evaluation's saved scores and metrics are untouched
    assert run.manifest()["artifacts"][Layout.scores("lira_online", 6)]["sha256"] == saved
    assert not run.exists(Layout.scores("lira_online", 2)) and not run.exists(Layout.scores("lira_online", 4))
    assert run.load_json(Layout.metrics) == metrics_before
    text = " ".join(result.output.split())
    assert "SUBSAMPLED APPROXIMATION" in text and "findings" in text and "seed" not in text.lower()
    # the report was rebuilt with the study's section
    page = run.read_text(Layout.report)
    heading, body = next(s for s in studies() if s.name == "dynamics").report_section(run)
    assert f"<h2>{heading}</h2>" in page and body in page and body.count("<img") == 3


def test_rerun_is_deterministic_and_reuses_saved_scores(run_dir):
    a = _dynamics(run_dir, n_boot=0)
    b = _dynamics(run_dir, n_boot=0)
    np.testing.assert_array_equal(a.report.trajectories, b.report.trajectories)
    # with the run's own targets, the final checkpoint is the evaluation's saved scores
    run = Run.open(run_dir)
    two = _dynamics(run_dir, targets=2, n_boot=0)
    saved = run.load_npy(Layout.scores("lira_online", 6))
    np.testing.assert_allclose(two.report.trajectories[-1],
                               plane.trajectories(saved[None], run.keep()[:2], fpr=0.01)[0])


def test_another_attack_and_target_count(run_dir):
    out = _dynamics(run_dir, attack="loss", targets=4, n_boot=0)
    assert out.doc["attack"] == "loss" and out.doc["n_targets"] == 4
    assert out.report.trajectories.shape == (3, 600, 2)
    with pytest.raises(SignalError, match="unknown attack"):
        _dynamics(run_dir, attack="no_such_attack", n_boot=0)
    with pytest.raises(ConfigError, match="targets"):
        _dynamics(run_dir, targets=9, n_boot=0)


def test_clear_error_without_checkpoints(tmp_path):
    cfg = parse_config(TINY | {"out": str(tmp_path), "training": TINY["training"] | {"checkpoints": []}})
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)                                            # no training needed to fail
    with pytest.raises(ConfigError, match="at least 2"):
        _dynamics(cfg.run_dir)
    result = CliRunner().invoke(app, ["dynamics", str(cfg.run_dir)])
    assert result.exit_code == 2
    assert "at least 2" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["dynamics", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a privaudit run directory" in result.output


def test_forgetting_resolution_says_exact_only_for_every_epoch():
    assert "exactly Toneva" in difficulty.forgetting_resolution([1, 2, 3, 4])
    assert "SUBSAMPLED" in difficulty.forgetting_resolution([1, 2, 4])
    assert "SUBSAMPLED" in difficulty.forgetting_resolution([2, 3, 4])


def test_difficulty_signals_from_hand_built_logits():
    # 2 checkpoints, 1 model, 3 samples, 2 queries (only the first is used), 2 classes
    first = np.array([[[[2.0, 0.0], [9, 9]], [[0.0, 1.0], [9, 9]], [[0.0, 0.0], [9, 9]]]])
    second = np.array([[[[0.0, 3.0], [9, 9]], [[0.0, 2.0], [9, 9]], [[5.0, 0.0], [9, 9]]]])
    labels = np.array([0, 1, 0])
    loss, correct = difficulty.difficulty_signals([first, second], labels)
    assert loss.shape == correct.shape == (2, 1, 3)
    np.testing.assert_allclose(loss[0, 0], [np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0)), np.log(2.0)], rtol=1e-6)
    # ties (logits 0, 0) count as argmax = class 0 = correct for sample 2
    np.testing.assert_array_equal(correct[:, 0], [[True, True, True], [False, True, True]])
    keep = np.ones((1, 3), bool)
    np.testing.assert_array_equal(difficulty.forgetting_events(correct, keep), [1, 0, 0])


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
    report, doc = analysis.analyze_population(scores, keep, epochs, fpr=fpr, n_boot=50)
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
    top = level == 4.0
    final_top = np.argsort(-report.final_vulnerability)[:top.sum()]
    assert top[final_top].mean() > 0.95
    assert doc["early_prediction"]["precision"][0] > 0.6
    assert doc["early_prediction"]["precision"][1] > 0.9
    assert doc["early_prediction_cross_model"]["precision"][1] > 0.8
    assert doc["early_prediction"]["chance"] == pytest.approx(0.1)
    early_ = [f for f in doc["findings"] if not f["measure"].startswith("Spearman(difficulty")]
    assert len(early_) == 2 and all(f["answer"] == "yes" for f in early_), early_
    hv = doc["early_identification_hv"]
    # final HV = level-4 samples whose FPR_i <= 0.1: P(Binomial(32, 0.05) <= 3) = 0.92 of the 200
    expected = 200 * stats.binom.cdf(3, 32, fpr)
    assert abs(hv["n_final"] - expected) < 4 * np.sqrt(expected * 0.08) and hv["recall"][-1] == 1.0


def test_hv_identification_on_a_hand_built_region_sequence():
    regions = np.array([[2, 2, 0, 1, -1], [2, 0, 2, 2, 2]])
    hv = early.hv_identification(regions, [5, 10])
    assert hv["n_final"] == 3 and hv["n"] == 4                     # the undefined sample is dropped
    assert hv["recall"] == pytest.approx([1 / 3, 1.0]) and hv["precision"] == pytest.approx([0.5, 1.0])
    assert hv["chance"] == pytest.approx([0.5, 0.75])
    assert hv["recall_lo"][0] < 1 / 3 < hv["recall_hi"][0]
    assert not early.hv_identification(np.zeros((2, 3), int), [1, 2])["available"]
    assert analysis._hv_finding(hv, [5, 10], 0)["answer"].startswith("undetermined")       # 3 < MIN_HV samples
    many = early.hv_identification(np.array([[2] * 12 + [0] * 88, [2] * 12 + [0] * 88]), [5, 10])
    assert analysis._hv_finding(many, [5, 10], 0)["answer"] == "yes"


def test_synthetic_findings_detect_presence_and_absence():
    scores, keep, level, d = _synthetic()
    rng = np.random.default_rng(1)
    e_, m = 3, keep.shape[0]
    # harder samples (larger separation) have a higher training loss; the control's loss is unrelated
    hard = np.broadcast_to(level, (e_, m, level.size)) + rng.standard_normal((e_, m, level.size))
    unrelated = rng.standard_normal((e_, m, level.size))
    _, doc = analysis.analyze_population(scores, keep, [1, 2, 3, 4], train_loss=hard, train_keep=keep, n_boot=100)
    corr = [f for f in doc["findings"] if f["measure"].startswith("Spearman(difficulty")]
    assert corr[0]["answer"] == "yes" and corr[0]["value"] > 0.5 and "higher mean training loss" in corr[0]["question"]
    _, doc = analysis.analyze_population(scores, keep, [1, 2, 3, 4], train_loss=unrelated, train_keep=keep, n_boot=100)
    corr = [f for f in doc["findings"] if f["measure"].startswith("Spearman(difficulty")]
    assert corr[0]["answer"].startswith("not shown") and corr[0]["ci"][0] < 0 < corr[0]["ci"][1]
    # a vulnerable set redrawn at every checkpoint: the early top set says nothing about the final one
    scores, keep, _, _ = _synthetic(reshuffle=True)
    _, doc = analysis.analyze_population(scores, keep, [1, 2, 3, 4], n_boot=100)
    early_ = [f for f in doc["findings"] if not f["measure"].startswith("Spearman(difficulty")]
    assert [f["answer"] for f in early_] == ["no (not above chance)"] * 2, early_
    assert abs(early_[0]["value"] - doc["early_prediction"]["chance"]) < 0.06
