"""``privaudit memorization RUN_DIR`` end to end on a tiny digits + MNIST mixture population built
through the pipeline, plus the study's pieces on synthetic populations."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from privaudit.attacks.registry import get_attack
from privaudit.cli import app
from privaudit.config import parse_config
from privaudit.evaluation.per_sample import per_sample_tpr
from privaudit.evaluation.protocol import score_targets
from privaudit.pipeline import run_all
from privaudit.runtime.run import Layout, Run
from privaudit.studies import studies
from privaudit.studies.memorization import budget, groups
from privaudit.studies.memorization.budget import shadow_budget_curve

M, TARGETS = 14, 4
CONFIG = {
    "name": "mix", "seed": 0,
    "data": {"name": "digits", "n": 500, "mixture": {"kind": "ood", "source": "mnist5k", "n_under": 100}},
    "population": {"n_models": M, "models_per_group": 7},
    "model": {"arch": "mlp", "hidden": [128]},
    "training": {"epochs": 15, "batch_size": 32, "lr": 0.003, "workers": 1},
    "attacks": ["loss", "lira_online", "lira_offline"],
    "evaluation": {"targets": TARGETS, "bootstrap": 10},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Trained, queried and attacked (scores saved) by the pipeline."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                        # 2 shared cores: avoid oversubscription
    try:
        cfg = parse_config(CONFIG | {"out": str(tmp_path_factory.mktemp("runs"))})
        run_all(cfg)
    finally:
        torch.set_num_threads(threads)
    return cfg.run_dir


def _study(rel: str = "") -> str:
    return Layout.study("memorization", rel)


@pytest.fixture(scope="module")
def result(run_dir):
    # 600 samples, 14 models: ~300 non-members per target, so 0.1 % FPR would rest on zero false
    # positives; the tiny population is read at 5 % FPR
    out = CliRunner().invoke(app, ["memorization", str(run_dir), "--bootstrap", "20", "--repeats", "2",
                                   "--budget-targets", "2", "--threshold", "0.5", "--fpr", "0.05"],
                             env={"COLUMNS": "240"})
    assert out.exit_code == 0, out.output[-3000:]
    run = Run.open(run_dir)
    return out.output, run.load_json(_study("memorization.json")), run


def test_outputs_have_the_right_shapes(result):
    output, doc, run = result
    n = 600
    assert run.optional_pool("group").tolist().count(1) == 100
    for name in ("mem", "mem_se", "mem_selection", "privacy_score", "per_sample_tpr", "hellinger_sq"):
        arr = run.load_npy(_study(f"{name}.npy"))                # written through the run: hash checked
        assert arr.shape == (n,), name
    mem, se = run.load_npy(_study("mem.npy")), run.load_npy(_study("mem_se.npy"))
    assert np.isfinite(mem).all() and (np.abs(mem) <= 1).all() and (se >= 0).all()
    for png in ("budget_auc.png", "budget_tpr.png", "budget_bound.png"):
        assert len(run.read_bytes(_study(png))) > 5000
    assert doc["n_samples"] == n and doc["n_models"] == M
    # every attack of the run, every group, with intervals
    assert set(doc["tables"]) == {"loss", "lira_online", "lira_offline"}
    metrics = run.load_json(Layout.metrics)["attacks"]
    for key, res in doc["tables"].items():
        assert set(res["groups"]) == {"all", "under", "high_mem"}
        all_ = res["groups"]["all"]
        assert all_["n"] == n and all_["auc"]["lo"] <= all_["auc"]["mean"] <= all_["auc"]["hi"]
        # the evaluation's saved scores were reused: the 'All' column is the run's own AUC
        assert all_["auc"]["mean"] == pytest.approx(metrics[key]["summary"]["auc"]["mean"], abs=1e-12)
        assert res["groups"]["under"]["n"] == 100
    # budget: 1, 2, 4, 8, all 12 reference models; high_mem and random groups of equal size
    assert doc["budget"]["sizes"] == [1, 2, 4, 8, 12]
    sizes = doc["budget"]["groups"]
    assert sizes["high_mem"] == sizes["random"] == doc["tables"]["loss"]["groups"]["high_mem"]["n"] > 0
    rows = {(r["n_models"], r["group"]): r for r in doc["budget"]["curve"]}
    assert rows[(1, "random")]["attack"] == "fallback" and rows[(12, "random")]["attack"] == "primary"
    assert "docs/studies.md" in doc["budget"]["bound"]["derivation"]
    for key in ("mem_vs_privacy_score", "mem_vs_per_sample_tpr"):
        c = doc["correlations"][key]
        assert -1 <= c["lo"] <= c["rho"] <= c["hi"] <= 1 and 0 <= c["p_value"] <= 1
    assert "Under-represented" in output and "Spearman(memorization" in output and "predicted reduction" in output
    assert "seed" not in output.lower()
    assert run.stage_done("memorization")["attack"] == "lira_online"


def test_report_has_the_memorization_section(result):
    """The command rebuilt the report with the study's section: its tables and its three plots."""
    _, doc, run = result
    page = run.read_text(Layout.report)
    assert "<h2>Memorization and vulnerability</h2>" in page
    section = page[page.index("<h2>Memorization and vulnerability</h2>"):]
    section = section[:section.index("<h2>", 5)]
    assert section.count("<img") == 3 and "High memorization" in section
    heading, body = next(s for s in studies() if s.name == "memorization").report_section(run)
    assert heading == "Memorization and vulnerability" and body in page


