"""benchmarks/reproduce/why_train_more.py (Choi et al., arXiv:2310.08015) at the ``ci`` scale, end to
end, plus the within-group budget helpers it adds to privaudit.studies.memorization."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from privaudit.studies.memorization import budget as bd
from privaudit.studies.memorization.groups import within_group_budget_groups

from _reproduce import load, ci_argv, needs_data


def _module():
    return load("why_train_more")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def test_within_group_groups_stay_inside_their_group():
    rng = np.random.default_rng(0)
    groups = np.r_[np.zeros(300, int), np.ones(100, int)]
    mem = np.r_[rng.uniform(0, 0.3, 300), rng.uniform(0, 1, 100)]
    mem[5] = np.nan
    masks, how = within_group_budget_groups(mem, groups, 0.5, seed=0, min_size=20)
    assert set(masks) == {"id/high_mem", "id/random", "ood/high_mem", "ood/random"}
    for part, gid in (("id", 0), ("ood", 1)):
        high, rand = masks[f"{part}/high_mem"], masks[f"{part}/random"]
        assert (groups[high] == gid).all() and (groups[rand] == gid).all()
        assert high.sum() == rand.sum() > 0
    assert np.array_equal(masks["ood/high_mem"], (groups == 1) & (mem > 0.5))
    # no in-distribution sample passes 0.5: the 20 most memorized ones, never the NaN
    assert masks["id/high_mem"].sum() == 20 and not masks["id/high_mem"][5]
    assert mem[masks["id/high_mem"]].min() >= np.nanmax(mem[(groups == 0) & ~masks["id/high_mem"]])
    assert "top 20" in how["id/high_mem"] and ">" in how["ood/high_mem"]


def _row(group: str, r: int, tpr: float) -> dict:
    return {"group": group, "n_models": r, "skipped": None, "auc_mean": 0.5 + tpr / 2, "tpr@0.01_mean": tpr}


def test_within_group_reduction_factor():
    sizes = (1, 2, 4, 8, 16, 32, 64)
    high = [0.1, 0.5, 0.6, 0.62, 0.63, 0.64, 0.65]
    rand = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5]
    curve = [_row("ood/high_mem", r, t) for r, t in zip(sizes, high)] + \
            [_row("ood/random", r, t) for r, t in zip(sizes, rand)]
    out = bd.within_group_reductions(curve, ["tpr@0.01"])
    assert len(out) == 1 and out[0]["group"] == "ood"
    assert out[0]["factor"] == 32.0 and out[0]["r_needed_a"] == 2      # high_mem reaches 0.5 at R=2 of 64
    assert out[0]["saturation"]["ood/random"]["factor"] == 1.0
    flipped = [_row("ood/high_mem", r, t) for r, t in zip(sizes, rand)] + \
              [_row("ood/random", r, t) for r, t in zip(sizes, high)]
    assert math.isnan(bd.within_group_reductions(flipped, ["tpr@0.01"])[0]["factor"])   # never reaches it


def test_resolvable_fpr():
    mod = _module()
    assert mod.resolvable_fpr(1000) == 1e-3
    assert mod.resolvable_fpr(100) == 1e-2
    assert mod.resolvable_fpr(101) == 1e-2 and mod.resolvable_fpr(99) == 2e-2
    assert math.isnan(mod.resolvable_fpr(0))


# ------------------------------------------------------------------------------------------
# the ci scale, end to end
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    needs_data("mnist", "cifar10_jpeg")
    tmp = tmp_path_factory.mktemp("wtm")
    mod = _module()
    argv = ci_argv(tmp)
    doc = mod.main(argv)
    again = mod.main(argv)       # the run folder resumes: nothing retrained, same numbers
    return doc, again, tmp


def test_ci_document(ci_run):
    doc, again, tmp = ci_run
    saved = json.loads((tmp / "out.json").read_text())
    assert saved["headline"] == doc["headline"] == again["headline"]
    for key in ("headline", "within_group_budget", "ood_detectors", "tables", "seconds", "peak_memory_mb",
                "memorization_study", "figures"):
        assert key in doc
    assert doc["scale"] == "ci" and doc["n_models"] == 16
    assert all(Path(f).is_file() and Path(f).stat().st_size > 0 for f in doc["figures"])


def test_ci_within_group_budget(ci_run):
    doc = ci_run[0]
    wg = doc["within_group_budget"]
    assert set(wg["groups"]) == {"id/high_mem", "id/random", "ood/high_mem", "ood/random"}
    assert set(wg["parts"]) == {"id", "ood"}
    for part, res in wg["parts"].items():
        assert wg["groups"][f"{part}/high_mem"] == wg["groups"][f"{part}/random"]
        key = bd.metric_name(res["fpr"])
        assert res["low_fpr"] == (res["fpr"] <= 0.05)
        for attack in ("lira_online", "lira_online_global"):
            ar = res["attacks"][attack]
            assert ar["sizes"][0] == 1 and ar["sizes"][-1] == doc["n_models"] - doc["sizes"]["budget_targets"]
            assert {r["group"] for r in ar["curve"]} == {f"{part}/high_mem", f"{part}/random"}
            assert {(r["group"], r["metric"]) for r in ar["reductions"]} == {(part, "auc"), (part, key)}
            for r in ar["curve"]:
                if not r["skipped"]:
                    assert 0.0 <= r["auc_mean"] <= 1.0 and 0.0 <= r[f"{key}_mean"] <= 1.0
            for r in ar["reductions"]:
                assert r["factor"] is None or 1.0 <= r["factor"] <= ar["sizes"][-1]
    red = doc["headline"]["reductions"]
    assert set(red) == {f"{a}/{p}" for a in ("lira_online", "lira_online_global") for p in ("id", "ood")}
    assert all({"auc", "tpr", "fpr", "low_fpr"} <= set(v) for v in red.values())


def test_ci_ood_correlations(ci_run):
    od = ci_run[0]["ood_detectors"]
    assert set(od["spearman"]) == {"all", "id", "ood"}
    for part in od["spearman"].values():
        assert set(part) == {f"{d}_vs_{p}" for d in ("msp", "energy")
                             for p in ("mem", "privacy_score", "per_sample_tpr")}
        for r in part.values():
            if r["rho"] is not None:
                assert -1.0 <= r["fisher_lo"] <= r["rho"] <= r["fisher_hi"] <= 1.0
                assert -1.0 <= r["boot_lo"] <= r["rho"] <= r["boot_hi"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in od["detector_auroc_ood_vs_id"].values())


def test_ci_tables_use_resolvable_fprs(ci_run):
    tables = ci_run[0]["tables"]
    assert {"all", "id", "ood"} <= set(tables["fpr_own"])
    for g, fpr in tables["fpr_own"].items():
        assert fpr * tables["nonmembers_min"][g] >= 1.0 - 1e-9          # never TPR at zero false positives
    for attack, rows in tables["attacks"].items():
        for g, row in rows.items():
            assert 0.0 <= row["auc"]["lo"] <= row["auc"]["mean"] <= row["auc"]["hi"] <= 1.0
            fprs = [float(k.split("@")[1]) for k in row if k.startswith("tpr@")]
            assert tables["fpr_own"][g] in fprs
            for f in fprs:                                              # every TPR reported is resolvable
                assert f * tables["nonmembers_min"][g] >= 1.0 - 1e-9
                assert 0.0 <= row[f"tpr@{f:g}"]["mean"] <= 1.0
