"""Does memorization explain vulnerability (Choi et al., "Why Train More?", arXiv:2310.08015)? At the
largest scale that fits a 2-core CPU: MNIST-subset mixtures, one population of MLPs per setting,
then ``privaudit memorization`` on each.

    nice -n 10 python benchmarks/memorization_study.py \
        [--settings mixture_mnist_cifar10:64,mixture_mnist_augmented:32,mixture_mnist_cifar10_subpop:32] \
        [--out /tmp/privaudit_memorization_study] [--json benchmarks/results/memorization_study.json]

Each setting is ``configs/<setting>.yaml`` with ``:M`` models (overrides: --models, --epochs, --n). Populations are
trained through the pipeline stages (prepare, train, query, curvature, evaluate; resumable in --out), then
:func:`privaudit.studies.memorization.stage.run_memorization` writes the study's artifacts
(``Layout.study("memorization", ...)``). Prints (and writes) one JSON document with the per-group tables
(the layout of Choi et al.'s Tables II/III), the correlations, the shadow-budget curves, the measured
reduction factors and the predicted sample complexity (docs/studies.md), and wall times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from privaudit.attacks.registry import get_attack
from privaudit.config import AttackConfig, load_config
from privaudit.runtime.run import Layout, Run
from privaudit.studies.memorization import NAME, budget
from privaudit.studies.memorization.stage import MemorizationOptions, run_memorization

sys.path.insert(0, str(Path(__file__).resolve().parent / "reproduce"))
from _common import run_population  # noqa: E402  (benchmarks/reproduce/_common.py)

REPO = Path(__file__).resolve().parents[1]
# setting[:n_models]: the main population gets 64 models, the two variants 32 (15-minute budget)
SETTINGS = ("mixture_mnist_cifar10:64", "mixture_mnist_augmented:32", "mixture_mnist_cifar10_subpop:32")
SECOND_ATTACK = "lira_online_global"    # Carlini et al. Sec. VI-B: fixed variance for few shadow models


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


def condense(doc: dict) -> dict:
    """The numbers the RESULTS section reports (the full document stays in the run directory)."""
    key = f"tpr@{doc['fpr']:g}"
    tables = {}
    for label, res in doc["tables"].items():
        if "groups" not in res:
            tables[label] = res
            continue
        tables[label] = {g: ({"skipped": r["skipped"]} if "skipped" in r else
                             {"n": r["n"], "auc": [_r(r["auc"]["mean"]), _r(r["auc"]["lo"]), _r(r["auc"]["hi"])],
                              "tpr": [_r(r[key].get("mean")), _r(r[key].get("lo")), _r(r[key].get("hi"))],
                              "tpr_global": _r(r["tpr_global"]["mean"]), "fpr_resolution": _r(r["fpr_resolution"], 5)})
                         for g, r in res["groups"].items()}
    curve = _curve_summary(doc["budget"]["curve"], key)
    bound = doc["budget"]["bound"]
    return {"run": doc["run"], "n_samples": doc["n_samples"], "n_models": doc["n_models"], "fpr": doc["fpr"],
            "threshold": doc["threshold"], "memorization_by_group": doc["memorization"]["by_group"],
            "correlations": {k: {kk: v[kk] for kk in ("rho", "lo", "hi", "p_value", "band", "n")}
                             for k, v in doc["correlations"].items() if k.startswith("mem_vs")},
            "correlations_under": {k: {kk: v[kk] for kk in ("rho", "lo", "hi", "band", "n")}
                                   for k, v in doc["correlations"].get("under_represented", {}).items()
                                   if k.startswith("mem_vs")},
            "tables": tables, "budget_groups": doc["budget"]["groups"], "budget_curve": curve,
            "reductions": doc["budget"]["reductions"],
            "bound": {"predicted_reduction_h2": bound.get("predicted_reduction_h2"),
                      "predicted_reduction_mem": bound.get("predicted_reduction_mem"),
                      "median_required": {g: {k: v[k]["median_required"] for k in v}
                                          for g, v in bound["groups"].items()}}}


def _curve_summary(curve: list[dict], key: str) -> dict:
    out: dict = {}
    for row in curve:
        if not row.get("skipped"):
            out.setdefault(row["group"], []).append(
                {"R": row["n_models"], "attack": row["attack"], "excluded": _r(row["excluded_frac"], 3),
                 "auc": [_r(row["auc_mean"]), _r(row["auc_ci_low"]), _r(row["auc_ci_high"])],
                 "tpr": [_r(row[f"{key}_mean"]), _r(row[f"{key}_ci_low"]), _r(row[f"{key}_ci_high"])]})
    return out


def second_budget(run: Run, cfg, opts: MemorizationOptions) -> dict:
    """The same budget curve (same targets, groups, draws) with the global-variance online LiRA
    (offline global variance as the R = 1 fallback), which suits few reference models."""
    keep, labels = run.keep(), run.labels()
    groups = {g: run.load_npy(Layout.study(NAME, f"{g}_mask.npy")) for g in ("high_mem", "random")
              if run.has(Layout.study(NAME, f"{g}_mask.npy"))}
    group = run.optional_pool("group")
    if group is not None:
        groups["under"] = group[: keep.shape[1]] == 1
    spec = get_attack(SECOND_ATTACK)
    signal = run.signal(AttackConfig(name=SECOND_ATTACK).signal_name, opts.epoch or cfg.training.epochs)
    curve, _ = budget.budget_curve(spec, signal, keep, labels, groups, sizes=opts.budget_sizes,
                                   budget_targets=opts.budget_targets, repeats=opts.repeats, seed=opts.seed,
                                   fpr=opts.fpr, n_boot=opts.n_boot)
    key = f"tpr@{opts.fpr:g}"
    return {"attack": SECOND_ATTACK, "curve": _curve_summary(curve, key),
            "reductions": {"saturation": [budget.saturation(curve, g, m, c) for g in groups
                                          for m, c in (("auc", 0.5), (key, opts.fpr))],
                           "high_mem_vs_random": [budget.cross_reduction(curve, m) for m in ("auc", key)]}}


def run_setting(name: str, out: Path, overrides: dict, opts: MemorizationOptions) -> dict:
    name, _, models = name.partition(":")
    if models and "population.n_models" not in overrides:
        overrides = {**overrides, "population.n_models": int(models)}
    cfg = load_config(REPO / "configs" / f"{name}.yaml", {"out": str(out), **overrides})
    run, times = run_population(cfg)
    times["attacks"] = times.pop("evaluate")
    with run.writer():
        t = time.perf_counter()
        doc = run_memorization(run, cfg, opts)
        times["memorization"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    second = second_budget(run, cfg, opts)
    times["budget_" + SECOND_ATTACK] = round(time.perf_counter() - t, 1)
    info = run.pool_info()
    return {"setting": name, "dataset": info["name"], "config": f"configs/{name}.yaml", "overrides": overrides,
            "seconds": times, "run_dir": str(cfg.run_dir), **condense(doc), "budget_" + SECOND_ATTACK: second}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--out", default="/tmp/privaudit_memorization_study")
    ap.add_argument("--json", default="benchmarks/results/memorization_study.json")
    ap.add_argument("--models", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--n", type=int, help="size of the MNIST base subset")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget-targets", type=int, default=4)
    args = ap.parse_args()
    overrides = {k: v for k, v in (("population.n_models", args.models), ("training.epochs", args.epochs),
                                   ("data.n", args.n)) if v is not None}
    torch.set_num_threads(1)       # the pipeline's worker processes pin 1 thread; so does this process
    opts = MemorizationOptions(fpr=1e-3, threshold=args.threshold, repeats=args.repeats,
                               budget_targets=args.budget_targets, n_boot=200)
    t0 = time.perf_counter()
    results = [run_setting(s.strip(), Path(args.out), overrides, opts) for s in args.settings.split(",") if s.strip()]
    doc = {"study": "memorization explains vulnerability (Choi et al. 2023)",
           "seconds_total": round(time.perf_counter() - t0, 1),
           "options": {"attack": opts.attack, "fpr": opts.fpr, "threshold": opts.threshold, "repeats": opts.repeats,
                       "budget_targets": opts.budget_targets, "bootstrap": opts.n_boot},
           "settings": results}
    text = json.dumps(doc, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