def test_memorization_matches_the_logits(result):
    """mem = P[correct | IN] - P[correct | OUT], recomputed here by hand from the stored logits."""
    _, doc, run = result
    keep, y = run.keep(), run.labels()
    logits = run.load_npy(Layout.signal("logits", doc["epoch"]))
    correct = logits[:, :, 0].argmax(-1) == y
    i = 7
    want = correct[keep[:, i], i].mean() - correct[~keep[:, i], i].mean()
    assert run.load_npy(_study("mem.npy"))[i] == pytest.approx(want, abs=1e-6)
    sel = run.load_npy(_study("mem_selection.npy"))
    k, ref = keep[TARGETS:], correct[TARGETS:]          # the reference models only
    assert sel[i] == pytest.approx(ref[k[:, i], i].mean() - ref[~k[:, i], i].mean(), abs=1e-6)


def test_high_memorization_samples_are_more_vulnerable(result):
    """Choi et al.'s central finding at tiny scale: samples with mem > 0.5 get a much higher
    per-sample TPR (at 5 % FPR here) than random samples, and memorization correlates with it."""
    _, doc, run = result
    mem, tpr = run.load_npy(_study("mem.npy")), run.load_npy(_study("per_sample_tpr.npy"))
    high = mem > 0.5
    assert high.sum() >= 10
    rand = np.random.default_rng(0).choice(mem.size, size=int(high.sum()), replace=False)
    assert tpr[high].mean() > 2 * tpr[rand].mean() + 0.05
    assert doc["correlations"]["mem_vs_per_sample_tpr"]["lo"] > 0
    assert doc["correlations"]["mem_vs_privacy_score"]["lo"] > 0.2
    lira = doc["tables"]["lira_online"]["groups"]
    assert lira["high_mem"]["auc"]["mean"] > lira["all"]["auc"]["mean"] + 0.1


def test_cli_errors_are_one_line(run_dir, tmp_path):
    runner = CliRunner()
    for args, needle in (([str(tmp_path)], "not a privaudit run directory"),
                         ([str(run_dir), "--fpr", "2"], "--fpr"),
                         ([str(run_dir), "--budget-sizes", "1,x"], "--budget-sizes"),
                         ([str(run_dir), "--budget-targets", "13"], "--budget-targets"),
                         ([str(run_dir), "--attack", "nope"], "unknown attack")):
        out = runner.invoke(app, ["memorization", *args], env={"COLUMNS": "400"})
        assert out.exit_code == 2, (args, out.output)
        assert needle in out.output and out.output.strip().count("\n") == 0, out.output


