"""Reproduce the optimizer factor of Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the Dynamics of
Membership Privacy in Deep Learning" (arXiv:2507.23291, 2025): SGD vs Adam vs SAM (Foret, Kleiner,
Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR
2021) on a WideResNet that fits its CIFAR-10 pool, with checkpoints every few epochs.

    nice -n 10 python benchmarks/reproduce/dynamics.py --scale cpu \
        [--optimizers sgd,adam,sam] [--out /tmp/privaudit_reproduce/dynamics] \
        [--json benchmarks/results/reproduce_dynamics.json] [--figures DIR]

One population per optimizer (``configs/reproduce_dynamics_cifar10.yaml``: a class-stratified
CIFAR-10 pool, balanced design so every sample is IN for exactly half of the models, every model a
leave-one-model-out target, LiRA online with the mirror query), the same seed, so the same pool,
membership, initialisations and batch order; only the optimizer differs: SGD (lr 0.1, Nesterov
momentum 0.9, weight decay 5e-4), SAM around that SGD (``training.optimizer: sam``, rho 0.05, the
CIFAR value of Foret et al.; per-model ascent norm, BatchNorm statistics from the forward at w:
``privaudit.training.recipe.SAM``) and Adam (lr 1e-3, no weight decay); cosine schedule, batch 64,
no training augmentation (so the small cpu pool is fitted). ``--scale`` sets only sizes
(:data:`SIZES`: pool, models, WRN depth/widen, epochs, bootstrap); the checkpoints are the same
fractions of training at every scale (:func:`checkpoints`). Measured per optimizer, written to
``--json`` and figures:

1. utility: mean train accuracy (on each model's members) and test accuracy (on its non-members of
   the pool, held-out CIFAR-10 images) at every checkpoint (:mod:`privaudit.evaluation.utility`);
2. the dynamics study (:func:`privaudit.studies.dynamics.stage.run_dynamics`; privaudit's
   reconstruction of Chen et al.'s FPR-TPR plane, definitions in ``privaudit/studies/dynamics`` and
   ``docs/studies.md``): the centre-of-mass trajectory and its displacement, encoding speed,
   entropy, the probability of entering the highly-vulnerable region (TPR_i >= 0.5, FPR_i <= 0.1)
   with Clopper-Pearson intervals at its peak step, learning difficulty vs final vulnerability;
3. early prediction of the final most-vulnerable set: precision (= recall) of the top 10 % at each
   checkpoint for the final top 10 % (same models, and cross-model split halves), and recall and
   precision of the final highly-vulnerable region, with 95 % intervals;
4. LiRA online at the final epoch: AUC and TPR at the lowest resolvable FPR
   (:func:`_common.resolvable_fpr`) and at 1 %, with intervals
   (:func:`privaudit.evaluation.protocol.summarize`), and the AUC at every checkpoint;
5. the paper's claims next to ours (:data:`PAPER`). The paper's optimizer claim is qualitative in
   its abstract ("optimizer choice" influences "the rate and severity at which samples become
   vulnerable"); the numbers we know (SAM's peak probability of entering the high-vulnerability
   state 0.9 % vs SGD's 2.7 %; about 70 % of the final highly-vulnerable samples identified within
   the first ~150 epochs) come from a secondary summary, unverified against the paper.

Scales (``--optimizers`` runs a subset; a finished population is re-analysed without retraining):
``ci`` seconds (a test); ``cpu`` WRN-10-1 (0.074 training GFLOP per image) on a 500-image pool (250
per model), 16 models, 40 epochs, sized for about 15-20 min for the three optimizers on a quiet
2-core CPU (SAM costs two gradients per step); ``gpu`` WRN-28-2 (the paper's architecture, 1.29
training GFLOP per image, counted with ``torch.utils.flop_counter``) on a 10,000-image pool (5,000
per model), 16 models stacked through ``vmap`` in bf16, 40 epochs -- one optimizer per command
(``--optimizers sgd``, then ``adam``, then ``sam``, then all three, which only re-analyses). Estimate, unmeasured: training 4.1 PFLOP (SGD,
Adam) or 8.2 PFLOP (SAM), querying 14 checkpoints x 16 models x 10,000 images x 2 queries x 0.43
GFLOP = 1.9 PFLOP; at 25-40 TFLOP/s achieved (2.5-4 % of the H200's bf16 peak; small grouped
convolutions) the SAM command takes 4-7 min, SGD and Adam 2.5-4 min, within the 8-minute limit. The
paper's own sizes (the full CIFAR-10, training length, population) are unknown to us and larger.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (REPO, clean, figure_dir, min_nonmembers, parser, peak_memory_mb, plt,  # noqa: E402
                     resolvable_fpr, run_population, save_figure, write_json)

sys.path.insert(0, str(REPO / "benchmarks"))
from dynamics_study import dynamics_summary  # noqa: E402

from privaudit.config import AttackConfig, RunConfig, load_config  # noqa: E402
from privaudit.evaluation import metrics  # noqa: E402
from privaudit.evaluation.audit import clopper_pearson  # noqa: E402
from privaudit.evaluation.protocol import summarize  # noqa: E402
from privaudit.evaluation.utility import utility  # noqa: E402
from privaudit.runtime.plan import signal_epochs  # noqa: E402
from privaudit.runtime.run import Layout, Run  # noqa: E402
from privaudit.studies.dynamics import NAME  # noqa: E402
from privaudit.studies.dynamics.plane import HIGHLY_VULNERABLE  # noqa: E402
from privaudit.studies.dynamics.stage import run_dynamics  # noqa: E402

CONFIG = REPO / "configs" / "reproduce_dynamics_cifar10.yaml"
ATTACK = "lira_online"
DYN_FPR = 0.01        # the global FPR of the per-target thresholds on the plane (raised if not resolvable)
TOP_FRAC = 0.1        # early prediction: the top 10 % most vulnerable samples
# The recipe of each optimizer (the same at every scale).
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"training.optimizer": "sgd", "training.lr": 0.1, "training.momentum": 0.9,
            "training.weight_decay": 5e-4},
    "adam": {"training.optimizer": "adam", "training.lr": 1e-3, "training.weight_decay": 0.0},
    "sam": {"training.optimizer": "sam", "training.lr": 0.1, "training.momentum": 0.9,
            "training.weight_decay": 5e-4, "training.sam_rho": 0.05},
}
# Checkpoints at these fractions of training (40 epochs: 1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 35,
# the grid of benchmarks/dynamics_study.py) plus the final epoch.
CHECKPOINT_FRACTIONS = tuple(e / 40 for e in (1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 35))

# Only sizes differ between scales: pool n (each model trains on n / 2), models (all targets),
# models per training group, WRN depth / widen, epochs, bootstrap resamples.
SIZES: dict[str, dict[str, int]] = {
    "ci": dict(n=160, n_models=4, group=2, depth=10, widen=1, epochs=4, n_boot=20),
    "cpu": dict(n=500, n_models=16, group=8, depth=10, widen=1, epochs=40, n_boot=200),
    "gpu": dict(n=10000, n_models=16, group=16, depth=28, widen=2, epochs=40, n_boot=1000),
}
# Where the gpu scale trains (not the recipe): one vmap group of 16 models in bf16 autocast on the GPU,
# as configs/cifar10_wrn_gpu.yaml.
HARDWARE: dict[str, dict[str, Any]] = {"gpu": {"training.device": "cuda", "training.backend": "vmap",
                                               "training.precision": "bf16"}}

# What the paper says (Chen et al. 2025). Only the abstract is primary; the numbers are from a secondary
# (AI-generated) summary of the paper and are unverified.
PAPER = {
    "optimizer": {"claim": "optimizer choice influences the rate and severity at which samples become vulnerable",
                  "kind": "qualitative (abstract)"},
    "sam_vs_sgd_peak_entry": {"claim": "SAM lowers the peak probability of moving into the high-vulnerability state: "
                                       "0.9 % (SAM) vs 2.7 % (SGD)", "sam": 0.009, "sgd": 0.027,
                              "kind": "number from a secondary summary, unverified; the paper's definition of the "
                                      "state and of the step is unknown"},
    "difficulty": {"claim": "a sample's learning difficulty correlates robustly with its final vulnerability",
                   "kind": "qualitative (abstract)"},
    "early": {"claim": "the privacy risk of samples highly vulnerable in the final model is largely determined early "
                       "during training", "kind": "qualitative (abstract)"},
    "early_share": {"claim": "about 70 % of the final highly-vulnerable samples are identified within the first ~150 "
                             "epochs", "share": 0.7, "kind": "number from a secondary summary, unverified"},
    "setting": "MNIST, Fashion-MNIST, CIFAR-10, CINIC-10; CNNs of several depths and WRN-28-2; SGD vs SAM "
               "(secondary summary); training length and population size unknown to us",
}


def checkpoints(epochs: int) -> list[int]:
    """The checkpoint epochs: :data:`CHECKPOINT_FRACTIONS` of ``epochs``, rounded, at least 1,
    deduplicated, the final epoch excluded (it is always queried)."""
    return sorted({max(1, int(round(f * epochs))) for f in CHECKPOINT_FRACTIONS} - {epochs})


def build_config(scale: str, optimizer: str, out: str) -> RunConfig:
    """The dynamics config with the scale's sizes and the optimizer's recipe."""
    s = SIZES[scale]
    overrides = {"out": out, "name": f"dynamics_{optimizer}_{scale}", "data.n": s["n"],
                 "population.n_models": s["n_models"], "population.models_per_group": s["group"],
                 "model.depth": s["depth"], "model.widen": s["widen"], "training.epochs": s["epochs"],
                 "training.checkpoints": checkpoints(s["epochs"]), "evaluation.targets": s["n_models"],
                 "evaluation.bootstrap": s["n_boot"], "evaluation.fprs": [0.01],
                 **OPTIMIZERS[optimizer], **HARDWARE.get(scale, {})}
    return load_config(CONFIG, overrides)


# ------------------------------------------------------------------------------------------
# per optimizer
# ------------------------------------------------------------------------------------------

def utility_by_epoch(run: Run, epochs: list[int]) -> dict[str, list[float]]:
    """Mean train / test accuracy of the models at every checkpoint (identity query)."""
    keep, y = run.keep(), run.labels()
    us = [utility(run.load_npy(Layout.signal("logits", e), mmap=True), keep, y) for e in epochs]
    return {"epochs": epochs, "train_acc": [u.train.mean for u in us], "test_acc": [u.test.mean for u in us]}


def lira_table(run: Run, epochs: list[int], n_targets: int, n_boot: int, seed: int) -> dict[str, Any]:
    """LiRA online at the final epoch, every model a target: AUC and TPR at the lowest resolvable FPR
    and at 1 % (when resolvable), mean over targets with intervals; and the mean AUC at every checkpoint."""
    attack = AttackConfig(name=ATTACK)
    kt = run.keep()[:n_targets]
    n_neg = min_nonmembers(kt, np.ones(kt.shape[1], dtype=bool))
    fpr = resolvable_fpr(n_neg)
    fprs = tuple(sorted({fpr} | ({0.01} if 0.01 >= fpr else set())))
    _, summary = summarize(run.scores(attack, epochs[-1], n_targets), kt, fprs=fprs, n_boot=n_boot, seed=seed)
    auc_by_epoch = [float(np.mean([metrics.auc(kt[t], s[t]) for t in range(n_targets)]))
                    for s in (run.scores(attack, e, n_targets) for e in epochs)]
    return {"attack": ATTACK, "targets": n_targets, "nonmembers_min": n_neg, "fpr": fpr,
            "auc": summary["auc"], **{f"tpr@{f:g}": summary[f"tpr@{f:g}"] for f in fprs},
            "auc_by_epoch": auc_by_epoch}


def peak_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """The step with the highest probability of entering the highly-vulnerable region from outside it
    (privaudit's ``entry_probability``), with its counts and a 95 % Clopper-Pearson interval."""
    counts = np.asarray(doc["transition_counts"], dtype=np.int64)          # [P-1, R, R] from -> to
    if counts.size == 0:
        return {"available": False}
    outside = [r for r in range(counts.shape[1]) if r != HIGHLY_VULNERABLE]
    entered = counts[:, outside, HIGHLY_VULNERABLE].sum(axis=1)
    at_risk = counts[:, outside, :].sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(at_risk > 0, entered / np.maximum(at_risk, 1), np.nan)
    if not np.isfinite(p).any():
        return {"available": False}
    i = int(np.nanargmax(p))
    lo, hi = clopper_pearson(int(entered[i]), int(at_risk[i]), 0.05, "two")
    ep = doc["epochs"]
    return {"available": True, "probability": float(p[i]), "lo": float(lo), "hi": float(hi),
            "entered": int(entered[i]), "at_risk": int(at_risk[i]), "step": [int(ep[i]), int(ep[i + 1])],
            "per_step": p.tolist()}


def run_optimizer(args, optimizer: str, s: dict[str, int]) -> dict[str, Any]:
    """Train (or resume) one optimizer's population, run the dynamics study on it, return its row."""
    cfg = build_config(args.scale, optimizer, args.out)
    run, seconds = run_population(cfg)
    epochs = signal_epochs(cfg)
    n_targets = cfg.population.n_models
    kt = run.keep()[:n_targets]
    fpr = max(DYN_FPR, resolvable_fpr(min_nonmembers(kt, np.ones(kt.shape[1], dtype=bool))))
    t = time.perf_counter()
    with run.writer():
        doc = run_dynamics(run, cfg, attack=ATTACK, fpr=fpr, top_frac=TOP_FRAC, n_boot=s["n_boot"],
                           seed=cfg.seed).doc
    seconds["dynamics"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    lira = lira_table(run, epochs, n_targets, s["n_boot"], cfg.seed)
    seconds["lira_table"] = round(time.perf_counter() - t, 1)
    ep, hv = doc["early_prediction"], doc["early_identification_hv"]
    return {"optimizer": optimizer, "recipe": {k.split(".", 1)[1]: v for k, v in OPTIMIZERS[optimizer].items()},
            "run_dir": str(cfg.run_dir), "trained_with": cfg.training.optimizer, "epochs": epochs,
            "dynamics_fpr": fpr, "n_samples": doc["n_samples"], "n_models": n_targets, "seconds": seconds,
            "utility": utility_by_epoch(run, epochs), "lira": lira,
            "center_of_mass_pp": [[100 * v for v in c] for c in doc["center_of_mass"]],
            "peak_entry": peak_entry(doc),
            "early_prediction_recall": ep["recall"],
            "early_identification_hv_precision": {k: hv.get(k) for k in ("precision", "precision_lo",
                                                                          "precision_hi", "n_hv")},
            **dynamics_summary(doc)}


# ------------------------------------------------------------------------------------------
# comparison with the paper, headline, figures
# ------------------------------------------------------------------------------------------

def _mid(epochs: list[int]) -> int:
    """Index of the last checkpoint at or before half of training (the dynamics study's "early")."""
    return max(i for i, e in enumerate(epochs) if e <= 0.5 * epochs[-1]) if epochs[0] <= 0.5 * epochs[-1] else 0


def _disjoint(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("lo") is not None and b.get("lo") is not None and (a["hi"] < b["lo"] or b["hi"] < a["lo"])


def comparison(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's claims next to ours, each with the rule that reads ours."""
    out = []
    if len(rows) >= 2:
        names = sorted(rows)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        differ = [f"{a} vs {b}" for a, b in pairs if _disjoint(rows[a]["lira"]["auc"], rows[b]["lira"]["auc"])]
        out.append({"paper": PAPER["optimizer"]["claim"], "paper_kind": PAPER["optimizer"]["kind"],
                    "ours": {o: {"auc": r["lira"]["auc"]["mean"], "com_displacement_pp": r["com_displacement_pp"],
                                 "encoding_speed": r["encoding_speed"],
                                 "peak_entry_probability": r["peak_entry"].get("probability"),
                                 "n_highly_vulnerable_final": r["n_highly_vulnerable_final"]}
                             for o, r in rows.items()},
                    "severity_differs": differ,
                    "rule": "severity differs between two optimizers when their final LiRA AUC intervals are disjoint"})
    if {"sam", "sgd"} <= set(rows):
        a, b = rows["sam"]["peak_entry"], rows["sgd"]["peak_entry"]
        if a.get("available") and b.get("available"):
            verdict = ("SAM lower (intervals disjoint)" if a["hi"] < b["lo"] else
                       "SAM higher (intervals disjoint)" if b["hi"] < a["lo"] else "not resolved (intervals overlap)")
        else:
            verdict = "undetermined (no step with samples outside the region)"
        claim = PAPER["sam_vs_sgd_peak_entry"]
        out.append({"paper": claim["claim"], "paper_kind": claim["kind"],
                    "paper_values": {"sam": claim["sam"], "sgd": claim["sgd"]}, "ours": {"sam": a, "sgd": b},
                    "verdict": verdict,
                    "rule": "peak over checkpoint steps of P(enter highly vulnerable | outside it), 95% "
                            "Clopper-Pearson at the peak step; compare the intervals"})
    for key, is_difficulty in (("difficulty", True), ("early", False)):
        per = {o: [{k: f[k] for k in ("question", "measure", "value", "ci", "answer")} for f in r["findings"]
                   if f["measure"].startswith("Spearman(difficulty") == is_difficulty]
               for o, r in rows.items()}
        out.append({"paper": PAPER[key]["claim"], "paper_kind": PAPER[key]["kind"], "ours": per,
                    "rule": "privaudit.studies.dynamics.analysis.findings (its rule is in dynamics.json)"})
    share = PAPER["early_share"]["share"]

    def first_reaching(r: dict[str, Any]) -> int | None:
        recall = r["early_identification_hv"].get("recall") or []
        return next((e for e, v in zip(r["epochs"], recall) if v is not None and v >= share), None)

    out.append({"paper": PAPER["early_share"]["claim"], "paper_kind": PAPER["early_share"]["kind"],
                "ours": {o: {"first_epoch_hv_recall_ge_0.7": first_reaching(r), "of_epochs": r["epochs"][-1],
                             "n_final_hv": r["early_identification_hv"].get("n_final")} for o, r in rows.items()},
                "rule": "first checkpoint at which >= 70 % of the final highly-vulnerable samples are in the region"})
    return out


def headline(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per optimizer, the numbers the RESULTS section quotes."""
    out = {}
    for o, r in rows.items():
        i = _mid(r["epochs"])
        lira = r["lira"]
        tpr_key = f"tpr@{lira['fpr']:g}"
        ep, hv = r["early_prediction"], r["early_identification_hv"]
        out[o] = {"train_acc": r["utility"]["train_acc"][-1], "test_acc": r["utility"]["test_acc"][-1],
                  "lira_auc": [lira["auc"].get(k) for k in ("mean", "lo", "hi")],
                  f"lira_{tpr_key}": [lira[tpr_key].get(k) for k in ("mean", "lo", "hi")],
                  "lira_tpr@0.01": [lira.get("tpr@0.01", {}).get(k) for k in ("mean", "lo", "hi")],
                  "com_start_end_pp": r["com_first_last_pp"], "com_displacement_pp": r["com_displacement_pp"],
                  "com_path_length_pp": r["com_path_length_pp"], "encoding_speed": r["encoding_speed"],
                  "entropy_change": r["entropy_change"], "peak_entry": {k: r["peak_entry"].get(k) for k in
                                                                        ("probability", "lo", "hi", "step")},
                  "n_highly_vulnerable_final": r["n_highly_vulnerable_final"], "mid_epoch": r["epochs"][i],
                  "topk_precision_mid": [ep["precision"][i], ep["precision_lo"][i], ep["precision_hi"][i]],
                  "topk_chance": ep["chance"],
                  "cross_model_precision_mid": r["early_prediction_cross_model"]["precision"][i]
                  if r["early_prediction_cross_model"].get("precision") else None,
                  "hv_recall_mid": [hv[k][i] for k in ("recall", "recall_lo", "recall_hi")]
                  if hv.get("recall") else None,
                  "hv_precision_mid": r["early_identification_hv_precision"]["precision"][i]
                  if r["early_identification_hv_precision"].get("precision") else None,
                  "hv_chance_mid": hv["chance"][i] if hv.get("chance") else None,
                  "spearman_mean_loss": [r["correlations"].get("mean_loss", {}).get(k) for k in ("rho", "lo", "hi")]}
    return out


COLOURS = {"sgd": "#0072B2", "adam": "#009E73", "sam": "#D55E00"}


def _series(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot_comparison(rows: dict[str, dict[str, Any]], path: Path) -> str:
    """Per optimizer: the centre of mass on the plane by epoch (its FPR coordinate is fixed by the
    threshold, so its TPR is drawn), LiRA AUC and train / test accuracy by epoch,
    and the early-prediction curves (top-10 % precision, recall of the final highly-vulnerable set)."""
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    for o, r in rows.items():
        c, ep = COLOURS.get(o, "k"), r["epochs"]
        com = np.array(r["center_of_mass_pp"])
        fprs = f"{com[:, 0].min():.2f}" + ("" if np.ptp(com[:, 0]) < 0.005 else f"-{com[:, 0].max():.2f}")
        axes[0].plot(ep, com[:, 1], "o-", color=c, ms=3, label=f"{o} (mean FPR_i {fprs} %)")
        axes[1].plot(ep, r["lira"]["auc_by_epoch"], "o-", color=c, ms=3, label=f"{o} LiRA AUC")
        axes[1].plot(ep, r["utility"]["train_acc"], "--", color=c, lw=1, label=f"{o} train acc")
        axes[1].plot(ep, r["utility"]["test_acc"], ":", color=c, lw=1, label=f"{o} test acc")
        for ax, block, key in ((axes[2], r["early_prediction"], "precision"),
                               (axes[3], r["early_identification_hv"], "recall")):
            if not block.get(key):
                continue
            y, lo, hi = _series(block[key]), _series(block[key + "_lo"]), _series(block[key + "_hi"])
            ax.plot(ep, y, "o-", color=c, ms=3, label=o + (f" (n={block['n_final']})" if "n_final" in block else ""))
            ax.fill_between(ep, lo, hi, color=c, alpha=0.15)
    chance = next(iter(rows.values()))["early_prediction"]["chance"]
    axes[2].axhline(chance, color="grey", lw=0.8, ls="--", label=f"chance {chance:.2f}")
    axes[0].set(xlabel="epoch", ylabel="mean TPR_i (%)", title="centre of mass on the plane: its TPR by epoch")
    axes[1].set(xlabel="epoch", ylabel="value", title="LiRA AUC, train / test accuracy")
    axes[2].set(xlabel="epoch", ylabel="precision", ylim=(0, 1.02),
                title=f"top-{TOP_FRAC:.0%} at epoch t vs final top-{TOP_FRAC:.0%}")
    axes[3].set(xlabel="epoch", ylabel="recall", ylim=(0, 1.02), title="final highly-vulnerable already in region")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = parser(__doc__, "dynamics")
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                    help=f"comma list of {', '.join(OPTIMIZERS)} (gpu: one per command)")
    args = ap.parse_args(argv)
    chosen = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    unknown = sorted(set(chosen) - set(OPTIMIZERS))
    if unknown or not chosen:
        ap.error(f"--optimizers: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(OPTIMIZERS)}")
    torch.set_num_threads(1)          # the training workers pin one thread each; so does this process
    t0 = time.perf_counter()
    s = SIZES[args.scale]
    rows = {o: run_optimizer(args, o, s) for o in chosen}
    figs = figure_dir(args)
    stem = f"reproduce_dynamics_{args.scale}"
    figures = [plot_comparison(rows, figs / f"{stem}_comparison.png")]
    for o, r in rows.items():           # the study's own per-run figures, one set per optimizer
        for kind in ("trajectories", "early_prediction", "com_path"):
            dst = figs / f"{stem}_{o}_{kind}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Run(r["run_dir"]).path(Layout.study(NAME, f"{kind}.png")), dst)
            figures.append(str(dst))
    doc = {"paper": "Chen, Wang, Baracaldo, Kadhe, Yu, Evaluating the Dynamics of Membership Privacy in Deep "
                    "Learning, arXiv:2507.23291 (2025); SAM: Foret et al., ICLR 2021",
           "scale": args.scale, "sizes": s, "config": "configs/reproduce_dynamics_cifar10.yaml",
           "arch": f"WRN-{s['depth']}-{s['widen']}", "dataset": "CIFAR-10 (pool of the training set)",
           "checkpoints": checkpoints(s["epochs"]), "attack": f"{ATTACK}, leave-one-model-out, every model a target",
           "top_frac": TOP_FRAC, "seconds": {"total": round(time.perf_counter() - t0, 1),
                                             **{o: r["seconds"] for o, r in rows.items()}},
           "peak_memory_mb": peak_memory_mb(), "headline": headline(rows), "paper_vs_ours": comparison(rows),
           "paper_claims": PAPER, "optimizers": rows, "figures": figures}
    write_json(doc, args.json)
    return clean(doc)


if __name__ == "__main__":
    main()
