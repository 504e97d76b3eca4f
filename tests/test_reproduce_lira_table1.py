"""benchmarks/reproduce/lira_table1.py (Carlini et al., IEEE S&P 2022, Table I) at the ``ci`` scale,
end to end, plus its helpers: scales that change only sizes, the headline ratio, resolution, and
training in budgeted pieces."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from _reproduce import load, ci_argv, needs_data


def _module():
    return load("lira_table1")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def test_scales_change_only_sizes(tmp_path):
    mod = _module()
    recipe = lambda c: (c.training.optimizer, c.training.lr, c.training.momentum, c.training.weight_decay,
                        c.training.schedule, c.training.mirror, c.training.shift, c.population.design,
                        c.population.pkeep, c.queries.mirror, c.data.name, [a.key for a in c.attacks])
    cfgs = [mod.build_config(scale, arch, str(tmp_path)) for scale in mod.SIZES for arch in mod.ARCHS
            if mod.SIZES[scale][arch] is not None]
    assert len(cfgs) == 5 and len({str(recipe(c)) for c in cfgs}) == 1
    assert recipe(cfgs[0])[:7] == ("sgd", 0.1, 0.9, 0.0005, "cosine", True, 4)     # LiRA's recipe
    gpu = {c.model.arch: c for c in cfgs if c.name.endswith("_gpu")}
    assert len(mod_queries(gpu["wrn"])) == 18 and len(mod_queries(gpu["airbench"])) == 18   # LiRA's 18 queries
    assert (gpu["wrn"].model.depth, gpu["wrn"].model.widen) == (16, 4) and gpu["airbench"].model.width == 64
    assert all(c.population.n_models >= 64 for c in gpu.values()) and gpu["wrn"].training.epochs == 100


def mod_queries(cfg):
    from privaudit.runtime import plan
    return plan.queries(cfg)


def test_wrn_has_no_cpu_scale():
    mod = _module()
    with pytest.raises(SystemExit, match="GPU only"):
        mod.arch_list("cpu", "wrn")
    assert mod.arch_list("cpu", None) == ["airbench"] and mod.arch_list("gpu", None) == ["airbench", "wrn"]


def _rows(tprs: dict[str, float]) -> dict:
    return {k: {"pooled": {"tpr@0.001": {"value": v, "lo": v / 2, "hi": v * 1.5}}} for k, v in tprs.items()}


def test_headline_ratio():
    mod = _module()
    tprs = {"loss": 0.0, "watson": 0.013, "sablayrolles": 0.017, "lira_online": 0.084, "lira_online_global": 0.09,
            "rmia_online": 0.1}
    h = mod.headline(_rows(tprs), 1e-3)
    assert h["best_calibrated"] == "sablayrolles" and h["ratio"] == pytest.approx(0.084 / 0.017)
    assert h["best_lira"] == "lira_online_global" and h["best_lira_ratio"] == pytest.approx(0.09 / 0.017)
    assert not h["intervals_overlap"]                       # 0.042 > 0.0255
    h0 = mod.headline(_rows(tprs | {"watson": 0.0, "sablayrolles": 0.0}), 1e-3)
    assert h0["ratio"] is None and h0["best_lira_ratio"] is None   # no ratio against a TPR of 0


# ------------------------------------------------------------------------------------------
# the ci scale, end to end
# ------------------------------------------------------------------------------------------

def _model_files(run_dir: str) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((Path(run_dir) / "models").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    needs_data("cifar10_jpeg")
    tmp = tmp_path_factory.mktemp("lira_t1")
    mod = _module()
    argv = ci_argv(tmp)
    doc = mod.main(argv)
    models = {a: _model_files(r["run_dir"]) for a, r in doc["archs"].items()}
    again = mod.main(argv)       # the run folders resume: nothing retrained, same numbers
    return doc, again, models, tmp, mod


def test_ci_document(ci_run):
    doc, again, models, tmp, mod = ci_run
    saved = json.loads((tmp / "out.json").read_text())
    assert saved["headline"] == doc["headline"] == again["headline"]
    assert set(doc["archs"]) == {"airbench", "wrn"} and doc["scale"] == "ci"
    for arch, res in doc["archs"].items():
        assert res["status"] == "done" and res["population"]["models"] == 8
        assert models[arch] and _model_files(res["run_dir"]) == models[arch]       # not retrained
        assert again["archs"][arch]["table"] == res["table"]
        assert Path(res["figure"]).is_file() and Path(res["figure"]).stat().st_size > 0
        assert res["model"]["arch"] == arch and len(res["population"]) > 0


def test_ci_table(ci_run):
    doc = ci_run[0]
    mod = ci_run[4]
    for res in doc["archs"].values():
        assert list(res["table"]) == mod.ATTACKS
        n_neg = res["resolution"]["n_neg"]
        assert 0 < n_neg < res["targets"] * 256                     # pool of 256 per target
        for key, r in res["resolution"].items():
            if key != "n_neg":                                  # resolvable iff FPR x non-members >= 1
                assert r["resolvable"] == (float(key[4:]) * n_neg >= 1)
        assert not res["resolution"]["tpr@0.001"]["resolvable"]       # 512 pooled non-members at ci
        for name, row in res["table"].items():
            p = row["pooled"]
            assert p["n_neg"] == n_neg
            for m in ("auc", "balanced_accuracy", "tpr@0.01"):
                assert 0.0 <= p[m]["lo"] <= p[m]["hi"] <= 1.0 and 0.0 <= p[m]["value"] <= 1.0
            pt = row["per_target"]                                    # privaudit's evaluation
            assert pt["tpr@0.001"] == {"unresolved": True, "needs_nonmembers": 1000}
            assert pt["tpr@1e-05"] == {"unresolved": True, "needs_nonmembers": 100000}
            assert 0.0 <= pt["auc"]["lo"] <= pt["auc"]["mean"] <= pt["auc"]["hi"] <= 1.0
        h = res["headline"]
        assert h["fpr"] * n_neg >= 1.0 and h["fpr"] == mod.resolvable_fpr(n_neg)   # the lowest resolvable FPR
        assert h["best_calibrated"] in mod.CALIBRATED and h["lira"] == "lira_online"
        assert h["ratio"] is None or h["ratio"] == pytest.approx(h["lira_tpr"] / h["best_calibrated_tpr"])
        assert h["paper_ratio"] == pytest.approx(8.4 / 1.7)
        assert "0.01" in h["at"] and all(float(a) * n_neg >= 1.0 for a in h["at"])   # 1% FPR: resolvable at ci
        assert doc["headline"][res["model"]["arch"]]["at"]["0.01"]["ratio"] == h["at"]["0.01"]["ratio"]


def test_ci_training_in_pieces(tmp_path, monkeypatch):
    """--max-train-s: one group per call when the budget is spent; a call that trained stops there,
    the next one (nothing left to train) queries and attacks; the models are those of an
    uninterrupted run."""
    needs_data("cifar10_jpeg")
    mod = _module()
    sizes = copy.deepcopy(mod.SIZES)
    sizes["ci"]["airbench"] |= {"n_models": 4, "models_per_group": 2, "epochs": 2}
    monkeypatch.setattr(mod, "SIZES", sizes)
    argv = ["--scale", "ci", "--arch", "airbench", "--out", str(tmp_path / "runs"), "--json",
            str(tmp_path / "out.json"), "--figures", str(tmp_path), "--max-train-s", "0"]
    calls = [mod.main(argv)["archs"]["airbench"] for _ in range(3)]
    assert [c["training_progress"]["groups_done"] for c in calls] == [1, 2, 2]
    assert [c["training_progress"]["trained_now"] for c in calls] == [1, 1, 0]
    assert [c["status"] for c in calls[:2]] == [
        "training: 1 of 2 groups done; run the command again (to train the rest)",
        "training: 2 of 2 groups done; run the command again (for the queries and the table)"]
    assert "table" not in calls[1] and calls[2]["status"] == "done"
    pieces = calls[2]["table"]
    whole = mod.main(["--scale", "ci", "--arch", "airbench", "--out", str(tmp_path / "whole"), "--json",
                      str(tmp_path / "whole.json"), "--figures", str(tmp_path)])["archs"]["airbench"]["table"]
    for name in pieces:
        assert np.isclose(pieces[name]["pooled"]["auc"]["value"], whole[name]["pooled"]["auc"]["value"])
