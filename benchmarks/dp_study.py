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

from privaudit.config import AttackConfig, parse_config, set_path
from privaudit.evaluation import metrics
from privaudit.runtime.run import Layout, Run
from privaudit.stages import dp_audit
from privaudit.stages.evaluate import evaluate
from privaudit.stages.prepare import prepare
from privaudit.stages.query import query
from privaudit.stages.train import train

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


def population(run: Run, cfg) -> None:
    """Train, query and evaluate one population through the stages (resumes finished work; the
    caller holds the run's lock)."""
    prepare(run, cfg)
    train(run, cfg)
    query(run, cfg)
    evaluate(run, cfg)


def lira_scores(run: Run, cfg, n_targets: int) -> np.ndarray:
    """LiRA (online) scores ``[T, n]`` of targets ``0..T-1``: those the evaluation saved, when they fit."""
    attack = next((a for a in cfg.attacks if a.key == "lira_online"), None) or AttackConfig(name="lira_online")
    return run.scores(attack, cfg.training.epochs, n_targets)


def pooled(scores: np.ndarray, member: np.ndarray, n_boot: int = 1000) -> dict[str, Any]:
    """AUC and TPR at 0.1% / 1% FPR of the pooled (target, sample) trials, 95% bootstrap intervals."""
    y, s = member.ravel(), scores.ravel().astype(np.float64)
    out: dict[str, Any] = {"n_in": int(y.sum()), "n_out": int((~y).sum())}
    for name, fn in (("auc", "auc"), ("tpr@0.001", "tpr@0.001"), ("tpr@0.01", "tpr@0.01")):
        value = metrics.auc(y, s) if name == "auc" else metrics.tpr_at_fpr(y, s, float(name[4:]))
        lo, hi = metrics.bootstrap_ci(fn, y, s, n_boot=n_boot, seed=0)
        out[name] = {"value": value, "lo": lo, "hi": hi}
    return out


def test_accuracy(cfg, run: Run) -> float:
    """Accuracy of the target models on their non-member ordinary (non-canary) samples."""
    t = cfg.evaluation.targets
    logits = np.asarray(run.load_npy(Layout.signal("logits", cfg.training.epochs), mmap=True)[:t, :, 0])
    y = run.labels()
    kind = run.optional_pool("kind")
    ordinary = np.ones(len(y), dtype=bool) if kind is None else kind[:len(y)] == 0
    out = ~run.keep()[:t] & ordinary
    return float(((logits.argmax(-1) == y) & out).sum() / out.sum())


def study(name: str, patch: dict[str, Any], out: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = parse_config(config(name, out, patch))
    run = Run(cfg.run_dir)
    with run.writer():
        population(run, cfg)
        doc = dp_audit.audit(run, cfg, samples="canaries", alpha=0.05)
    idx = dp_audit.select_samples(run, "canaries")
    t = cfg.evaluation.targets
    scores = lira_scores(run, cfg, t)
    keep = run.keep()[:t]
    cp, one = doc["bounds"]["clopper_pearson"], doc["bounds"]["one_run"]
    return {"setting": name, "dp": None if cfg.training.dp is None else cfg.training.dp.model_dump(mode="json"),
            "claimed_epsilon": doc["claimed_epsilon"],
            "noise_multiplier": None if doc["claimed"] is None else doc["claimed"]["noise_multiplier"],
            "test_accuracy": test_accuracy(cfg, run),
            "lira_canaries": pooled(scores[:, idx], keep[:, idx]), "lira_all": pooled(scores, keep, n_boot=200),
            "eps_lb_clopper_pearson": cp["eps_lb"], "eps_lb_one_run": one["eps_lb"],
            "refuted": bool(cp["violates_claim"]), "verdict": doc["verdict"], "confidence": cp["confidence"],
            "n_models": cfg.population.n_models, "targets": t, "canaries": int(idx.size),
            "seconds": round(time.perf_counter() - t0, 1), "run_dir": str(run.root)}


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
