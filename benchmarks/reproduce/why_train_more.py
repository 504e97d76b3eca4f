"""Reproduce Choi, Tople, Chandrasekaran, Jha, "Why Train More? Effective and Efficient Membership
Inference via Memorization" (arXiv:2310.08015, 2023) on an MNIST mixture with a stacked MLP population.

    nice -n 10 python benchmarks/reproduce/why_train_more.py --scale cpu \
        [--design ood|subpopulation] [--out /tmp/privaudit_reproduce/why_train_more] \
        [--json benchmarks/results/reproduce_why_train_more.json] [--figures DIR]

The pool is ``configs/mixture_mnist_cifar10.yaml`` (design ``ood``: an MNIST subset plus random
CIFAR-10 images, grey 28x28, Choi et al. §6 (a)) or ``configs/mixture_mnist_cifar10_subpop.yaml``
(``subpopulation``: the smallest KMeans cluster of CIFAR-10 candidates, §6 (b)); the singletons
(§6 (c)) are the highly memorized samples of a group. ``--scale`` sets only sizes (:data:`SIZES`).
Measured, written to ``--json`` and figures:

1. shadow-model budget curves *within one data group* (high-memorization vs random samples of the
   OOD group, and of the in-distribution group), online LiRA with per-example and with global
   variance (Carlini et al. 2022, Sec. VI-B), AUC and TPR at a resolvable FPR for k = 1, 2, 4, ...
   reference models, and the reduction factors (Choi et al. §7.2, Fig. 7: about 400x fewer shadow
   models for highly memorized samples, 40x for random OOD ones, out of 2,000);
2. OOD detectors (Choi et al. Figs. 1, 5, 9, 10): per-sample MSP (Hendrycks & Gimpel 2017) and
   Energy (Liu et al. 2020) from the models that did not train on the sample, Spearman correlated
   with Feldman-Zhang memorization, the LiRA privacy score and the per-sample TPR;
3. Tables II/III: per group, each attack's AUC and TPR at a resolvable FPR with intervals
   (:func:`privaudit.evaluation.protocol.summarize`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (REPO, clean, figure_dir, min_nonmembers, parser, peak_memory_mb, plt,  # noqa: E402
                     resolvable_fpr, run_population, save_figure, write_json)

from privaudit.attacks.registry import get_attack  # noqa: E402
from privaudit.config import AttackConfig, RunConfig, load_config  # noqa: E402
from privaudit.evaluation import metrics  # noqa: E402
from privaudit.evaluation.protocol import summarize  # noqa: E402
from privaudit.evaluation.statistics import spearman_with_ci  # noqa: E402
from privaudit.runtime.run import Layout, Run  # noqa: E402
from privaudit.studies.memorization import NAME  # noqa: E402
from privaudit.studies.memorization import budget as bd  # noqa: E402
from privaudit.studies.memorization.groups import within_group_budget_groups  # noqa: E402
from privaudit.studies.memorization.stage import MemorizationOptions, run_memorization  # noqa: E402

DESIGNS = {"ood": "mixture_mnist_cifar10", "subpopulation": "mixture_mnist_cifar10_subpop"}
ATTACKS = ["loss", "sablayrolles", "lira_offline", "lira_online", "lira_online_global"]
BUDGET_ATTACKS = ("lira_online", "lira_online_global")
LOW_FPR = 0.05    # a TPR at a higher FPR is not a low-FPR reading (too few non-members): read the AUC
THRESHOLD = 0.5   # singletons: Feldman-Zhang memorization above this (Choi et al. §6 (c))

# Only sizes differ between scales. n / n_under: MNIST base subset / OOD images (subpopulation:
# 5 x n_under CIFAR-10 candidates, of which the smallest of 5 clusters joins).
SIZES: dict[str, dict[str, int]] = {
    "ci": dict(n_models=16, models_per_group=16, n=300, n_under=80, hidden=16, epochs=3, targets=2,
               budget_targets=2, repeats=1, n_boot=20, corr_boot=50, tpr_targets=14, min_high=10),
    "cpu": dict(n_models=2000, models_per_group=250, n=3000, n_under=500, hidden=128, epochs=15, targets=8,
                budget_targets=4, repeats=3, n_boot=200, corr_boot=1000, tpr_targets=256, min_high=20),
    "gpu": dict(n_models=2000, models_per_group=250, n=60000, n_under=6000, hidden=256, epochs=20, targets=16,
                budget_targets=8, repeats=3, n_boot=1000, corr_boot=1000, tpr_targets=512, min_high=50),
}
# Choi et al. 2023, §7.2 (MNIST + OOD, 2,000 shadow models): a budget that matches the full one.
SEED = {"max_models": 2000, "high_mem_models": 5, "high_mem_factor": 400, "random_ood_models": 50,
        "random_ood_factor": 40}


def build_config(scale: str, design: str, out: str) -> RunConfig:
    """The design's mixture config with the scale's sizes (and the attacks compared here)."""
    s = SIZES[scale]
    n_under = s["n_under"] * (5 if design == "subpopulation" else 1)
    overrides = {"out": out, "name": f"why_train_more_{design}_{scale}", "population.n_models": s["n_models"],
                 "population.models_per_group": s["models_per_group"], "data.n": s["n"],
                 "data.mixture.n_under": n_under, "model.hidden": [s["hidden"]], "training.epochs": s["epochs"],
                 "attacks": ATTACKS, "evaluation.targets": s["targets"], "evaluation.bootstrap": s["n_boot"],
                 "evaluation.fprs": [0.01, 0.001]}
    return load_config(REPO / "configs" / f"{DESIGNS[design]}.yaml", overrides)


# ------------------------------------------------------------------------------------------
# 1. shadow-model budget within one data group
# ------------------------------------------------------------------------------------------

def _curve_rows(curve: list[dict]) -> list[dict]:
    """Curve rows without the per-evaluation value lists."""
    return [{k: v for k, v in row.items() if not k.endswith("_values")} for row in curve]


def within_group_budget(run: Run, cfg: RunConfig, s: dict[str, int], epoch: int) -> dict[str, Any]:
    """Budget curves of high-mem vs random samples of the same group, per data group ("parts")
    and budget attack, with TPR at the part's lowest resolvable FPR, and the reduction factors
    (:func:`privaudit.studies.memorization.budget.within_group_reductions`). All parts share the
    same reference-model draws (same seed)."""
    keep, labels = run.keep(), run.labels()
    group = run.optional_pool("group")
    group_ids = None if group is None else group[: keep.shape[1]]
    mem_sel = run.load_npy(Layout.study(NAME, "mem_selection.npy")).astype(np.float64)
    masks, how = within_group_budget_groups(mem_sel, group_ids, THRESHOLD, cfg.seed, min_size=s["min_high"])
    kt = keep[: s["budget_targets"]]
    out: dict[str, Any] = {"groups": {g: int(m.sum()) for g, m in masks.items()}, "selection": how, "parts": {}}
    for part in sorted({g.rsplit("/", 1)[0] for g in masks}):
        pm = {g: m for g, m in masks.items() if g.rsplit("/", 1)[0] == part}
        n_neg = min(min_nonmembers(kt, m) for m in pm.values())
        fpr = resolvable_fpr(n_neg)
        fpr = fpr if np.isfinite(fpr) else 0.5      # a target without non-members (only at toy sizes)
        res: dict[str, Any] = {"fpr": fpr, "nonmembers_min": n_neg, "low_fpr": fpr <= LOW_FPR, "attacks": {}}
        for name in BUDGET_ATTACKS:
            signal = run.signal(AttackConfig(name=name).signal_name, epoch)
            curve, sizes = bd.budget_curve(get_attack(name), signal, keep, labels, pm, sizes=None,
                                           budget_targets=s["budget_targets"], repeats=s["repeats"], seed=cfg.seed,
                                           fpr=fpr, n_boot=s["n_boot"])
            res["attacks"][name] = {"sizes": list(sizes), "curve": _curve_rows(curve),
                                    "reductions": bd.within_group_reductions(curve, ["auc", bd.metric_name(fpr)])}
        out["parts"][part] = res
    return out


# ------------------------------------------------------------------------------------------
# 2. OOD detectors vs privacy
# ------------------------------------------------------------------------------------------

def ood_scores(logits: np.ndarray, keep: np.ndarray, chunk: int = 64) -> dict[str, np.ndarray]:
    """Per sample, averaged over the models that did NOT train on it: MSP = max softmax probability
    (Hendrycks & Gimpel, ICLR 2017; high = in-distribution) and Energy = -logsumexp(logits) (Liu et
    al., NeurIPS 2020; high = out-of-distribution), on the identity query."""
    m, n = keep.shape
    msp, energy, count = np.zeros(n), np.zeros(n), np.zeros(n)
    for lo in range(0, m, chunk):
        z = torch.tensor(np.asarray(logits[lo:lo + chunk, :, 0]), dtype=torch.float64)
        out = torch.from_numpy(~keep[lo:lo + chunk]).double()
        msp += (torch.softmax(z, -1).amax(-1) * out).sum(0).numpy()
        energy += (-torch.logsumexp(z, -1) * out).sum(0).numpy()
        count += out.sum(0).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"msp": msp / count, "energy": energy / count}


def fisher_interval(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher z interval of a Spearman rho (Fieller et al. 1957 variance 1.06 / (n - 3))."""
    if not np.isfinite(rho) or n <= 3:
        return float("nan"), float("nan")
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(1.06 / (n - 3))
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _spearman(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    r = spearman_with_ci(a, b, n_boot=n_boot, seed=seed)
    lo, hi = fisher_interval(r.rho, r.n)
    return {"rho": r.rho, "boot_lo": r.lo, "boot_hi": r.hi, "fisher_lo": lo, "fisher_hi": hi,
            "p_value": r.p_value, "n": r.n}


def ood_vs_privacy(run: Run, epoch: int, parts: dict[str, np.ndarray], n_boot: int, seed: int) -> dict[str, Any]:
    """Spearman correlations of the OOD scores with memorization, the privacy score and the
    per-sample TPR, over all samples and inside each data group (Choi et al. Figs. 1, 5, 9, 10),
    and how well each detector separates the OOD group (AUROC, when there is one)."""
    keep = run.keep()
    scores = ood_scores(run.load_npy(Layout.signal("logits", epoch), mmap=True), keep)
    priv = {k: run.load_npy(Layout.study(NAME, f"{k}.npy")).astype(np.float64)
            for k in ("mem", "privacy_score", "per_sample_tpr")}
    corr = {part: {f"{d}_vs_{p}": _spearman(scores[d][mask], priv[p][mask], n_boot, seed)
                   for d in scores for p in priv}
            for part, mask in parts.items()}
    out: dict[str, Any] = {"definitions": {"msp": "mean over OUT models of max softmax (high = in-distribution)",
                                           "energy": "mean over OUT models of -logsumexp(logits) (high = OOD)"},
                           "spearman": corr}
    if "ood" in parts:
        y = parts["ood"]
        out["detector_auroc_ood_vs_id"] = {"msp": metrics.auc(y, -scores["msp"]),
                                           "energy": metrics.auc(y, scores["energy"])}
    out["_arrays"] = {**scores, **priv}
    return out


# ------------------------------------------------------------------------------------------
# 3. Tables II/III
# ------------------------------------------------------------------------------------------

def table_masks(run: Run, cfg: RunConfig, parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The data groups plus their singletons (``mem_selection > THRESHOLD``, Choi et al. §6 (c)),
    keeping the groups where every table target has members and non-members."""
    mem_sel = run.load_npy(Layout.study(NAME, "mem_selection.npy"))
    masks = dict(parts)
    for part in [p for p in ("ood", "id") if p in parts]:
        masks[f"{part}/high_mem"] = parts[part] & (mem_sel > THRESHOLD)
    kt = run.keep()[: cfg.evaluation.targets]
    return {g: m for g, m in masks.items() if min_nonmembers(kt, m) > 0 and kt[:, m].any(axis=1).all()}


def group_tables(run: Run, cfg: RunConfig, groups: dict[str, np.ndarray], epoch: int, n_boot: int) -> dict[str, Any]:
    """Per attack and group: AUC and strict TPR at the group's own resolvable FPR and at one common
    FPR (the largest own FPR not above :data:`LOW_FPR`; groups that need more get only their own),
    mean over targets with bootstrap CIs (Choi et al. Tables II/III)."""
    t = cfg.evaluation.targets
    kt = run.keep()[:t]
    own = {g: resolvable_fpr(min_nonmembers(kt, m)) for g, m in groups.items()}
    common = max([f for f in own.values() if f <= LOW_FPR] or own.values())
    out: dict[str, Any] = {"fpr_own": own, "fpr_common": common, "n": {g: int(m.sum()) for g, m in groups.items()},
                           "nonmembers_min": {g: min_nonmembers(kt, m) for g, m in groups.items()}, "attacks": {}}
    for a in cfg.attacks:
        scores = run.scores(a, epoch, t)
        rows = {}
        for g, m in groups.items():
            fprs = tuple(sorted({own[g], common} if common >= own[g] else {own[g]}))
            _, summary = summarize(scores[:, m], kt[:, m], fprs=fprs, mode=cfg.evaluation.tpr_mode,
                                   n_boot=n_boot, seed=cfg.seed)
            rows[g] = {k: summary[k] for k in ["auc"] + [f"tpr@{f:g}" for f in fprs]}
        out["attacks"][a.key] = rows
    return out


# ------------------------------------------------------------------------------------------
# figures and headline
# ------------------------------------------------------------------------------------------

def plot_budget(wg: dict[str, Any], path: Path) -> str:
    """TPR at each group's budget FPR vs number of reference models, high-mem vs random, per group and attack."""
    parts = sorted(wg["parts"])
    fig, axes = plt.subplots(len(BUDGET_ATTACKS), len(parts), figsize=(4.2 * len(parts), 3.2 * len(BUDGET_ATTACKS)),
                             squeeze=False)
    for j, part in enumerate(parts):
        res = wg["parts"][part]
        key = bd.metric_name(res["fpr"])
        for i, a in enumerate(BUDGET_ATTACKS):
            ax = axes[i][j]
            for kind, colour in (("high_mem", "#D55E00"), ("random", "#0072B2")):
                rows = [r for r in res["attacks"][a]["curve"] if r["group"] == f"{part}/{kind}" and not r["skipped"]]
                x = [r["n_models"] for r in rows]
                ax.plot(x, [r[f"{key}_mean"] for r in rows], "o-", color=colour,
                        label=f"{kind} (n={wg['groups'][f'{part}/{kind}']})")
                ax.fill_between(x, [r[f"{key}_ci_low"] for r in rows], [r[f"{key}_ci_high"] for r in rows],
                                color=colour, alpha=0.2)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{a}, {part} group", fontsize=9)
            ax.set_xlabel("reference (shadow) models k")
            ax.set_ylabel(f"TPR at FPR {res['fpr']:g}")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ood(arrays: dict[str, np.ndarray], group_ids: np.ndarray | None, path: Path) -> str:
    """Per sample: MSP and Energy against memorization and the privacy score, coloured by group."""
    colour = np.where(group_ids == 1, "#D55E00", "#0072B2") if group_ids is not None else "#0072B2"
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, (d, p) in zip(axes, [("msp", "mem"), ("energy", "mem"), ("msp", "privacy_score"),
                                 ("energy", "privacy_score")]):
        ax.scatter(arrays[d], arrays[p], s=3, c=colour, alpha=0.4, linewidths=0)
        ax.set_xlabel(f"{d} (mean over OUT models)")
        ax.set_ylabel(p)
    axes[0].set_title("blue: in-distribution, orange: OOD group", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def _reading(r: dict[str, Any]) -> dict[str, Any]:
    """One row of :func:`privaudit.studies.memorization.budget.within_group_reductions`, flattened."""
    sat = {g.rsplit("/", 1)[1]: v for g, v in r["saturation"].items()}
    return {"cross_factor": r["factor"], "cross_capped": r.get("capped"), "r_max": r.get("r_max"),
            "random_full_budget": r.get("level"), "high_mem_models_needed": r.get("r_needed_a"),
            **{f"saturation_{k}_{kind}": sat[kind][v] for kind in ("high_mem", "random")
               for k, v in (("factor", "factor"), ("models", "r_needed"), ("full_budget", "final"))}}


def headline(wg: dict[str, Any], tables: dict[str, Any], corr: dict[str, Any]) -> dict[str, Any]:
    """The numbers the RESULTS section quotes, read from the full document: per attack and data
    group the reduction factors by AUC and by TPR at the group's FPR (``low_fpr`` false when that
    FPR is above :data:`LOW_FPR`: read the AUC then), the LiRA table and the correlations."""
    red = {}
    for part, res in wg["parts"].items():
        for a, ar in res["attacks"].items():
            by = {("auc" if r["metric"] == "auc" else "tpr"): _reading(r) for r in ar["reductions"]}
            red[f"{a}/{part}"] = {"fpr": res["fpr"], "low_fpr": res["low_fpr"], **by}
    lira = tables["attacks"].get("lira_online", {})
    common = f"tpr@{tables['fpr_common']:g}"
    tab = {g: {"auc": v["auc"].get("mean"), common: v.get(common, {}).get("mean")} for g, v in lira.items()}
    sp = {part: {k: v["rho"] for k, v in c.items()} for part, c in corr["spearman"].items()}
    return {"reductions": red, "lira_online_table": tab, "spearman_rho": sp, "seed": SEED}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = parser(__doc__, "why_train_more")
    ap.add_argument("--design", choices=sorted(DESIGNS), default="ood")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)          # the training workers pin one thread each; so does this process
    t0 = time.perf_counter()
    s = SIZES[args.scale]
    cfg = build_config(args.scale, args.design, args.out)
    run, seconds = run_population(cfg)
    epoch = cfg.training.epochs
    group = run.optional_pool("group")
    group_ids = None if group is None else group[: run.keep().shape[1]]
    opts = MemorizationOptions(fpr=resolvable_fpr(s["n_under"] // 4), threshold=THRESHOLD, repeats=s["repeats"],
                               budget_targets=s["budget_targets"], table_targets=s["targets"],
                               tpr_targets=s["tpr_targets"], n_boot=s["n_boot"], seed=cfg.seed)
    t = time.perf_counter()
    with run.writer():
        study = run_memorization(run, cfg, opts)
    seconds["memorization_study"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    wg = within_group_budget(run, cfg, s, epoch)
    seconds["within_group_budget"] = round(time.perf_counter() - t, 1)

    parts = {"all": np.ones(run.keep().shape[1], dtype=bool)}
    if group_ids is not None:
        parts |= {"id": group_ids == 0, "ood": group_ids == 1}
    t = time.perf_counter()
    corr = ood_vs_privacy(run, epoch, parts, s["corr_boot"], cfg.seed)
    arrays = corr.pop("_arrays")
    seconds["ood_detectors"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    tables = group_tables(run, cfg, table_masks(run, cfg, parts), epoch, s["n_boot"])
    seconds["tables"] = round(time.perf_counter() - t, 1)

    figs = figure_dir(args)
    figures = [plot_budget(wg, figs / f"reproduce_why_train_more_{args.design}_{args.scale}_budget.png"),
               plot_ood(arrays, group_ids, figs / f"reproduce_why_train_more_{args.design}_{args.scale}_ood.png")]
    seconds["total"] = round(time.perf_counter() - t0, 1)
    doc = {"paper": "Choi, Tople, Chandrasekaran, Jha, Why Train More? Effective and Efficient Membership "
                    "Inference via Memorization, arXiv:2310.08015 (2023)",
           "scale": args.scale, "design": args.design, "sizes": s, "config": f"configs/{DESIGNS[args.design]}.yaml",
           "run_dir": str(cfg.run_dir), "n_models": int(run.keep().shape[0]), "n_samples": int(run.keep().shape[1]),
           "utility": run.load_json(Layout.epoch_metrics(epoch)).get("utility"), "seconds": seconds,
           "peak_memory_mb": peak_memory_mb(),
           "headline": headline(wg, tables, corr),
           "within_group_budget": wg, "ood_detectors": corr, "tables": tables,
           "memorization_study": {"fpr": study["fpr"], "memorization_by_group": study["memorization"]["by_group"],
                                  "correlations": {k: v for k, v in study["correlations"].items()
                                                   if k.startswith("mem_vs")},
                                  "cross_group_budget": {"groups": study["budget"]["groups"],
                                                         "reductions": study["budget"]["reductions"]}},
           "figures": figures}
    write_json(doc, args.json)
    return clean(doc)


if __name__ == "__main__":
    main()
