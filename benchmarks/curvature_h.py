"""Which step h and dtype give a usable zero-order curvature signal on our models (and: mirror query?).

In fp32 a loss finite difference with h <= 3e-3 is rounding noise *as an estimate of the
Hessian* (the zero-order estimator of Ravikumar, Soufleri, Roy, "Curvature Clues", NeurIPS 2024).
The membership signal only needs the ranking of log-curvature per sample across models, so this
study measures both, on a trained run (e.g. ``configs/mnist_curvature.yaml``):

* per variant (estimator, h, dtype), identity query, a seeded subset of the pool, all models:
  Curv ZO NLL / LR and a global low-curvature threshold attack, leave-one-model-out over the run's
  targets (``privaudit.evaluation.protocol``), and the members / non-members median ratio;
* agreement of each variant with fp64 at the same h (|log ratio| median and 90th percentile,
  Spearman rho of log-curvature) and the fraction of exactly-zero values (saturated fp32 losses);
* the per-sample loss: the default ``stable_cross_entropy`` vs torch's ``F.cross_entropy``;
* the run's curvature settings on the same subset with identity + mirror queries: identity only,
  mirror only, both (is the paper's mirror augmentation useful on this data?).

    nice -n 10 python benchmarks/curvature_h.py --run runs/mnist_curvature --n 600 \
        --out benchmarks/results/curvature_h.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from privaudit.attacks.registry import get_attack
from privaudit.evaluation.protocol import score_targets, summarize
from privaudit.runtime.plan import groups, load_group
from privaudit.runtime.run import Run
from privaudit.signals.curvature import cross_entropy_loss, stable_cross_entropy
from privaudit.stages.curvature import curvature_of_group

from json_output import emit  # benchmarks/json_output.py

# (estimator, h, dtype, loss): "stable" = the default stable_cross_entropy, "torch" = F.cross_entropy
# (the released code's numerics: fp32 rounds confident losses to multiples of ~6e-8)
VARIANTS = [("zero_order", 1e-3, "float32", "torch"), ("zero_order", 1e-3, "float32", "stable"),
            ("zero_order", 1e-3, "float64", "stable"), ("zero_order", 1e-2, "float32", "stable"),
            ("zero_order", 1e-1, "float32", "stable"), ("hutchinson_sq", 0.0, "float32", "stable")]
LOSSES = {"stable": stable_cross_entropy, "torch": cross_entropy_loss}
LOG_EPS = 1e-22   # as the attacks: log(curv + 1e-22)
FPRS = (1e-2, 1e-3)


def variant_name(est: str, h: float, dtype: str, loss: str) -> str:
    head = est if est != "zero_order" else f"zero_order h={h:g}"
    return f"{head} {dtype}" + (" torch-CE" if loss == "torch" else "")


def curvature_variant(cfg, run, x, y, est, h, dtype, loss) -> tuple[np.ndarray, float]:
    """``[M, n]`` identity-query curvature of every model for one variant, and its seconds."""
    c = cfg.curvature.model_copy(update={"estimator": est, "h": h or 1e-3, "dtype": dtype, "mirror": False})
    vcfg = cfg.model_copy(update={"curvature": c})
    t = time.perf_counter()
    parts = [curvature_of_group(vcfg, load_group(run, cfg, ids), x, y, loss_fn=LOSSES[loss])[..., 0]
             for ids in groups(cfg)]
    return np.concatenate(parts), time.perf_counter() - t


def attack_metrics(curv: np.ndarray, keep: np.ndarray, labels: np.ndarray, targets: list[int]) -> dict:
    """Curv ZO NLL / LR and a global threshold (-curvature) attack, leave-one-model-out."""
    signal = curv[..., None].astype(np.float64)
    out = {}
    for name in ("curv_zo_nll", "curv_zo_lr"):
        scores = score_targets(get_attack(name), signal, keep, labels, targets)
        out[name] = summarize(scores, keep[targets], fprs=FPRS, n_boot=0)[1]
    out["threshold"] = summarize(-curv[targets], keep[targets], fprs=FPRS, n_boot=0)[1]
    return {a: {m: round(v["mean"], 4) if "mean" in v else v for m, v in s.items()} for a, s in out.items()}


def mirror_check(cfg, run, x, y, keep, targets) -> dict:
    """The run's curvature settings with identity + mirror queries: which query carries the signal."""
    mcfg = cfg.model_copy(update={"curvature": cfg.curvature.model_copy(update={"mirror": True})})
    curv = np.concatenate([curvature_of_group(mcfg, load_group(run, cfg, ids), x, y) for ids in groups(cfg)])
    out = {"settings": mcfg.curvature.model_dump(mode="json")}
    for tag, sl in (("identity", slice(0, 1)), ("mirror", slice(1, 2)), ("identity+mirror", slice(0, 2))):
        res = {}
        for name in ("curv_zo_nll", "curv_zo_lr"):
            scores = score_targets(get_attack(name), curv[..., sl].astype(np.float64), keep, y.numpy(), targets)
            res[name] = {m: round(v["mean"], 4) if "mean" in v else v
                         for m, v in summarize(scores, keep[targets], fprs=FPRS, n_boot=0)[1].items()}
        med = curv[..., sl].mean(-1)
        res["member_over_non_member"] = float(np.median(med[keep]) / np.median(med[~keep]))
        out[tag] = res
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a finished run directory with curvature")
    p.add_argument("--n", type=int, default=600, help="pool samples in the subset")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    run = Run.open(a.run)
    cfg = run.config()
    x, y = (torch.from_numpy(np.array(v)) for v in run.pool())
    keep_all = run.keep()
    sub = np.sort(np.random.default_rng(0).choice(len(y), size=min(a.n, len(y)), replace=False))
    xs, ys, keep = x[sub], y[sub], keep_all[:, sub]
    labels = ys.numpy()
    targets = list(range(cfg.evaluation.targets))
    rows, arrays = [], {}
    for est, h, dtype, loss in VARIANTS:
        name = variant_name(est, h, dtype, loss)
        curv, secs = curvature_variant(cfg, run, xs, ys, est, h, dtype, loss)
        arrays[name] = curv
        rows.append({"variant": name, "estimator": est, "h": h if est == "zero_order" else None, "dtype": dtype,
                     "loss": loss, "seconds": round(secs, 1), "exactly_zero": float((curv == 0).mean()),
                     "median_member": float(np.median(curv[keep])),
                     "median_non_member": float(np.median(curv[~keep])),
                     "member_over_non_member": float(np.median(curv[keep]) / np.median(curv[~keep])),
                     "attacks": attack_metrics(curv, keep, labels, targets)})
        print(json.dumps(rows[-1]), flush=True)
    logs = {k: np.log(v.astype(np.float64) + LOG_EPS) for k, v in arrays.items()}
    for row in rows:
        ref = variant_name("zero_order", row["h"], "float64", "stable") if row["estimator"] == "zero_order" else None
        if ref in logs and ref != row["variant"]:
            la, lb = logs[row["variant"]], logs[ref]
            row["vs_fp64_same_h"] = {"median_abs_log_ratio": float(np.median(np.abs(la - lb))),
                                     "p90_abs_log_ratio": float(np.quantile(np.abs(la - lb), 0.9)),
                                     "spearman": float(spearmanr(la.ravel(), lb.ravel())[0])}
        hs = logs[variant_name("hutchinson_sq", 0.0, "float32", "stable")]
        row["spearman_vs_hutchinson_sq"] = float(spearmanr(logs[row["variant"]].ravel(), hs.ravel())[0])
    doc = {"benchmark": "curvature_h", "run": str(a.run), "n_models": int(keep.shape[0]), "n_samples": len(sub),
           "targets": targets, "rounds": cfg.curvature.rounds, "query": "identity", "variants": rows}
    doc["mirror_check"] = mirror_check(cfg, run, xs, ys, keep, targets)
    emit(doc, a.out)


if __name__ == "__main__":
    main()
