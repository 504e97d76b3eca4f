"""Reproduce Carlini, Chien, Nasr, Song, Terzis, Tramèr, "Membership Inference Attacks From First
Principles" (IEEE S&P 2022), Table I on CIFAR-10: the table's attacks (and RMIA) against one
population of models trained with LiRA's recipe, compared at low false-positive rates.

    nice -n 10 python benchmarks/reproduce/lira_table1.py --scale cpu \
        [--arch airbench|wrn|both] [--out /tmp/privaudit_reproduce/lira_table1] \
        [--json benchmarks/results/reproduce_lira_table1.json] [--figures DIR]
    python benchmarks/reproduce/lira_table1.py --scale gpu --arch airbench --max-train-s 420  # twice
    python benchmarks/reproduce/lira_table1.py --scale gpu --arch wrn --max-train-s 420   # until the table

Populations (``configs/cifar10_wrn_gpu.yaml``: LiRA's recipe from the paper, Sec. V-A, and the
official code, tensorflow/privacy ``research/mi_lira_2021/train.py``: each model on a random half
of the pool, every sample in exactly half of the models, SGD with momentum 0.9, lr 0.1, weight
decay 5e-4, cosine schedule, mirror + 4-pixel reflect-shift augmentation):

* ``airbench``: the fast CIFAR-10 net of Keller Jordan's airbench94 (``model.arch: airbench``),
  trained with LiRA's recipe (not airbench's own);
* ``wrn``: WRN-16-4 (``model.arch: wrn``), the config as it is. **GPU only**: 2.35 training GFLOP
  per sample, so a CIFAR-10 population of it does not fit this 2-core CPU.

Queries (Table III): mirror x shifts {-4, 0, 4}^2, LiRA's 18, at the ``gpu`` scale; identity +
mirror (LiRA's 2-query row) at the smaller ones. Attacks: LOSS (Yeom et al. 2018), Watson et al.
(ICLR 2022), Sablayrolles et al. (ICML 2019), Song & Mittal (USENIX Security 2021), LiRA online and
offline with per-example and with global ("fixed") variance (Sec. VI-B), and RMIA (Zarifzadeh,
Liu, Shokri, ICML 2024) online and offline; ``privaudit attacks`` lists them.

Measured, per architecture, written to ``--json`` and as a log-log ROC figure:

1. each attack's metrics on the ROC pooled over the target models, as LiRA's ``plot.py`` draws it
   (TPR at 1%, 0.1% and, where the pooled non-members resolve it, the paper's 0.001% FPR;
   balanced accuracy; AUC; stratified bootstrap intervals: ``benchmarks/attack_table.py``'s
   ``pooled``); a TPR the non-members cannot resolve is not printed ("needs >= N non-members");
2. the per-target mean with its interval from privaudit's evaluation (the ``evaluate`` stage,
   :func:`privaudit.evaluation.protocol.summarize`);
3. the paper's Table I CIFAR-10 numbers next to ours, and the headline ratio "LiRA TPR at 0.1%
   FPR / the best calibrated attack's (Watson, Sablayrolles)": 8.4 / 1.7, about 5x, in the paper.

``--scale`` sets only sizes (:data:`SIZES`). At the ``gpu`` scale a population takes longer than
one 8-minute command: with ``--max-train-s`` a call trains whole groups of models while the next
group fits in that budget and stops there; calls that find nothing left to train query and attack
(all of it unmeasured: no GPU here; the estimates are in :data:`SIZES`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (REPO, clean, figure_dir, parser, peak_memory_mb, plt, resolvable_fpr,  # noqa: E402
                     run_population, save_figure, write_json)
from attack_table import console, describe, pooled  # noqa: E402  (benchmarks/attack_table.py)
from rich.table import Table  # noqa: E402

from privaudit.attacks.registry import get_attack  # noqa: E402
from privaudit.config import RunConfig, load_config  # noqa: E402
from privaudit.evaluation import metrics  # noqa: E402
from privaudit.runtime.run import Layout, Run  # noqa: E402

CONFIG = REPO / "configs" / "cifar10_wrn_gpu.yaml"
ARCHS = ("airbench", "wrn")
ATTACKS = ["loss", "song_mittal", "watson", "sablayrolles", "lira_offline", "lira_offline_global",
           "lira_online", "lira_online_global", "rmia_online", "rmia_offline"]
CALIBRATED = ("watson", "sablayrolles")          # the difficulty-calibrated attacks of LiRA's Table I / II
LIRA = "lira_online"                             # Table I's LiRA: online, per-example variance
HEADLINE_FPR = 1e-3
FPRS = (1e-2, 1e-3, 1e-5)                        # 1%, 0.1% (ours), 0.001% (the paper's first column)

# Only sizes differ between scales. n: the pool (None: all of CIFAR-10's training images there are);
# width (airbench) / depth, widen (wrn); shift, stride: the query grid (mirror always); targets:
# target models (pooled ROC and per-target summary); n_boot: bootstrap resamples of privaudit's
# evaluation (per-target summary), pooled_boot: of the pooled ROC.
SIZES: dict[str, dict[str, dict[str, Any] | None]] = {
    "ci": {"airbench": dict(n_models=8, models_per_group=8, n=256, width=4, epochs=4, batch_size=32,
                            shift=0, stride=1, targets=4, n_boot=20, pooled_boot=20),
           "wrn": dict(n_models=8, models_per_group=8, n=256, depth=10, widen=1, epochs=2, batch_size=32,
                       shift=0, stride=1, targets=4, n_boot=20, pooled_boot=20)},
    # 64 airbench nets at width 12 (0.56x the FLOPs of width 16) on 1,000 images, 50 epochs: each
    # fits its half (98% train accuracy measured on two models); ~40 s per model on one core.
    "cpu": {"airbench": dict(n_models=64, models_per_group=8, n=1000, width=12, epochs=50, batch_size=64,
                             shift=0, stride=1, targets=32, n_boot=200, pooled_boot=200),
            "wrn": None},
    # FLOP estimates (unmeasured): airbench 0.71 training GFLOP/sample x 64 models x 25,000 x 40
    # epochs = 4.5e16 (~3 min at 250 TFLOP/s bf16), 18 queries x 50,000 x 64 forwards ~1.4e16;
    # WRN-16-4 2.35 GFLOP/sample x 64 x 25,000 x 100 epochs = 3.8e17 (~25 min: --max-train-s),
    # 18 queries ~4.5e16 (~3 min). The analysis is CPU work: a bootstrap of 400,000 pooled scores
    # (8 targets x 50,000) takes ~2 s per metric and 50 resamples on a quiet core (~1 s for 50,000 x
    # 200), so ~100 s for the pooled table and a few minutes for privaudit's evaluation: with
    # --max-train-s the call that trains stops after training, and the next one queries and attacks.
    "gpu": {"airbench": dict(n_models=64, models_per_group=16, n=None, width=64, epochs=40, batch_size=256,
                             shift=4, stride=4, targets=8, n_boot=50, pooled_boot=50),
            "wrn": dict(n_models=64, models_per_group=8, n=None, depth=16, widen=4, epochs=100, batch_size=256,
                        shift=4, stride=4, targets=8, n_boot=50, pooled_boot=50)},
}
DEFAULT_ARCH = {"ci": "both", "cpu": "airbench", "gpu": "both"}

# Carlini et al. 2022, CIFAR-10: Table I (256 models, online, 18 queries; TPR % at 0.001% and 0.1%
# FPR, balanced accuracy %), offline LiRA's TPR at 0.1% from Table II, LiRA's AUC from the legend of
# its CIFAR-10 ROC figure (Fig. 5, read off the figure: approximate). None: not reported there.
PAPER: dict[str, dict[str, float | None]] = {
    "loss": {"tpr@1e-05": 0.0, "tpr@0.001": 0.0, "balanced_accuracy": 59.4, "auc": None},
    "song_mittal": {"tpr@1e-05": 0.0, "tpr@0.001": 0.1, "balanced_accuracy": 59.5, "auc": None},
    "watson": {"tpr@1e-05": 0.1, "tpr@0.001": 1.3, "balanced_accuracy": 59.1, "auc": None},
    "sablayrolles": {"tpr@1e-05": 0.1, "tpr@0.001": 1.7, "balanced_accuracy": 56.3, "auc": None},
    "lira_offline": {"tpr@1e-05": None, "tpr@0.001": 7.1, "balanced_accuracy": None, "auc": None},
    "lira_online": {"tpr@1e-05": 2.2, "tpr@0.001": 8.4, "balanced_accuracy": 63.8, "auc": 72.0},
}
PAPER_RATIO = 8.4 / 1.7
PAPER_SETTING = ("CIFAR-10, 50,000 images, 256 WideResNets (the official demo trains WRN-28-2) on random halves, "
                 "~92% test accuracy, 18 queries; TPR at 0.001% / 0.1% FPR and balanced accuracy (Table I), "
                 "offline LiRA from Table II, LiRA's AUC from Fig. 5")
EARLIER = {"mnist_cnn_128": {"ratio": 5.58 / 3.24, "note": "MNIST subset, 128 CNNs (benchmarks/RESULTS.md): "
                                                           "online LiRA 5.58% / Sablayrolles 3.24% at 0.1% FPR"}}


def arch_list(scale: str, arch: str | None) -> list[str]:
    """The architectures this call runs (``both``: in sequence, each resumable on its own)."""
    chosen = list(ARCHS) if (arch or DEFAULT_ARCH[scale]) == "both" else [arch or DEFAULT_ARCH[scale]]
    for a in chosen:
        if SIZES[scale][a] is None:
            raise SystemExit(f"--arch {a} has no {scale} scale: WRN-16-4 is GPU only (2.35 training GFLOP per "
                             f"sample; see SIZES)")
    return chosen


def build_config(scale: str, arch: str, out: str) -> RunConfig:
    """``configs/cifar10_wrn_gpu.yaml`` (LiRA's recipe) with the scale's sizes for ``arch``. Below the
    gpu scale the models train where PyTorch runs (``device: auto``, fp32, the CPU's backend)."""
    s = SIZES[scale][arch]
    model = ({"model.arch": "airbench", "model.width": s["width"], "model.depth": None, "model.widen": None}
             if arch == "airbench" else {"model.depth": s["depth"], "model.widen": s["widen"]})
    overrides = {"out": out, "name": f"lira_table1_{arch}_{scale}", "data.download": False,
                 "population.n_models": s["n_models"], "population.models_per_group": s["models_per_group"],
                 **model, "training.epochs": s["epochs"], "training.batch_size": s["batch_size"],
                 "queries.mirror": True, "queries.shift": s["shift"], "queries.stride": s["stride"],
                 "attacks": ATTACKS, "evaluation.targets": s["targets"], "evaluation.bootstrap": s["n_boot"],
                 "evaluation.fprs": list(FPRS)}
    if s["n"] is not None:
        overrides["data.n"] = s["n"]
    if scale != "gpu":
        overrides |= {"training.device": "auto", "training.backend": "auto", "training.precision": "fp32"}
    return load_config(CONFIG, overrides)


# ------------------------------------------------------------------------------------------
# training in budgeted pieces (gpu scale)
# ------------------------------------------------------------------------------------------

def train_within(cfg: RunConfig, budget_s: float) -> dict[str, Any]:
    """Train whole groups of ``cfg``'s population, one after another, while the next one (timed as
    the slowest so far) fits in ``budget_s``; at least one group per call. Finished groups are kept
    in the run folder, so the next call (or :func:`run_population`) trains only the rest."""
    from privaudit.runtime import plan
    from privaudit.runtime.executor import run_tasks
    from privaudit.stages.prepare import prepare
    from privaudit.stages.train import group_done, train_group_task

    run = Run(cfg.run_dir)
    t0, slowest, trained = time.perf_counter(), 0.0, 0
    with run.writer():
        prepare(run, cfg)
        todo = [ids for ids in plan.groups(cfg) if not group_done(run, cfg, ids)]
        for ids in todo:
            if trained and time.perf_counter() - t0 + slowest > budget_s:
                break
            t = time.perf_counter()
            run_tasks(train_group_task, [{"run_dir": str(run.root), "model_ids": ids}], **plan.schedule(cfg),
                      advance=lambda n: None)
            slowest, trained = max(slowest, time.perf_counter() - t), trained + 1
            console.log(f"group {ids[0]}-{ids[-1]} trained in {time.perf_counter() - t:.0f} s")
    groups = plan.groups(cfg)
    return {"groups": len(groups), "groups_done": sum(group_done(run, cfg, ids) for ids in groups),
            "trained_now": trained, "seconds": round(time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------

def attack_rows(run: Run, cfg: RunConfig, fprs: tuple[float, ...], n_boot: int) -> dict[str, Any]:
    """Per attack: the pooled-ROC metrics (:func:`attack_table.pooled`) of the scores the evaluate
    stage saved, and the per-target summary of privaudit's evaluation (``metrics.json``)."""
    epoch, t = cfg.training.epochs, cfg.evaluation.targets
    keep_t = run.keep()[:t]
    summary = run.load_json(Layout.epoch_metrics(epoch))["attacks"]
    rows = {}
    for a in cfg.attacks:
        spec = get_attack(a.name)
        scores = run.scores(a, epoch, t)
        rows[a.key] = {"signal": spec.signal, "mode": spec.mode, "targets": t,
                       "pooled": pooled(scores, keep_t, n_boot, cfg.seed, fprs=fprs),
                       "per_target": summary[a.key]["summary"]}
    return rows


def readable(rows: dict[str, Any], fprs: tuple[float, ...]) -> dict[str, Any]:
    """Which pooled TPRs the pooled non-members resolve (FPR x non-members >= 1)."""
    n_neg = next(iter(rows.values()))["pooled"]["n_neg"]
    return {f"tpr@{a:g}": {"resolvable": metrics.fpr_resolvable(a, n_neg),
                           "needs_nonmembers": metrics.nonmembers_needed(a)} for a in fprs} | {"n_neg": n_neg}


def headline(rows: dict[str, Any], fpr: float, others: tuple[float, ...] = ()) -> dict[str, Any]:
    """LiRA's TPR over the best calibrated attack's at ``fpr`` on the pooled ROC: Table I's LiRA
    (online, per-example variance) and the best online LiRA variant (global variance too); the
    same at each FPR of ``others`` (``at``)."""
    out = _ratio(rows, fpr) | {"paper_ratio": PAPER_RATIO, "earlier": EARLIER}
    out["at"] = {f"{a:g}": _ratio(rows, a) for a in others}
    return out


def _ratio(rows: dict[str, Any], fpr: float) -> dict[str, Any]:
    key = f"tpr@{fpr:g}"
    tpr = {k: r["pooled"][key]["value"] for k, r in rows.items()}
    best_cal = max(CALIBRATED, key=lambda k: tpr[k])
    best_lira = max((k for k in tpr if k.startswith("lira_online")), key=lambda k: tpr[k])
    ratio = lambda a: tpr[a] / tpr[best_cal] if tpr[best_cal] > 0 else None
    return {"fpr": fpr, "lira": LIRA, "lira_tpr": tpr[LIRA], "lira_interval": _interval(rows[LIRA], key),
            "best_calibrated": best_cal, "best_calibrated_tpr": tpr[best_cal],
            "best_calibrated_interval": _interval(rows[best_cal], key),
            "ratio": ratio(LIRA), "best_lira": best_lira, "best_lira_ratio": ratio(best_lira),
            "intervals_overlap": bool(rows[LIRA]["pooled"][key]["lo"] <= rows[best_cal]["pooled"][key]["hi"])}


def _interval(row: dict[str, Any], key: str) -> list[float]:
    return [row["pooled"][key]["lo"], row["pooled"][key]["hi"]]


# ------------------------------------------------------------------------------------------
# figure and console
# ------------------------------------------------------------------------------------------

def plot_roc(run: Run, cfg: RunConfig, rows: dict[str, Any], title: str, path: Path) -> str:
    """Log-log ROC of each attack's scores pooled over the targets (LiRA ``plot.py``), the band of
    FPRs the pooled non-members cannot resolve in grey, the paper's TPR at 0.1% FPR as crosses."""
    keep_t = run.keep()[: cfg.evaluation.targets]
    n_neg = int((~keep_t).sum())
    lo = 10.0 ** np.floor(np.log10(1.0 / n_neg))
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    colours = plt.get_cmap("tab10").colors
    for i, a in enumerate(cfg.attacks):
        scores = run.scores(a, cfg.training.epochs, cfg.evaluation.targets)
        fpr, tpr, _ = metrics.roc_curve(keep_t.ravel(), scores.ravel())
        auc = rows[a.key]["pooled"]["auc"]["value"]
        ax.plot(np.maximum(fpr, lo), np.maximum(tpr, lo), color=colours[i % 10], ls="-" if i < 10 else "--", lw=1.4,
                label=f"{a.key} (AUC {auc:.3f})")
        paper = PAPER.get(a.key, {}).get("tpr@0.001")
        if paper:
            ax.plot([1e-3], [paper / 100], "x", color=colours[i % 10], ms=8, mew=2)
    ax.plot([lo, 1], [lo, 1], color="0.4", ls=":", lw=0.9)
    ax.axvspan(lo, 1.0 / n_neg, color="0.9", zorder=0, label=f"FPR < 1/{n_neg}: unresolved")
    ax.set(xscale="log", yscale="log", xlim=(lo, 1), ylim=(lo, 1), xlabel="false positive rate",
           ylabel="true positive rate", title=title)
    ax.grid(True, which="major", color="0.9", lw=0.6)
    ax.legend(fontsize=7, loc="lower right", title="x: paper's TPR at 0.1% FPR (Table I/II)", title_fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def _cell(row: dict[str, Any], key: str, ok: bool, scale: float = 100.0) -> str:
    if not ok:
        return f"needs >= {metrics.nonmembers_needed(float(key[4:])):,} non-members"
    s = row["pooled"][key]
    return f"{scale * s['value']:.2f} [{scale * s['lo']:.2f}, {scale * s['hi']:.2f}]" if np.isfinite(s["lo"]) \
        else f"{scale * s['value']:.2f}"


def _per_target(est: dict[str, Any]) -> str:
    if est.get("unresolved"):
        return f"needs >= {est['needs_nonmembers']:,} non-members"
    return f"{est['mean']:.3f} [{est['lo']:.3f}, {est['hi']:.3f}]" if "lo" in est else f"{est['mean']:.3f}"


def print_table(arch: str, doc: dict[str, Any]) -> None:
    res, rows = doc["resolution"], doc["table"]
    tab = Table(title=f"LiRA Table I, CIFAR-10, {arch}: {doc['population']['models']} models, "
                      f"{doc['targets']} targets, pooled ROC ({res['n_neg']:,} non-members); paper in ()",
                caption="pooled: 95% stratified bootstrap intervals; per target: privaudit's evaluation")
    for col in ("attack", "TPR % @ 1%", "TPR % @ 0.1%", "TPR % @ 0.001%", "bal. acc %", "AUC %",
                "AUC per target (privaudit)"):
        tab.add_column(col)
    for k, r in rows.items():
        p = PAPER.get(k, {})
        paper = lambda m: f" ({p[m]:g})" if p.get(m) is not None else ""
        tab.add_row(k, _cell(r, "tpr@0.01", res["tpr@0.01"]["resolvable"]),
                    _cell(r, "tpr@0.001", res["tpr@0.001"]["resolvable"]) + paper("tpr@0.001"),
                    _cell(r, "tpr@1e-05", res["tpr@1e-05"]["resolvable"]) + paper("tpr@1e-05"),
                    _cell(r, "balanced_accuracy", True) + paper("balanced_accuracy"),
                    _cell(r, "auc", True) + paper("auc"), _per_target(r["per_target"]["auc"]))
    console.print(tab)
    h = doc["headline"]
    ratio = (f"{h['ratio']:.2f}x" if h["ratio"] is not None
             else f"undefined ({h['best_calibrated']} has TPR 0)")
    console.print(f"headline ({arch}): {h['lira']} {100 * h['lira_tpr']:.2f}% / {h['best_calibrated']} "
                  f"{100 * h['best_calibrated_tpr']:.2f}% TPR at {100 * h['fpr']:g}% FPR = {ratio} "
                  f"(paper {PAPER_RATIO:.1f}x at 0.1%)" + "".join(
                      f"; at {100 * float(a):g}%: {r['ratio']:.2f}x" for a, r in h["at"].items() if r["ratio"]))


# ------------------------------------------------------------------------------------------

def one_arch(args, scale: str, arch: str) -> dict[str, Any]:
    """Train (resuming), query and attack one architecture's population; its part of the document."""
    s = SIZES[scale][arch]
    cfg = build_config(scale, arch, args.out)
    out: dict[str, Any] = {"config": str(CONFIG.relative_to(REPO)), "run_dir": str(cfg.run_dir), "sizes": s,
                           "model": cfg.model.model_dump(exclude_none=True), "queries": cfg.queries.model_dump()}
    if args.max_train_s is not None:
        progress = train_within(cfg, args.max_train_s)
        out["training_progress"] = progress
        if progress["trained_now"]:       # a training call stops here; the next one queries and attacks
            left = progress["groups"] - progress["groups_done"]
            out["status"] = (f"training: {progress['groups_done']} of {progress['groups']} groups done; run the "
                             f"command again ({'to train the rest' if left else 'for the queries and the table'})")
            return out
    t0 = time.perf_counter()
    run, seconds = run_population(cfg)
    keep, labels = run.keep(), run.labels()
    n_neg = int((~keep[: cfg.evaluation.targets]).sum())
    fpr = HEADLINE_FPR if metrics.fpr_resolvable(HEADLINE_FPR, n_neg) else resolvable_fpr(n_neg)
    fprs = tuple(sorted(set(FPRS) | {fpr}, reverse=True))
    t = time.perf_counter()
    rows = attack_rows(run, cfg, fprs, s["pooled_boot"])
    seconds["pooled_table"] = round(time.perf_counter() - t, 1)
    out |= {"status": "done", "population": describe(cfg, run, keep, labels),
            "trained": run.stage_done("train"),        # device, backend, training seconds summed over calls
            "utility": run.load_json(Layout.epoch_metrics(cfg.training.epochs)).get("utility"),
            "targets": cfg.evaluation.targets, "resolution": readable(rows, fprs), "table": rows,
            "headline": headline(rows, fpr, tuple(a for a in fprs if a != fpr and metrics.fpr_resolvable(a, n_neg)))}
    out["figure"] = plot_roc(run, cfg, rows, f"CIFAR-10, {arch}: {keep.shape[0]} models, pooled over "
                                             f"{cfg.evaluation.targets} targets",
                             figure_dir(args) / f"reproduce_lira_table1_{arch}_{scale}_roc.png")
    seconds["total"] = round(time.perf_counter() - t0, 1)
    out["seconds"] = seconds
    print_table(arch, out)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = parser(__doc__, "lira_table1")
    ap.add_argument("--arch", choices=[*ARCHS, "both"], default=None,
                    help="population(s): airbench, wrn (gpu only) or both in sequence (default: both at ci and "
                         "gpu, airbench at cpu)")
    ap.add_argument("--max-train-s", type=float, default=None,
                    help="train whole groups of models for at most about this many seconds, then stop (the next "
                         "call resumes); the table comes once every group is trained")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)          # the training workers pin one thread each; so does this process
    t0 = time.perf_counter()
    archs = arch_list(args.scale, args.arch)
    doc: dict[str, Any] = {
        "paper": "Carlini, Chien, Nasr, Song, Terzis, Tramer, Membership Inference Attacks From First Principles, "
                 "IEEE S&P 2022, Table I (CIFAR-10)",
        "paper_setting": PAPER_SETTING, "paper_numbers": PAPER, "scale": args.scale, "attacks": ATTACKS,
        "calibrated_attacks": list(CALIBRATED),
        "tpr": "strict: TPR at the largest threshold with FPR <= alpha; pooled over targets (LiRA plot.py); "
               "95% stratified bootstrap intervals of the pooled scores",
        "per_target": "privaudit's evaluation (protocol.summarize): mean over targets, 95% interval",
        "archs": {}}
    path = Path(args.json)
    if path.is_file():          # keep the other architecture's finished result (each call runs one or both)
        import json
        old = json.loads(path.read_text())
        if old.get("scale") == args.scale:
            doc["archs"] = {k: v for k, v in old.get("archs", {}).items() if k not in archs}
    for arch in archs:
        doc["archs"][arch] = one_arch(args, args.scale, arch)
        write_json(doc, args.json)          # partial results survive an interrupted sequence
    short = ("fpr", "lira_tpr", "best_calibrated", "best_calibrated_tpr", "ratio", "best_lira", "best_lira_ratio",
             "intervals_overlap")
    doc["headline"] = {a: {k: r["headline"][k] for k in short} | {
                           "at": {f: {k: v[k] for k in short} for f, v in r["headline"]["at"].items()}}
                       for a, r in doc["archs"].items() if r.get("status") == "done"}
    doc["headline_paper_ratio"] = PAPER_RATIO
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    doc["peak_memory_mb"] = peak_memory_mb()
    write_json(doc, args.json)
    return clean(doc)


if __name__ == "__main__":
    main()
