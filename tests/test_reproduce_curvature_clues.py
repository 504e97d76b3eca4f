"""benchmarks/reproduce/curvature_clues.py (Ravikumar, Soufleri, Roy, NeurIPS 2024) at the ``ci``
scale, end to end: attack table, dataset-size sweep, DP sweep with the fitted bound, Hutchinson vs
zero-order; a second call resumes without retraining and gives the same numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _reproduce import load, ci_argv, needs_data


def _module():
    return load("curvature_clues")


def test_fprs_are_resolvable():
    mod = _module()
    assert mod.fprs_for(1000) == (0.001, 0.01)
    assert mod.fprs_for(200) == (0.005, 0.01)
    assert mod.fprs_for(64) == (0.02,)          # 1% cannot be resolved by 64 non-members
    assert mod.fprs_for(0) == ()


def test_dp_members_are_a_seeded_half():
    mod = _module()
    a, b = mod.dp_members(100, 0), mod.dp_members(100, 1)
    assert a.sum() == b.sum() == 50 and not np.array_equal(a, b)
    assert np.array_equal(a, mod.dp_members(100, 0))


def test_scales_change_only_sizes():
    mod = _module()
    keys = {k for k in mod.SIZES["ci"]}
    assert all(set(v) == keys for v in mod.SIZES.values())
    for scale in mod.SIZES:
        assert mod.SIZES[scale]["recipe"] in mod.RECIPES


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    needs_data("cifar10_jpeg")
    tmp = tmp_path_factory.mktemp("cc")
    mod = _module()
    argv = ci_argv(tmp)
    doc = mod.main(argv)
    again = mod.main(argv)       # the run folders resume: nothing retrained, same numbers
    return doc, again, tmp


def test_ci_document_and_resume(ci_run):
    doc, again, tmp = ci_run
    saved = json.loads((tmp / "out.json").read_text())
    assert saved["headline"] == doc["headline"] == again["headline"]
    for key in ("attacks", "size", "dp", "hutchinson", "headline", "seconds", "figures", "utility"):
        assert key in doc
    assert doc["scale"] == "ci" and doc["n_models"] == 4
    assert len(doc["figures"]) == 4
    assert all(Path(f).is_file() and Path(f).stat().st_size > 0 for f in doc["figures"])
    # the resumed call trained nothing: its population stage took no training time
    assert again["seconds"]["population"]["train"] < 1.0
    assert again["seconds"]["dp"] < doc["seconds"]["dp"]


def resolvable(n_neg: int) -> float:
    return _module().resolvable_fpr(n_neg)


def _check_row(row):
    assert 0.0 <= row["auc"]["lo"] <= row["auc"]["mean"] <= row["auc"]["hi"] <= 1.0
    for f in row["fprs"]:                           # every TPR reported is resolvable
        assert f * row["nonmembers_min"] >= 1.0 - 1e-9
        assert 0.0 <= row[f"tpr@{f:g}"]["mean"] <= 1.0
    assert not any(k.startswith("tpr@") and float(k[4:]) not in row["fprs"] for k in row)
    assert row["lowest_fpr"] == min(row["fprs"]) == resolvable(row["nonmembers_min"])


def test_ci_attack_table(ci_run):
    att = ci_run[0]["attacks"]
    assert set(att["rows"]) == {"curv_zo_nll", "curv_zo_lr", "curv_zo_nll_quirks", "curv_zo_lr_quirks",
                                "lira_online", "lira_offline", "loss", "sablayrolles", "watson"}
    for key, row in att["rows"].items():
        _check_row(row)
        if key in ("curv_zo_nll", "curv_zo_lr", "lira_online", "loss", "sablayrolles", "watson"):
            assert 0.5 < row["paper"]["auroc"] < 1.0
    assert att["median_curvature"]["members"] > 0 and att["median_curvature"]["nonmembers"] > 0


def test_ci_dataset_size(ci_run):
    doc = ci_run[0]
    size = doc["size"]
    assert [r["fraction"] for r in size["rows"]] == list(doc["sizes"]["fractions"])
    ms = [r["m"] for r in size["rows"]]
    assert ms == sorted(ms) and ms[0] == round(doc["sizes"]["fractions"][0] * doc["n_samples"])
    for r in size["rows"]:
        assert set(r["attacks"]) == {"loss", "lira_online", "lira_offline", "curv_zo_nll", "curv_zo_lr"}
        for row in r["attacks"].values():
            _check_row(row)


def test_ci_dp_sweep(ci_run):
    dp = ci_run[0]["dp"]
    eps = (1.0, 2.0, 4.0, 8.0, 16.0, 50.0)
    assert [r["eps"] for r in dp["rows"]] == [*eps, "inf"]
    claimed = [r["claimed_epsilon"] for r in dp["rows"][:-1]]
    assert all(c <= e and abs(c - e) / e < 0.05 for c, e in zip(claimed, eps))   # the accountant meets the target
    sigmas = [r["noise_multiplier"] for r in dp["rows"][:-1]]
    assert sigmas == sorted(sigmas, reverse=True)       # more privacy, more noise
    assert dp["rows"][-1]["claimed_epsilon"] is None
    for r in dp["rows"]:
        for row in r["attacks"].values():
            _check_row(row)
    bounds = [dp["dp_auc_upper_bound"][f"{e:g}"] for e in eps]
    assert bounds == sorted(bounds) and all(0.5 < b <= 1.0 for b in bounds)
    for fit in dp["fits"].values():
        assert "error" in fit or (fit["l"] >= 0 and math.isfinite(fit["rmse"]))


def test_ci_hutchinson(ci_run):
    h = ci_run[0]["hutchinson"]
    assert h["n_models"] == 4 and h["n_samples"] == 32
    assert h["zo_recomputed_max_abs_log_diff"] < 1e-3      # the stage's probes, recomputed
    assert h["negative_trace_fraction"] <= 0.01             # CE input Hessian of a ReLU net is PSD
    for v in h["spearman"].values():
        assert -1.0 <= v["lo"] <= v["rho"] <= v["hi"] <= 1.0
    assert set(h["attacks"]) == {"zero_order", "hutchinson_trace", "hutchinson_trace_sq"}
    for res in h["attacks"].values():
        for row in res.values():
            assert 0.0 <= row["auc"]["mean"] <= 1.0
    assert h["cost"]["hutchinson_us_per_model_sample"] > 0 and h["cost"]["zero_order_us_per_model_sample"] > 0
