"""benchmarks/reproduce/dynamics.py (Chen et al., arXiv:2507.23291: the optimizer factor, SGD vs Adam
vs SAM) at the ``ci`` scale, end to end, plus its helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from privaudit.runtime.run import Layout, Run

from _reproduce import load, ci_argv, needs_data


def _module():
    return load("dynamics")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def test_checkpoints_are_fractions_of_training():
    mod = _module()
    assert mod.checkpoints(40) == [1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 35]   # benchmarks/dynamics_study.py
    assert mod.checkpoints(4) == [1, 2, 3]
    for epochs in (4, 40, 60, 200):
        ck = mod.checkpoints(epochs)
        assert ck == sorted(set(ck)) and 1 <= ck[0] and ck[-1] < epochs


def test_configs_differ_only_in_sizes_and_the_optimizer():
    mod = _module()
    cfgs = {(s, o): mod.build_config(s, o, "/tmp/unused") for s in mod.SIZES for o in mod.OPTIMIZERS}
    for (scale, opt), cfg in cfgs.items():
        assert cfg.training.optimizer == opt and cfg.model.arch == "wrn" and cfg.data.name == "cifar10"
        assert cfg.population.design == "balanced" and cfg.evaluation.targets == cfg.population.n_models
        assert cfg.training.checkpoints == tuple(mod.checkpoints(cfg.training.epochs))
        assert not cfg.training.mirror and cfg.training.shift == 0 and cfg.queries.mirror
    sgd, sam, adam = (cfgs[("cpu", o)].training for o in ("sgd", "sam", "adam"))
    assert (sam.lr, sam.momentum, sam.weight_decay) == (sgd.lr, sgd.momentum, sgd.weight_decay)   # SAM around that SGD
    assert sam.sam_rho == 0.05 and adam.lr == 1e-3 and adam.weight_decay == 0.0
    assert cfgs[("gpu", "sgd")].model.depth == 28 and cfgs[("gpu", "sgd")].model.widen == 2   # WRN-28-2


def test_peak_entry_counts_entries_from_outside_the_region():
    mod = _module()
    counts = np.zeros((2, 3, 3), dtype=int)
    counts[0] = [[50, 5, 5], [0, 30, 10], [0, 0, 0]]          # step 0: 15 of 100 enter region 2
    counts[1] = [[40, 0, 2], [0, 38, 0], [0, 0, 20]]          # step 1: 2 of 80
    got = mod.peak_entry({"transition_counts": counts.tolist(), "epochs": [1, 2, 4]})
    assert got["entered"] == 15 and got["at_risk"] == 100 and got["step"] == [1, 2]
    assert got["probability"] == pytest.approx(0.15) and got["lo"] < 0.15 < got["hi"]
    assert got["per_step"] == pytest.approx([0.15, 0.025])


# ------------------------------------------------------------------------------------------
# the ci scale, end to end
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    needs_data("cifar10_jpeg")
    tmp = tmp_path_factory.mktemp("dyn")
    mod = _module()
    argv = ci_argv(tmp)
    doc = mod.main(argv)
    again = mod.main(argv)       # the run folders resume: nothing retrained, same numbers
    return doc, again, tmp, mod


def test_ci_document_and_resume(ci_run):
    doc, again, tmp, mod = ci_run
    saved = json.loads((tmp / "out.json").read_text())
    assert saved["headline"] == doc["headline"] == again["headline"]
    assert saved["paper_vs_ours"] == again["paper_vs_ours"]
    assert doc["scale"] == "ci" and set(doc["optimizers"]) == {"sgd", "adam", "sam"}
    for o in doc["optimizers"]:
        assert again["seconds"][o]["train"] < 2.0           # resumed: no model trained the second time
    assert len(doc["figures"]) == 1 + 3 * 3
    assert all(Path(f).is_file() and Path(f).stat().st_size > 0 for f in doc["figures"])


def test_ci_optimizers_really_differ(ci_run):
    doc = ci_run[0]
    rows = doc["optimizers"]
    logits = {}
    for o, r in rows.items():
        run = Run(r["run_dir"])
        assert run.config().training.optimizer == o == r["trained_with"]
        logits[o] = np.asarray(run.load_npy(Layout.signal("logits", r["epochs"][-1])))
    assert np.array_equal(Run(rows["sgd"]["run_dir"]).keep(), Run(rows["sam"]["run_dir"]).keep())
    assert not np.allclose(logits["sam"], logits["sgd"])     # SAM is not plain SGD
    assert not np.allclose(logits["adam"], logits["sgd"])


def test_ci_rows(ci_run):
    doc = ci_run[0]
    for o, r in doc["optimizers"].items():
        ep = r["epochs"]
        assert ep == doc["checkpoints"] + [doc["sizes"]["epochs"]]
        u = r["utility"]
        assert len(u["train_acc"]) == len(u["test_acc"]) == len(ep)
        assert all(0.0 <= a <= 1.0 for a in u["train_acc"] + u["test_acc"])
        com = np.array(r["center_of_mass_pp"])
        assert com.shape == (len(ep), 2) and ((0 <= com) & (com <= 100)).all()
        assert r["com_displacement_pp"] == pytest.approx(float(np.linalg.norm(com[-1] - com[0])))
        assert r["com_path_length_pp"] >= r["com_displacement_pp"] - 1e-9
        pe = r["early_prediction"]
        assert pe["precision"][-1] == pytest.approx(1.0)       # the final set predicts itself
        assert pe["chance"] == pytest.approx(pe["k"] / r["n_samples"])
        for i, p in enumerate(pe["precision"]):
            assert pe["precision_lo"][i] <= p + 1e-9 and p <= pe["precision_hi"][i] + 1e-9
        assert r["early_prediction_recall"] == pytest.approx(pe["precision"])   # same k: precision = recall
        hv = r["early_identification_hv"]
        if hv.get("recall"):
            assert hv["recall"][-1] == pytest.approx(1.0)
        assert r["dynamics_fpr"] * (doc["sizes"]["n"] // 2) >= 1.0 - 1e-9
        pk = r["peak_entry"]
        if pk["available"]:
            assert 0.0 <= pk["lo"] <= pk["probability"] <= pk["hi"] <= 1.0
            assert pk["probability"] == pytest.approx(np.nanmax([np.nan if v is None else v
                                                                 for v in r["entry_probability"]]))


def test_ci_lira_at_resolvable_fprs(ci_run):
    doc, mod = ci_run[0], ci_run[3]
    for o, r in doc["optimizers"].items():
        lira = r["lira"]
        assert lira["fpr"] == mod.resolvable_fpr(lira["nonmembers_min"])
        assert lira["fpr"] * lira["nonmembers_min"] >= 1.0 - 1e-9          # never a TPR at zero false positives
        assert 0.0 <= lira["auc"]["lo"] <= lira["auc"]["mean"] <= lira["auc"]["hi"] <= 1.0
        tprs = [k for k in lira if k.startswith("tpr@")]
        assert f"tpr@{lira['fpr']:g}" in tprs
        for k in tprs:
            assert float(k[4:]) >= lira["fpr"] and 0.0 <= lira[k]["mean"] <= 1.0
        assert len(lira["auc_by_epoch"]) == len(r["epochs"])
        assert lira["auc_by_epoch"][-1] == pytest.approx(lira["auc"]["mean"])
        h = doc["headline"][o]
        assert h["lira_auc"][0] == lira["auc"]["mean"]


def test_ci_paper_comparison(ci_run):
    doc = ci_run[0]
    comp = doc["paper_vs_ours"]
    assert len(comp) == 5 and all("paper" in c and "paper_kind" in c and "ours" in c for c in comp)
    sam_sgd = comp[1]
    assert sam_sgd["paper_values"] == {"sam": 0.009, "sgd": 0.027}
    assert sam_sgd["verdict"].split(" ")[0] in ("SAM", "not", "undetermined")
    for c in comp[2:4]:
        assert set(c["ours"]) == {"sgd", "adam", "sam"}
    assert all(math.isfinite(v["auc"]) for v in comp[0]["ours"].values())
