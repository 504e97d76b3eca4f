"""DP study: LiRA and the audited eps lower bound against the claimed eps of DP-SGD on digits.

One population per setting (``configs/dp_digits.yaml``: 32 MLPs, 1,797 digits with 100 noise + 100
mislabeled canaries, balanced design): no DP, DP-SGD at claimed eps in {0.5, 1, 2, 4, 8} (Opacus
RDP, delta 1e-5, C = 1), the two deliberately broken variants at a claimed eps = 1, and the catch
test's canary-heavy design (200 noise canaries in a 400-sample pool, batch 8, C = 100, eps = 0.5)
correct and with ``noise_not_scaled``. Per setting:
test accuracy, LiRA (online) AUC and TPR at 0.1% FPR on the canaries (pooled over the target
models, 95% bootstrap interval), and ``privaudit audit``'s lower bounds at 95% confidence.

    nice -n 10 python benchmarks/dp_study.py [--out /tmp/privaudit_dp_study] [--only NAME ...]

Prints one JSON object per setting and writes ``benchmarks/results/dp_study.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from privaudit.config import parse_config, set_path
from privaudit.evaluation import metrics
from privaudit.runtime import audit_stage, pipeline
from privaudit.runtime.store import RunStore

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "configs" / "dp_digits.yaml").read_text())
HEAVY = {"data.n": 400, "canaries": {"noise": 200}, "model.hidden": [64], "training.batch_size": 8,
         "training.lr": 0.02, "training.dp.max_grad_norm": 100.0, "training.dp.target_epsilon": 0.5}
SETTINGS: dict[str, dict[str, Any]] = {
    "no_dp": {"training.dp": None},
    **{f"eps_{e:g}": {"training.dp.target_epsilon": e} for e in (0.5, 1.0, 2.0, 4.0, 8.0)},
    "eps_1_bug_noise_not_scaled": {"training.dp.bug": "noise_not_scaled", "training.dp.max_grad_norm": 100.0},
    "eps_1_bug_clip_after_average": {"training.dp.bug": "clip_after_average"},
    # the catch test's design (tests/test_audit_stage.py): 200 noise canaries in a 400-sample pool
    "heavy_eps_0.5": HEAVY,
    "heavy_eps_0.5_bug_noise_not_scaled": HEAVY | {"training.dp.bug": "noise_not_scaled"},
}


def config(name: str, out: str, patch: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE) | {"name": name, "out": out}
    for key, value in patch.items():
        set_path(data, key, copy.deepcopy(value))
    return data


def population(data: dict[str, Any]):
    """Train, query and evaluate one population through the pipeline (resumes finished work)."""
    cfg = parse_config(data)
    store = RunStore(cfg.run_dir)
    pipeline.prepare(cfg, store)
    pipeline.train(cfg, store)
    pipeline.compute_signals(cfg, store)
    pipeline.evaluate(cfg, store)
    return cfg, store


def pooled(scores: np.ndarray, member: np.ndarray, n_boot: int = 1000) -> dict[str, Any]:
    """AUC and TPR at 0.1% / 1% FPR of the pooled (target, sample) trials, 95% bootstrap intervals."""
    y, s = member.ravel(), scores.ravel().astype(np.float64)
    out: dict[str, Any] = {"n_in": int(y.sum()), "n_out": int((~y).sum())}
    for name, fn in (("auc", "auc"), ("tpr@0.001", "tpr@0.001"), ("tpr@0.01", "tpr@0.01")):
        value = metrics.auc(y, s) if name == "auc" else metrics.tpr_at_fpr(y, s, float(name[4:]))
        lo, hi = metrics.bootstrap_ci(fn, y, s, n_boot=n_boot, seed=0)
        out[name] = {"value": value, "lo": lo, "hi": hi}
    return out


def test_accuracy(cfg, store) -> float:
    """Accuracy of the target models on their non-member ordinary (non-canary) samples."""
    n = pipeline.n_audit(store)
    logits = np.asarray(pipeline.load_logits(store, cfg.training.epochs))[:cfg.evaluation.targets, :, 0]
    y = np.asarray(store.load_npy("data/y.npy"))[:n]
    ordinary = store.load_npy("data/kind.npy")[:n] == 0
    out = ~store.load_npy("keep.npy")[:cfg.evaluation.targets] & ordinary
    return float(((logits.argmax(-1) == y) & out).sum() / out.sum())


def study(name: str, patch: dict[str, Any], out: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg, store = population(config(name, out, patch))
    doc = audit_stage.audit(cfg, store, samples="canaries", alpha=0.05)
    idx = audit_stage.select_samples(store, "canaries")
    t = cfg.evaluation.targets
    scores = audit_stage.attack_scores(cfg, store, "lira_online", cfg.training.epochs, t)
    keep = store.load_npy("keep.npy")[:t]
    cp, one = doc["bounds"]["clopper_pearson"], doc["bounds"]["one_run"]
    return {"setting": name, "dp": None if cfg.training.dp is None else cfg.training.dp.model_dump(mode="json"),
            "claimed_epsilon": doc["claimed_epsilon"],
            "noise_multiplier": None if doc["claimed"] is None else doc["claimed"]["noise_multiplier"],
            "test_accuracy": test_accuracy(cfg, store),
            "lira_canaries": pooled(scores[:, idx], keep[:, idx]), "lira_all": pooled(scores, keep, n_boot=200),
            "eps_lb_clopper_pearson": cp["eps_lb"], "eps_lb_one_run": one["eps_lb"],
            "refuted": bool(cp["violates_claim"]), "verdict": doc["verdict"], "confidence": cp["confidence"],
            "n_models": cfg.population.n_models, "targets": t, "canaries": int(idx.size),
            "seconds": round(time.perf_counter() - t0, 1), "run_dir": str(store.root)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/privaudit_dp_study")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "dp_study.json"))
    ap.add_argument("--only", nargs="*", default=None, choices=list(SETTINGS))
    args = ap.parse_args()
    rows = []
    for name, patch in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        rows.append(study(name, patch, args.out))
        print(json.dumps(rows[-1]), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"base_config": BASE, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