# -- pieces on synthetic populations ---------------------------------------------------------------
def _gaussian_population(m=40, n=600, seed=0):
    """phi-like signal: the first 100 samples shift by 4 sd when IN (highly memorized), the rest by
    1; each sample IN in half of the models."""
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((m, n)), axis=0) < m // 2
    delta = np.where(np.arange(n) < 100, 4.0, 1.0)
    signal = rng.normal(size=n) + delta * keep + rng.normal(size=(m, n))
    return signal[:, :, None], keep, np.arange(n) < 100


def test_registry_attacks_run_in_budget_curves_at_tiny_r():
    """shadow_budget_curve calls the attack on the eligible samples only, so the registry's online
    LiRA (which refuses samples without an IN or OUT reference) runs from R = 2 on."""
    signal, keep, high = _gaussian_population()
    masks = {"high": high, "low": ~high}
    curve = shadow_budget_curve(get_attack("lira_online"), signal, keep, np.zeros(keep.shape[1], np.int64),
                                targets=[0, 1], sample_groups=masks, sizes=(1, 2, 8, 32), repeats=2,
                                fallback_fn=get_attack("lira_offline"), n_boot=50)
    by = {(r["n_models"], r["group"]): r for r in curve}
    assert by[(1, "high")]["attack"] == "fallback"
    assert 0.3 < by[(2, "low")]["excluded_frac"] < 0.7 and by[(32, "low")]["excluded_frac"] == 0
    assert by[(2, "high")]["auc_mean"] > 0.9 > by[(32, "low")]["auc_mean"]
    # per-sample TPR: the highly separated ("memorized") samples are flagged far more often
    scores = score_targets(get_attack("lira_online"), signal, keep, np.zeros(keep.shape[1], np.int64), list(range(8)))
    tpr = per_sample_tpr(scores, keep[:8], 1e-3)
    assert tpr[high].mean() > 0.5 > 0.05 > tpr[~high].mean()
    sat_high = budget.saturation(curve, "high", "auc", 0.5)
    sat_low = budget.saturation(curve, "low", "auc", 0.5)
    assert sat_high["r_needed"] <= 2 and sat_high["factor"] >= 16
    assert sat_low["r_needed"] >= 8
    cross = budget.cross_reduction(curve, "auc", "high", "low")
    assert cross["r_needed_a"] == 1 and cross["factor"] == 32


def test_group_metrics_and_groups():
    rng = np.random.default_rng(1)
    keep_t = rng.random((3, 400)) < 0.5
    scores = rng.normal(size=(3, 400)) + 3.0 * keep_t * (np.arange(400) < 50)
    strong = np.arange(400) < 50
    g = groups.group_metrics(scores, keep_t, strong, fpr=0.01, mode="strict", n_boot=50, seed=0)
    w = groups.group_metrics(scores, keep_t, ~strong, fpr=0.01, mode="strict", n_boot=50, seed=0)
    assert g["auc"]["mean"] > 0.9 and abs(w["auc"]["mean"] - 0.5) < 0.1
    assert g["auc"]["lo"] <= g["auc"]["mean"] <= g["auc"]["hi"]
    assert g["fpr_resolution"] > 0.01 and g["tpr_global"]["mean"] > w["tpr_global"]["mean"]
    assert "skipped" in groups.group_metrics(scores, keep_t, np.zeros(400, bool), fpr=0.01, mode="strict",
                                             n_boot=0, seed=0)
    mem = np.array([0.9, 0.1, 0.7, np.nan, 0.6])
    masks = groups.table_groups(np.array([1, 1, 0, 1, 1], np.int8), mem, 0.5)
    assert masks["high_mem"].tolist() == [True, False, False, False, True]    # inside the group only
    assert groups.table_groups(None, mem, 0.5)["high_mem"].tolist() == [True, False, True, False, True]
    assert budget.default_sizes(12) == (1, 2, 4, 8, 12) and budget.default_sizes(8) == (1, 2, 4, 8)
